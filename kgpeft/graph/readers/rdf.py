"""RDF files through rdflib: Turtle, RDF/XML (and OWL in it), N-Triples, N-Quads and JSON-LD."""

from __future__ import annotations

import warnings
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO
from xml.sax import SAXParseException

import numpy as np
import rdflib
from rdflib.exceptions import ParserError
from rdflib.plugins.parsers.notation3 import BadSyntax
from rdflib.plugins.parsers.nquads import NQuadsParser
from rdflib.plugins.parsers.ntriples import W3CNTriplesParser
from rdflib.term import BNode, Literal, Node, URIRef

from kgpeft.errors import KGFormatError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.graph.readers.building import Vocab, finish
from kgpeft.graph.readers.compression import (
    CORRUPT_COMPRESSED,
    DECOMPRESSION_ERRORS,
    is_compressed,
    open_binary,
    plain_suffix,
)
from kgpeft.graph.readers.lines import PathLike, decoded_lines
from kgpeft.graph.readers.ntriples import (
    ALIAS_PREDICATES,
    DESCRIPTION_PREDICATES,
    LABEL_PREDICATES,
    RDFS,
    in_language,
    local_name,
)

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
OWL = "http://www.w3.org/2002/07/owl#"
OBO_IN_OWL = "http://www.geneontology.org/formats/oboInOwl#"
# OBO ontologies in OWL: exact synonyms name the term (see read_obo's synonym scopes), IAO_0000115 defines it.
RDF_ALIAS_PREDICATES = (*ALIAS_PREDICATES, OBO_IN_OWL + "hasExactSynonym")
RDF_DESCRIPTION_PREDICATES = (*DESCRIPTION_PREDICATES, "http://purl.obolibrary.org/obo/IAO_0000115")

# rdflib's format names by file suffix (after a compression suffix is taken off).
RDF_FORMATS = {
    ".nt": "nt",
    ".ntriples": "nt",
    ".nq": "nquads",
    ".ttl": "turtle",
    ".turtle": "turtle",
    ".rdf": "xml",
    ".owl": "xml",
    ".xml": "xml",
    ".jsonld": "json-ld",
    ".json": "json-ld",
}
# Line-based formats, read a statement at a time; the others are parsed whole by rdflib first.
STREAMED_FORMATS = ("nt", "nquads")

_TYPE = RDF + "type"
_SUBCLASS = RDFS + "subClassOf"
_VOCABULARY = (RDF, RDFS, OWL)
_LABEL, _ALIAS, _DESCRIPTION = 0, 1, 2


