"""Readers that turn KG files into a :class:`KnowledgeGraph`.

Every reader checks each line and raises :class:`~kgpeft.errors.KGFormatError` naming the
file and 1-based line of the first bad one (wrong column count, empty field, bad
encoding). Blank lines and a leading UTF-8 byte order mark are skipped. Repeated triples
are dropped, counted in ``kg.info["duplicates_dropped"]`` and reported with a warning;
nothing else is dropped.

The triple and label readers stream: each line becomes ids in flat integer arrays and
labels, aliases and descriptions go straight into UTF-8 string tables
(:class:`~kgpeft.graph.strings.StringTable`), so that reading holds one Python object per
distinct key (the vocabulary), not per line or per name.

The readers, one module per format: :mod:`~kgpeft.graph.readers.tabular` (TSV/CSV triples
and PyKEEN split folders), :mod:`~kgpeft.graph.readers.labels` (entity labels files) and
:mod:`~kgpeft.graph.readers.ntriples`; :mod:`~kgpeft.graph.readers.formats` says which reads a
file (a table from format name to reader); :mod:`~kgpeft.graph.readers.lines` reads and checks
lines (gzip, bzip2 and xz files decompressed as they stream), and
:mod:`~kgpeft.graph.readers.building` turns what was read into the KG.
:mod:`~kgpeft.graph.readers.rdf` reads every RDF serialisation through rdflib and
:mod:`~kgpeft.graph.readers.obo` OBO ontologies through fastobo (OWL ontologies are RDF/XML);
:mod:`~kgpeft.graph.readers.compression` opens gzip, bzip2 and xz files, known by their first bytes.
"""

from kgpeft.graph.readers.formats import FORMATS, READERS, SUFFIX_FORMATS, TABULAR, guess_format, reader_for
from kgpeft.graph.readers.labels import read_entity_labels
from kgpeft.graph.readers.lines import PathLike
from kgpeft.graph.readers.ntriples import (
    ALIAS_PREDICATES,
    DESCRIPTION_PREDICATES,
    LABEL_PREDICATES,
    RDFS,
    SKOS,
    read_ntriples,
)
from kgpeft.graph.readers.obo import read_obo
from kgpeft.graph.readers.rdf import RDF_FORMATS, read_rdf
from kgpeft.graph.readers.tabular import (
    LABELS_FILE,
    SPLIT_FILES,
    UnknownPolicy,
    read_pykeen_folder,
    read_split_files,
    read_triples,
)

__all__ = [
    "ALIAS_PREDICATES",
    "DESCRIPTION_PREDICATES",
    "FORMATS",
    "LABELS_FILE",
    "LABEL_PREDICATES",
    "RDFS",
    "RDF_FORMATS",
    "READERS",
    "SKOS",
    "SPLIT_FILES",
    "SUFFIX_FORMATS",
    "TABULAR",
    "PathLike",
    "UnknownPolicy",
    "guess_format",
    "read_entity_labels",
    "read_ntriples",
    "read_obo",
    "read_pykeen_folder",
    "read_rdf",
    "read_split_files",
    "read_triples",
    "reader_for",
]
