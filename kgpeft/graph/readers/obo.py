"""OBO ontologies (``.obo``) through fastobo: terms with their names, synonyms and definitions, and their relations."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import fastobo

from kgpeft.errors import KGFormatError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.graph.readers.building import Vocab, finish
from kgpeft.graph.readers.compression import CORRUPT_COMPRESSED, DECOMPRESSION_ERRORS, is_compressed, open_binary
from kgpeft.graph.readers.lines import PathLike

IS_A = "is_a"
INTERSECTION_OF = "intersection_of"


def read_obo(
    path: PathLike,
    *,
    relations: Iterable[str] | None = None,
    include_obsolete: bool = False,
    synonym_scopes: Iterable[str] = ("EXACT",),
    intersections: bool = False,
) -> KnowledgeGraph:
    """Read an OBO ontology (format 1.2 or 1.4) with fastobo.

    Each ``[Term]`` is an entity keyed by its id (``GO:0008150``): its ``name`` is the label,
    its synonyms of the scopes in ``synonym_scopes`` the aliases and its ``def`` the
    description. ``EXACT`` synonyms name the same thing; ``NARROW`` and ``BROAD`` ones name a
    narrower or broader one and ``RELATED`` ones something related, so by default only exact
    synonyms let the linker find the term. Every ``is_a`` gives an ``is_a`` edge and every
    ``relationship: R X`` an ``R`` edge; ``intersection_of`` clauses (a term's logical
    definition) give edges only with ``intersections=True``: the genus ``intersection_of:
    X`` an ``intersection_of`` edge and a differentia ``intersection_of: R X`` an ``R`` edge
    (otherwise they are counted in ``kg.info["intersections_skipped"]``). Relations are named
    by their ``[Typedef]``'s ``name`` in the file, else their id; two typedefs that would
    share a name keep their ids; ``kg.info["relation_ids"]`` maps each name to its id.

    Obsolete terms (``is_obsolete: true``) and edges to or from them are left out unless
    ``include_obsolete`` (counted in ``kg.info["obsolete_terms_skipped"]`` and
    ``["obsolete_edges_skipped"]``). A term that an edge names but no ``[Term]`` declares (an
    imported one) is an entity labelled with its id, counted in
    ``kg.info["undeclared_terms"]``; ``[Instance]`` frames are counted in
    ``kg.info["instances_skipped"]``. ``!`` comments, at the end of a line or on a line of
    their own, are ignored.

    fastobo reads the file frame by frame; the terms' names and the edges (as id strings) are
    held until the end, so that edges to terms declared later or obsolete are resolved.
    ``.gz``, ``.bz2`` and ``.xz`` files are decompressed on the fly. A malformed file raises
    :class:`~kgpeft.errors.KGFormatError` naming the file and line.

    Args:
        path: the ``.obo`` file.
        relations: keep only edges of these relations, by id or name (``"is_a"``,
            ``"part_of"``, ``"part of"``). (default: all)
        include_obsolete: keep obsolete terms and their edges. (default: ``False``)
        synonym_scopes: the synonym scopes that become aliases, of ``EXACT``, ``NARROW``,
            ``BROAD`` and ``RELATED``. (default: ``("EXACT",)``)
        intersections: turn ``intersection_of`` clauses into edges. (default: ``False``)
    """
    path = Path(path)
    ontology = _Ontology(set(synonym_scopes), intersections)
    with open_binary(path) as f:
        stream = _WithoutCommentLines(f)
        try:
            for frame in fastobo.iter(io.BufferedReader(stream)):
                ontology.add(frame)
        except (SyntaxError, TypeError, OSError) as e:
            # fastobo reports a failed read as a TypeError or OSError of its own; the stream kept the cause.
            if stream.error is not None:
                raise KGFormatError(f"{CORRUPT_COMPRESSED} ({stream.error})", path) from None
            if isinstance(e, SyntaxError):
                raise KGFormatError(f"not valid OBO ({e.msg})", path, e.lineno) from None
            raise
    return ontology.finish(path, relations, include_obsolete)


class _WithoutCommentLines(io.RawIOBase):
    """A binary stream of ``f`` with lines that are only a ``!`` comment left blank (line numbers kept):
    fastobo reads ``!`` comments at the end of a clause but rejects them on a line of their own."""

    _COMMENT_LINE = re.compile(rb"^[ \t]*![^\n]*", re.MULTILINE)
    _CHUNK = 1 << 20

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._pending = memoryview(b"")
        self.error: Exception | None = None  # what decompressing ``f`` raised

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            # Whole lines only, so that a comment line is never split between two chunks.
            try:
                chunk = self._f.read(self._CHUNK)
                chunk += self._f.readline() if chunk and not chunk.endswith(b"\n") else b""
            except DECOMPRESSION_ERRORS as e:
                if is_compressed(self._f):  # else a failing disk, not a broken file: fastobo's error stands
                    self.error = e
                raise
            self._pending = memoryview(self._COMMENT_LINE.sub(b"", chunk))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _Ontology:
    """The terms, typedef names and edges of an OBO document, frame by frame."""

    def __init__(self, synonym_scopes: set[str], intersections: bool) -> None:
        self.synonym_scopes, self.intersections = synonym_scopes, intersections
        self.terms: dict[str, tuple[str, tuple[str, ...], str]] = {}  # id: (name, aliases, definition)
        self.obsolete: set[str] = set()
        self.typedef_names: dict[str, str] = {}
        self.edges: list[tuple[str, str, str]] = []
        self.intersections_skipped = self.instances_skipped = 0

    def add(self, frame: fastobo.abc.AbstractEntityFrame) -> None:
        if isinstance(frame, fastobo.term.TermFrame):
            self.term(frame)
        elif isinstance(frame, fastobo.typedef.TypedefFrame):
            for clause in frame:
                if isinstance(clause, fastobo.typedef.NameClause):
                    self.typedef_names[str(frame.id)] = clause.name.strip()
        else:
            self.instances_skipped += 1

    def term(self, frame: fastobo.term.TermFrame) -> None:
        key, name, aliases, definition = str(frame.id), "", [], ""
        for clause in frame:
            if isinstance(clause, fastobo.term.NameClause):
                name = clause.name.strip()
            elif isinstance(clause, fastobo.term.SynonymClause):
                if clause.synonym.scope in self.synonym_scopes:
                    aliases.append(clause.synonym.desc.strip())
            elif isinstance(clause, fastobo.term.DefClause):
                definition = str(clause.definition).strip()
            elif isinstance(clause, fastobo.term.IsAClause):
                self.edges.append((key, IS_A, str(clause.term)))
            elif isinstance(clause, fastobo.term.RelationshipClause):
                self.edges.append((key, str(clause.typedef), str(clause.term)))
            elif isinstance(clause, fastobo.term.IntersectionOfClause):
                if self.intersections:
                    relation = INTERSECTION_OF if clause.typedef is None else str(clause.typedef)
                    self.edges.append((key, relation, str(clause.term)))
                else:
                    self.intersections_skipped += 1
            elif isinstance(clause, fastobo.term.IsObsoleteClause) and clause.obsolete:
                self.obsolete.add(key)
        self.terms[key] = (name, tuple(a for a in dict.fromkeys(aliases) if a and a != name), definition)

    def finish(self, path: Path, relations: Iterable[str] | None, include_obsolete: bool) -> KnowledgeGraph:
        names = self.relation_names()
        wanted = None if relations is None else self.relation_filter(path, relations, names)
        skip = set() if include_obsolete else self.obsolete
        entities, relation_vocab = Vocab(k for k in self.terms if k not in skip), Vocab()
        ids, obsolete_edges = [], 0
        for h, r, t in self.edges:
            if wanted is not None and r not in wanted:
                continue
            if h in skip or t in skip:
                obsolete_edges += 1
                continue
            ids.append((entities.add(h), relation_vocab.add(r), entities.add(t)))
        if not ids:
            raise KGFormatError("contains no relations between terms (is_a, relationship)", path)
        labels, undeclared = {}, 0
        for key in entities.index:
            undeclared += key not in self.terms
            name, aliases, definition = self.terms.get(key, ("", (), ""))
            labels[key] = (name or key, aliases, definition)
        relation_ids = {names[r]: r for r in relation_vocab.keys}
        info = {
            "source": str(path),
            "reader": "read_obo",
            "relation_ids": relation_ids,
            "obsolete_terms_skipped": 0 if include_obsolete else len(self.obsolete),
            "obsolete_edges_skipped": obsolete_edges,
            "undeclared_terms": undeclared,
            "intersections_skipped": self.intersections_skipped,
            "instances_skipped": self.instances_skipped,
        }
        if undeclared:
            warnings.warn(
                f"{path}: {undeclared} terms named by edges have no [Term] and are labelled by their id.", stacklevel=3
            )
        return finish(entities, Vocab(list(relation_ids)), {"train": ids}, info, labels)

    def relation_names(self) -> dict[str, str]:
        """``{id: name}`` for every relation id in an edge: its typedef's name, else the id (also where names clash)."""
        ids = list(dict.fromkeys(r for _, r, _ in self.edges))
        wanted = {r: self.typedef_names.get(r) or r for r in ids}
        counts: dict[str, int] = {}
        for name in wanted.values():
            counts[name] = counts.get(name, 0) + 1
        return {r: name if counts[name] == 1 else r for r, name in wanted.items()}

    def relation_filter(self, path: Path, relations: Iterable[str], names: dict[str, str]) -> set[str]:
        """The relation ids that ``relations`` (ids or names) asks for; an error naming those the file lacks."""
        by_name = {name: r for r, name in names.items()}
        wanted, missing = set(), []
        for relation in relations:
            r = relation if relation in names else by_name.get(relation)
            if r is None:
                missing.append(relation)
            else:
                wanted.add(r)
        if missing:
            known = ", ".join(repr(n) for n in names.values())
            raise KGFormatError(f"has no relation {', '.join(map(repr, missing))}; its relations are {known}", path)
        return wanted