def read_rdf(
    path: PathLike,
    *,
    format: str | None = None,
    language: str | None = "en",
    label_predicates: Iterable[str] = LABEL_PREDICATES,
    alias_predicates: Iterable[str] = RDF_ALIAS_PREDICATES,
    description_predicates: Iterable[str] = RDF_DESCRIPTION_PREDICATES,
) -> KnowledgeGraph:
    """Read an RDF file with rdflib: Turtle, RDF/XML (OWL ontologies too), N-Triples, N-Quads or JSON-LD.

    Entities are the IRIs that are the subject or object of a triple whose object is an IRI
    (those triples are the KG's edges), and IRIs named by a label but in no edge (kept,
    isolated). Their keys are the full IRIs: prefixes differ between serialisations of one
    graph, so shortened keys would make the same graph read differently. N-Quads graph names
    are ignored (all graphs are read into one KG). Entity ids and the order of an entity's
    names follow the document (JSON-LD: sorted, as rdflib's JSON-LD parser keeps no order).

    Literals are never entities. A literal of a label predicate names its subject, of an
    alias predicate adds another name and of a description predicate describes it; other
    literals (numbers, dates, ...) are counted in ``kg.info["literals_skipped"]`` and
    reported with a warning. Among an entity's names, those tagged with ``language`` come
    first, then untagged ones, then other languages, which are kept only when the entity
    has no name of the first two kinds (the others are counted in
    ``kg.info["names_in_other_languages"]``); the first name is the label, label predicates
    before alias predicates, the rest are aliases. An entity without a name gets its IRI's
    local name as label (counted in ``kg.info["entities_without_label"]``). The description
    follows the same language order.

    A relation is named by its predicate's label in the file, else the IRI's local name
    (``subClassOf``); two predicates that would share a name keep their full IRIs.
    ``kg.info["relation_iris"]`` maps each name to its IRI.

    Blank nodes are not entities (they have no name, and serialisations of one graph number
    them differently). An OWL existential restriction, ``C rdfs:subClassOf [owl:onProperty P;
    owl:someValuesFrom D]``, becomes the edge ``(C, P, D)``; every other triple with a blank
    node is skipped, counted in ``kg.info["blank_node_triples_skipped"]`` and reported with a
    warning. ``rdf:type`` declarations of RDF, RDFS and OWL terms (``owl:Class``,
    ``owl:ObjectProperty``, ...) are counted in ``kg.info["declarations_skipped"]``; a
    declared property or ontology header is no isolated entity.

    N-Triples and N-Quads stream: one line at a time through rdflib's line parser into flat
    id arrays, so the file's triples never sit in memory as rdflib terms (only triples with
    blank nodes are held until the end). Turtle, RDF/XML and JSON-LD need the whole document:
    rdflib parses it into an in-memory graph first (several hundred bytes a triple).
    gzip, bzip2 and xz data (known by its first bytes) is decompressed on the fly. A malformed file raises
    :class:`~kgpeft.errors.KGFormatError` naming the file and, where the parser reports one, the line.

    Args:
        path: the RDF file.
        format: rdflib's format name (``"turtle"``, ``"xml"``, ``"nt"``, ``"nquads"``,
            ``"json-ld"``). (default: by suffix, see ``RDF_FORMATS``)
        language: the preferred language of names, a BCP-47 prefix compared case-insensitively
            (``"en"`` matches ``@en``, ``@EN`` and ``@en-GB``); ``None`` treats every language
            alike. (default: ``"en"``)
        label_predicates: predicate IRIs whose literals label their subject.
            (default: ``rdfs:label``, ``skos:prefLabel``, ``schema:name``)
        alias_predicates: predicate IRIs whose literals are further names. (default:
            ``skos:altLabel``, ``schema:alternateName``, ``oboInOwl:hasExactSynonym``)
        description_predicates: predicate IRIs whose literals describe their subject.
            (default: ``rdfs:comment``, ``skos:definition``, ``schema:description``,
            ``obo:IAO_0000115`` (definition))
    """
    path = Path(path)
    format = rdf_format(path, format)
    names = _Names(language, label_predicates, alias_predicates, description_predicates)
    collector = _Collector(names)
    if format in STREAMED_FORMATS:
        _stream(path, format, collector)
        return collector.finish(path, format)
    with open_binary(path) as f:
        try:
            _parse_whole(f, path, format, collector)
        except DECOMPRESSION_ERRORS as e:
            if not is_compressed(f):  # a failing disk, not a broken file
                raise
            raise KGFormatError(f"{CORRUPT_COMPRESSED} ({e})", path) from None
    return collector.finish(path, format)


def rdf_format(path: Path, format: str | None) -> str:
    """rdflib's name of ``path``'s format: ``format`` if given, else by suffix."""
    if format is not None:
        if format not in RDF_FORMATS.values():
            known = ", ".join(map(repr, dict.fromkeys(RDF_FORMATS.values())))
            raise KGFormatError(f"unknown RDF format {format!r}; pass one of {known}", path)
        return format
    suffix = plain_suffix(path)
    if suffix not in RDF_FORMATS:
        known = ", ".join(RDF_FORMATS)
        raise KGFormatError(f"cannot tell the RDF format from the suffix {suffix!r} ({known}); pass `format=`", path)
    return RDF_FORMATS[suffix]


def _stream(path: Path, format: str, collector: _Collector) -> None:
    """Feed the statements of an N-Triples or N-Quads file to ``collector`` one line at a time."""
    parser = (NQuadsParser if format == "nquads" else W3CNTriplesParser)(sink=collector)
    for lineno, line in decoded_lines(path):
        # rdflib's parser reads the line from its `line` slot; parseline skips blank and comment lines.
        parser.line = line.rstrip("\r\n")
        try:
            parser.parseline()
        except (ParserError, ValueError) as e:  # ValueError: an escape outside Unicode (rdflib's chr() fails)
            raise KGFormatError(f"not valid {format} ({_one_line(e)})", path, lineno) from None


