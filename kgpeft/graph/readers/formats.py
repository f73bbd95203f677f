"""Which reader reads a KG file: :data:`READERS`, a table from format name to reader, and
:data:`SUFFIX_FORMATS`, the format a file's suffix names (a compression suffix stripped first).

A reader is called as ``reader(path, **options)`` and returns a
:class:`~kgpeft.graph.KnowledgeGraph`; the tabular formats (:data:`TABULAR`) also take
``delimiter``, ``header``, ``columns`` and ``labels`` (see :func:`~kgpeft.graph.readers.read_triples`).
A new format is one more entry in :data:`READERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from kgpeft.errors import KGFormatError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.graph.readers.compression import plain_suffix
from kgpeft.graph.readers.ntriples import read_ntriples
from kgpeft.graph.readers.obo import read_obo
from kgpeft.graph.readers.rdf import read_rdf
from kgpeft.graph.readers.tabular import read_triples

Reader = Callable[..., KnowledgeGraph]

#: The readers by format name.
READERS: dict[str, Reader] = {
    "tsv": read_triples,
    "csv": read_triples,
    "ntriples": read_ntriples,
    # RDF through rdflib (its format names), OBO through fastobo
    "turtle": partial(read_rdf, format="turtle"),
    "xml": partial(read_rdf, format="xml"),
    "nquads": partial(read_rdf, format="nquads"),
    "jsonld": partial(read_rdf, format="json-ld"),
    "obo": read_obo,
}
#: The formats read as delimited rows, and their default delimiters.
TABULAR = {"tsv": "\t", "csv": ","}
#: The format a file's suffix names; any other suffix is read as ``tsv``.
SUFFIX_FORMATS = {
    ".tsv": "tsv",
    ".txt": "tsv",
    ".csv": "csv",
    ".nt": "ntriples",
    ".ttl": "turtle",
    ".rdf": "xml",
    ".owl": "xml",
    ".xml": "xml",
    ".nq": "nquads",
    ".jsonld": "jsonld",
    ".obo": "obo",
}
#: Every format name a KG source may give (some may have no reader registered).
FORMATS = tuple(dict.fromkeys([*READERS, *SUFFIX_FORMATS.values()]))


def guess_format(path: Path) -> str:
    """The format ``path``'s suffix names (:data:`SUFFIX_FORMATS`), compression suffixes stripped; else ``tsv``."""
    return SUFFIX_FORMATS.get(plain_suffix(path), "tsv")


def reader_for(format: str, path: Path, guessed: bool = False) -> Reader:
    """The reader of ``format`` for the file ``path``.

    Raises:
        KGFormatError: no reader is registered for ``format``; the message names the format (and the
            suffix it was guessed from) and the formats that have one.
    """
    reader = READERS.get(format)
    if reader is None:
        why = f" (from its suffix {plain_suffix(path)!r})" if guessed else ""
        raise KGFormatError(
            f"no reader for the format {format!r}{why} in this kgpeft; formats with a reader: "
            f"{', '.join(READERS)}. Give `format:` one of those, or convert the file",
            path,
        )
    return reader