def _parse_whole(f: BinaryIO, path: Path, format: str, collector: _Collector) -> None:
    """Parse a whole document with rdflib and feed its triples to ``collector``."""
    # SimpleMemory keeps triples in insertion (document) order. rdflib's default store iterates a set, whose order
    # changes from run to run, and so would entity ids and which of several labels comes first; its JSON-LD parser
    # needs that store, so JSON-LD triples are sorted.
    graph = rdflib.Dataset() if format == "json-ld" else rdflib.Graph(store="SimpleMemory")
    try:
        graph.parse(source=f, format=format, publicID=path.resolve().as_uri())
    except BadSyntax as e:
        # rdflib keeps the document and the character position; its own line count is off at the end.
        text = e._str
        line = text.count(b"\n" if isinstance(text, bytes) else "\n", 0, e._i) + 1
        raise KGFormatError(f"not valid {format} ({e._why})", path, line) from None
    except SAXParseException as e:
        raise KGFormatError(f"not valid RDF/XML ({e.getMessage()})", path, e.getLineNumber()) from None
    except (ParserError, SyntaxError, ValueError) as e:
        raise KGFormatError(f"not valid {format} ({_one_line(e)})", path, getattr(e, "lineno", None)) from None
    triples = sorted(q[:3] for q in graph.quads()) if format == "json-ld" else graph
    try:
        for s, p, o in triples:
            collector.triple(s, p, o)
    except ValueError as e:  # a lone surrogate (see _unicode); rdflib's graph knows no lines
        raise KGFormatError(f"not valid {format} ({_one_line(e)})", path) from None


def _unicode(text: str) -> str:
    """``text``, checked to be Unicode: rdflib lets an escape such as ``\\uD800`` through as a lone surrogate,
    which no file can hold (UnicodeEncodeError, a ValueError, which the caller turns into a format error)."""
    if not text.isascii():
        text.encode("utf-8")
    return text


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."


class _Names:
    """The label, alias and description literals of every subject, kept by language rank."""

    def __init__(
        self,
        language: str | None,
        label_predicates: Iterable[str],
        alias_predicates: Iterable[str],
        description_predicates: Iterable[str],
    ) -> None:
        self.language = language.lower() if language else None
        self.kinds = {str(p): _DESCRIPTION for p in description_predicates}
        self.kinds.update({str(p): _ALIAS for p in alias_predicates})
        self.kinds.update({str(p): _LABEL for p in label_predicates})
        self.of: dict[str, list[tuple[int, int, str]]] = {}  # subject: [(language rank, kind, text)]
        self.skipped = 0

    def add(self, subject: str, predicate: str, literal: Literal) -> None:
        kind = self.kinds.get(predicate)
        if kind is None:
            self.skipped += 1
            return
        tag = literal.language
        if self.language is None:
            rank = 0
        elif not tag:
            rank = 1
        else:
            rank = 0 if in_language(tag, self.language) else 2
        self.of.setdefault(subject, []).append((rank, kind, _unicode(str(literal))))

    def best(self, subject: str) -> tuple[list[str], str, int]:
        """The names of ``subject``, label first, its description, and how many names were in other languages."""
        entries = sorted(self.of.get(subject, ()), key=lambda e: (e[0], e[1] == _DESCRIPTION, e[1]))
        forms = [e for e in entries if e[1] != _DESCRIPTION]
        descriptions = [e for e in entries if e[1] == _DESCRIPTION]
        keep = max(forms[0][0], 1) if forms else 0
        kept = [e[2] for e in forms if e[0] <= keep]
        return list(dict.fromkeys(kept)), descriptions[0][2] if descriptions else "", len(forms) - len(kept)


class _Collector:
    """An rdflib sink: IRI triples become ids, literals names, blank-node triples wait for :meth:`finish`.

    rdflib's N-Triples parser calls :meth:`triple`; its N-Quads parser calls ``get_context(name).add``
    or ``default_context.add``, which all land in :meth:`triple` (graph names are ignored).
    """

    def __init__(self, names: _Names) -> None:
        self.names = names
        self.entities, self.relations = Vocab(), Vocab()
        self.ids = array("q")
        self.blank: list[tuple[Node, Node, Node]] = []
        self.declared: set[str] = set()  # properties and ontology headers: no entities unless in an edge
        self.declarations = 0
        self.default_context = self

    def get_context(self, _name: Node) -> _Collector:
        return self

    def add(self, triple: tuple[Node, Node, Node]) -> None:
        self.triple(*triple)

    def triple(self, s: Node, p: Node, o: Node) -> None:
        if isinstance(s, BNode) or isinstance(o, BNode):
            self.blank.append((s, p, o))
        elif isinstance(o, Literal):
            self.names.add(str(s), str(p), o)
        elif str(p) == _TYPE and str(o).startswith(_VOCABULARY):
            self.declarations += 1
            if str(o).endswith(("Property", "Ontology")):
                self.declared.add(str(s))
        else:
            self.edge(str(s), str(p), str(o))

    def edge(self, s: str, p: str, o: str) -> None:
        self.ids.append(self.entities.add(_unicode(s)))
        self.ids.append(self.relations.add(_unicode(p)))
        self.ids.append(self.entities.add(_unicode(o)))

    def restrictions(self) -> int:
        """Add the edges of OWL existential restrictions on blank nodes; the number of blank-node triples left."""
        props: dict[Node, dict[str, list[Node]]] = {}
        for s, p, o in self.blank:
            if isinstance(s, BNode):
                props.setdefault(s, {}).setdefault(str(p), []).append(o)
        used: set[Node] = set()
        consumed = 0
        for s, p, o in self.blank:
            if not (isinstance(s, URIRef) and str(p) == _SUBCLASS and isinstance(o, BNode)):
                continue
            restriction = props.get(o, {})
            on, some = restriction.get(OWL + "onProperty", []), restriction.get(OWL + "someValuesFrom", [])
            if len(on) == 1 == len(some) and isinstance(on[0], URIRef) and isinstance(some[0], URIRef):
                self.edge(str(s), str(on[0]), str(some[0]))
                consumed += 1
                used.add(o)
        consumed += sum(len(v) for b in used for v in props[b].values())
        return len(self.blank) - consumed

    def finish(self, path: Path, format: str) -> KnowledgeGraph:
        blank_skipped = self.restrictions()
        if not self.ids:
            raise KGFormatError("contains no triples between resources (IRI subjects with IRI objects)", path)
        names = self.names
        predicates = set(self.relations.index)
        for subject in names.of:
            if subject not in predicates and subject not in self.declared:
                self.entities.add(subject)
        labels, unlabelled, other_language = {}, 0, 0
        for key in self.entities.index:
            forms, description, dropped = names.best(key)
            unlabelled += not forms
            other_language += dropped
            labels[key] = (forms[0] if forms else local_name(key), tuple(forms[1:]), description)
        relation_iris = _relation_names(self.relations.keys, names)
        info = {
            "source": str(path),
            "reader": "read_rdf",
            "format": format,
            "literals_skipped": names.skipped,
            "names_in_other_languages": other_language,
            "entities_without_label": unlabelled,
            "blank_node_triples_skipped": blank_skipped,
            "declarations_skipped": self.declarations,
            "relation_iris": relation_iris,
        }
        for count, what in [(names.skipped, "literal-valued triples are not graph edges"), (blank_skipped, _BLANK)]:
            if count:
                warnings.warn(f"{path}: {count} {what} and were skipped.", stacklevel=3)
        ids = np.frombuffer(self.ids, dtype=np.int64).reshape(-1, 3).T
        return finish(self.entities, Vocab(list(relation_iris)), {"train": ids}, info, labels)


_BLANK = "triples with a blank node are no OWL someValuesFrom restriction"


def _relation_names(iris: list[str], names: _Names) -> dict[str, str]:
    """``{name: iri}`` in ``iris``' order: each predicate's label, else its local name; the IRI where names clash."""
    wanted = []
    for iri in iris:
        forms, _, _ = names.best(iri)
        wanted.append(forms[0] if forms else local_name(iri))
    counts: dict[str, int] = {}
    for name in wanted:
        counts[name] = counts.get(name, 0) + 1
    return {name if counts[name] == 1 else iri: iri for name, iri in zip(wanted, iris, strict=True)}
