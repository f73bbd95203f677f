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
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import warnings
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from kgpeft.errors import KGFileNotFoundError, KGFormatError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.graph.strings import RaggedStrings, StringTable

PathLike = str | os.PathLike
UnknownPolicy = Literal["add", "drop", "error"]
SPLIT_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}
# Labels-file rows encoded into string tables at a time.
_FLUSH = 1 << 16


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for every line of a UTF-8 file, line ending kept, a leading BOM dropped."""
    if not path.is_file():
        raise KGFileNotFoundError(f"KG file not found: {path}")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise KGFormatError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path, lineno) from None
            yield lineno, line


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for the non-blank lines of a UTF-8 file, without line endings."""
    for lineno, line in _decoded_lines(path):
        if line.strip():
            yield lineno, line.rstrip("\r\n")


def _delimiter_for(path: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    return "," if path.suffix.lower() == ".csv" else "\t"


def _records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first line number, fields)`` for the non-blank records of a delimited file.

    Comma-separated files are read with :mod:`csv`, so a quoted field may hold commas, doubled
    quotes and line breaks (``"New York, NY",located_in,USA``); other delimiters split each line
    as it is, quotes included.
    """
    if delimiter != ",":
        for lineno, line in _lines(path):
            yield lineno, line.split(delimiter)
        return
    reader = csv.reader((line for _, line in _decoded_lines(path)), strict=True)
    end = 0  # the last line of the previous record
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise KGFormatError(f"not valid CSV ({e})", path, reader.line_num) from None
        start, end = end + 1, reader.line_num
        if len(fields) > 1 or (fields and fields[0].strip()):
            yield start, fields


def _rows(
    path: Path, delimiter: str, min_cols: int, max_cols: int, header: bool = False
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)``, checking the column count and empty required fields."""
    expected = str(min_cols) if min_cols == max_cols else f"{min_cols} to {max_cols}"
    records = _records(path, delimiter)
    if header:
        next(records, None)
    for lineno, raw_fields in records:
        fields = [f.strip() for f in raw_fields]
        if not min_cols <= len(fields) <= max_cols:
            raise KGFormatError(
                f"expected {expected} columns separated by {delimiter!r}, got {len(fields)}", path, lineno
            )
        for i, field in enumerate(fields[:min_cols]):
            if not field:
                raise KGFormatError(f"column {i + 1} is empty", path, lineno)
        yield lineno, fields


def _triple_rows(path: Path, delimiter: str, header: bool) -> Iterator[tuple[int, str, str, str]]:
    """Yield ``(line_number, head, relation, tail)``; a file without triples is an error."""
    empty = True
    for lineno, (h, r, t) in _rows(path, delimiter, 3, 3, header):
        empty = False
        yield lineno, h, r, t
    if empty:
        raise KGFormatError("contains no triples", path)


def _triple_ids(rows: Iterator[tuple[int, str, str, str]], entities: _Vocab, relations: _Vocab) -> np.ndarray:
    """The ``(3, E)`` ids of ``rows``, adding new keys to the vocabularies."""
    ids = array("q")
    add_entity, add_relation, append = entities.add, relations.add, ids.append
    for _, h, r, t in rows:
        append(add_entity(h))
        append(add_relation(r))
        append(add_entity(t))
    return np.frombuffer(ids, dtype=np.int64).reshape(-1, 3).T


class _Vocab:
    """Keys to ids, in order of first appearance."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self.index: dict[str, int] = {}
        for k in keys:
            self.add(k)

    def add(self, key: str) -> int:
        index = self.index
        i = index.get(key)
        if i is None:
            i = index[key] = len(index)
        return i

    @property
    def keys(self) -> list[str]:
        return list(self.index)

    def table(self) -> StringTable:
        return StringTable.from_strings(self.index)


class _Labels:
    """Labels file rows as string tables, read in one streaming pass (see :func:`read_entity_labels`).

    Row ``i`` labels entity ``entity[i]``; :meth:`columns` orders them by entity id.
    """

    def __init__(self, path: Path, entities: _Vocab, delimiter: str | None = None) -> None:
        self.path = path
        entity, linenos = array("q"), array("q")
        alias_counts = array("q")

        def fields() -> Iterator[tuple[str, str, str]]:
            for lineno, row in _rows(path, _delimiter_for(path, delimiter), 2, 4):
                entity.append(entities.add(row[0]))
                linenos.append(lineno)
                aliases = [a.strip() for a in row[2].split("|") if a.strip()] if len(row) > 2 else []
                alias_counts.append(len(aliases))
                yield row[1], "\x00".join(aliases), row[3] if len(row) > 3 else ""

        # One pass over the file into three columns; aliases are split out of their joined form below.
        label_rows, alias_rows, description_rows = [], [], []
        for label, aliases, description in fields():
            label_rows.append(label)
            alias_rows.append(aliases)
            description_rows.append(description)
            if len(label_rows) == _FLUSH:
                self._flush(label_rows, alias_rows, description_rows)
        self._flush(label_rows, alias_rows, description_rows)
        self.entity = np.frombuffer(entity, dtype=np.int64)
        self.linenos = np.frombuffer(linenos, dtype=np.int64)
        self.alias_counts = np.frombuffer(alias_counts, dtype=np.int64)
        self._check_unique(entities)

    _parts: list[tuple[StringTable, StringTable, StringTable]]

    def _flush(self, labels: list[str], aliases: list[str], descriptions: list[str]) -> None:
        if not hasattr(self, "_parts"):
            self._parts = []
        if labels:
            alias_table = StringTable.from_strings(a for joined in aliases if joined for a in joined.split("\x00"))
            self._parts.append((StringTable.from_strings(labels), alias_table, StringTable.from_strings(descriptions)))
        labels.clear(), aliases.clear(), descriptions.clear()

    def _check_unique(self, entities: _Vocab) -> None:
        order = np.argsort(self.entity, kind="stable")
        repeated = np.flatnonzero(np.diff(self.entity[order]) == 0)
        if repeated.size:
            # The first line that repeats an earlier key, and that key's first line.
            later = order[repeated + 1]
            i = int(later[np.argmin(self.linenos[later])])
            first = int(self.linenos[np.flatnonzero(self.entity == self.entity[i])[0]])
            key = next(k for k, v in entities.index.items() if v == self.entity[i])
            raise KGFormatError(f"entity {key!r} already labelled on line {first}", self.path, int(self.linenos[i]))

    def columns(self, keys: StringTable) -> tuple[StringTable, RaggedStrings, StringTable]:
        """Labels, aliases and descriptions of all ``len(keys)`` entities, by id.

        An entity without a row is labelled with its key, without aliases or description.
        """
        n, rows = len(keys), self.entity.size
        labels = _concat([p[0] for p in self._parts])
        descriptions = _concat([p[2] for p in self._parts])
        alias_strings = _concat([p[1] for p in self._parts])
        row_of = np.full(n, -1, dtype=np.int64)
        row_of[self.entity] = np.arange(rows)
        labelled = row_of >= 0
        # Labels: a row's label, else the key (row ids past `rows` pick keys).
        label_index = np.where(labelled, row_of, rows + np.arange(n))
        out_labels = _take(_concat([labels, keys]), label_index)
        empty = StringTable.from_strings([""])
        out_descriptions = _take(_concat([descriptions, empty]), np.where(labelled, row_of, rows))
        alias_rowptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(self.alias_counts, out=alias_rowptr[1:])
        counts = np.where(labelled, self.alias_counts[np.maximum(row_of, 0)], 0)
        starts = alias_rowptr[np.maximum(row_of, 0)]
        out_rowptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=out_rowptr[1:])
        alias_index = np.repeat(starts - out_rowptr[:-1], counts) + np.arange(int(out_rowptr[-1]))
        out_aliases = RaggedStrings(_take(alias_strings, alias_index), out_rowptr)
        return out_labels, out_aliases, out_descriptions


def _concat(tables: Sequence[StringTable]) -> StringTable:
    if not tables:
        return StringTable.from_strings(())
    data = np.concatenate([t.data for t in tables])
    shifts = np.cumsum([0] + [t.data.size for t in tables[:-1]])
    offsets = np.concatenate([[0], *(t.offsets[1:] + s for t, s in zip(tables, shifts, strict=True))])
    return StringTable(data, offsets)


def _take(table: StringTable, index: np.ndarray) -> StringTable:
    """The strings ``table[i] for i in index`` as a new table, gathered with numpy."""
    starts, lengths = table.offsets[index], np.diff(table.offsets)[index]
    offsets = np.zeros(index.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
    return StringTable(table.data[positions], offsets)


def _dedupe(triples: np.ndarray, num_entities: int, num_relations: int) -> tuple[np.ndarray, int]:
    """Drop repeated columns of a ``(3, E)`` array, keeping first occurrences in order."""
    h, r, t = triples.astype(np.int64)
    key = (h * num_relations + r) * num_entities + t
    _, first = np.unique(key, return_index=True)
    first.sort()
    return triples[:, first], triples.shape[1] - first.size


def _finish(
    entities: _Vocab,
    relations: _Vocab,
    split_ids: dict[str, np.ndarray | list[tuple[int, int, int]]],
    info: dict,
    labels: dict[str, tuple[str, tuple[str, ...], str]] | _Labels | None = None,
    graph_split: str = "train",
) -> KnowledgeGraph:
    """Dedupe each split, attach labels and build the KG (``triples`` is ``graph_split``)."""
    n, r = len(entities.index), len(relations.index)
    splits, dropped = {}, {}
    for name, ids in split_ids.items():
        ids = np.asarray(ids, dtype=np.int64).reshape(-1, 3).T if isinstance(ids, list) else ids
        splits[name], dropped[name] = _dedupe(ids, n, r)
    if any(dropped.values()):
        warnings.warn(
            f"Dropped repeated triples: {', '.join(f'{k}: {v}' for k, v in dropped.items() if v)}.", stacklevel=3
        )
    info["duplicates_dropped"] = dropped
    keys = entities.table()
    kwargs = {}
    if isinstance(labels, _Labels):
        kwargs["labels"], kwargs["aliases"], kwargs["descriptions"] = labels.columns(keys)
    elif labels is not None:
        kwargs["labels"] = [labels[k][0] if k in labels else k for k in keys]
        kwargs["aliases"] = [labels[k][1] if k in labels else () for k in keys]
        kwargs["descriptions"] = [labels[k][2] if k in labels else "" for k in keys]
    graph = splits[graph_split]
    extra_splits = {k: torch.from_numpy(v) for k, v in splits.items()} if len(splits) > 1 else None
    kg = KnowledgeGraph(keys, relations.keys, torch.from_numpy(graph), splits=extra_splits, info=info, **kwargs)
    kg._entity_index_ = entities.index  # the reader's vocabulary is the key index, checked unique
    return kg


def read_entity_labels(path: PathLike, delimiter: str | None = None) -> dict[str, tuple[str, tuple[str, ...], str]]:
    """Read an entity labels file: ``key, label[, aliases[, description]]`` per line.

    Aliases are separated by ``|``. Returns ``{key: (label, aliases, description)}``.
    A key listed twice is an error naming both lines.
    """
    path = Path(path)
    out: dict[str, tuple[str, tuple[str, ...], str]] = {}
    first_line: dict[str, int] = {}
    for lineno, fields in _rows(path, _delimiter_for(path, delimiter), 2, 4):
        key, label = fields[0], fields[1]
        if key in out:
            raise KGFormatError(f"entity {key!r} already labelled on line {first_line[key]}", path, lineno)
        aliases = tuple(a.strip() for a in fields[2].split("|") if a.strip()) if len(fields) > 2 else ()
        out[key] = (label, aliases, fields[3] if len(fields) > 3 else "")
        first_line[key] = lineno
    return out


def read_triples(
    path: PathLike,
    *,
    delimiter: str | None = None,
    header: bool = False,
    labels: PathLike | None = None,
) -> KnowledgeGraph:
    """Read a TSV/CSV file of ``head, relation, tail`` rows.

    Comma-separated files follow CSV quoting (``"New York, NY",located_in,USA`` has three
    fields, quotes removed); tab-separated lines are split at each tab, quotes kept.

    Args:
        path: the triples file.
        delimiter: the column separator. (default: ``","`` for ``.csv`` files, else tab)
        header: skip the first non-blank line. (default: ``False``)
        labels: an optional entity labels file (see :func:`read_entity_labels`). Entities
            it names that appear in no triple are kept, without edges. (default: ``None``)
    """
    path = Path(path)
    entities, relations = _Vocab(), _Vocab()
    ids = _triple_ids(_triple_rows(path, _delimiter_for(path, delimiter), header), entities, relations)
    label_rows = None if labels is None else _Labels(Path(labels), entities)
    info = {"source": str(path), "reader": "read_triples"}
    return _finish(entities, relations, {"train": ids}, info, label_rows)


def read_pykeen_folder(
    path: PathLike,
    *,
    unknown: UnknownPolicy = "add",
    labels: PathLike | None = None,
) -> KnowledgeGraph:
    """Read a folder with ``train.txt``, ``valid.txt`` and ``test.txt`` (tab-separated triples).

    The KG's :attr:`~KnowledgeGraph.triples` are the training split; all three are in
    :attr:`~KnowledgeGraph.splits`. Entity and relation ids follow first appearance in
    train, then valid, then test.

    Args:
        path: the folder.
        unknown: what to do with a valid/test triple whose entity or relation never
            occurs in training. ``"add"`` keeps it and adds the entity to the vocabulary
            (it has no edges in the graph; text features still describe it); ``"drop"``
            removes the triple and counts it in ``kg.info["unknown_dropped"]`` with a
            warning; ``"error"`` raises, naming file and line. (default: ``"add"``)
        labels: an optional entity labels file (see :func:`read_entity_labels`).
            (default: ``None``)
    """
    if unknown not in ("add", "drop", "error"):
        raise ValueError(f"`unknown` should be one of 'add', 'drop', 'error', got {unknown!r}.")
    folder = Path(path)
    if not folder.is_dir():
        raise KGFileNotFoundError(f"KG folder not found: {folder}")
    entities, relations = _Vocab(), _Vocab()
    split_ids: dict[str, np.ndarray] = {}
    unknown_added = {}
    unknown_dropped = {}
    for split, filename in SPLIT_FILES.items():
        file = folder / filename
        rows = _triple_rows(file, "\t", header=False)
        if split == "train":
            split_ids[split] = _triple_ids(rows, entities, relations)
            continue
        known_e, known_r = len(entities.index), len(relations.index)
        ids, added, dropped = array("q"), 0, 0
        e_index, r_index = entities.index, relations.index
        for lineno, h, r, t in rows:
            ids_h, ids_r, ids_t = e_index.get(h, known_e), r_index.get(r, known_r), e_index.get(t, known_e)
            if ids_h >= known_e or ids_r >= known_r or ids_t >= known_e:
                new = [
                    k for k, i, bound in [(h, ids_h, known_e), (r, ids_r, known_r), (t, ids_t, known_e)] if i >= bound
                ]
                if unknown == "error":
                    raise KGFormatError(f"{', '.join(map(repr, new))} not in the training split", file, lineno)
                if unknown == "drop":
                    dropped += 1
                    continue
                added += 1
                ids_h, ids_r, ids_t = entities.add(h), relations.add(r), entities.add(t)
            ids.extend((ids_h, ids_r, ids_t))
        split_ids[split] = np.frombuffer(ids, dtype=np.int64).reshape(-1, 3).T
        unknown_added[split], unknown_dropped[split] = added, dropped
    if any(unknown_dropped.values()):
        warnings.warn(
            f"Dropped triples with entities or relations unknown to training: {unknown_dropped}.", stacklevel=2
        )
    label_rows = None if labels is None else _Labels(Path(labels), entities)
    info = {
        "source": str(folder),
        "reader": "read_pykeen_folder",
        "unknown_policy": unknown,
        "unknown_added": unknown_added,
        "unknown_dropped": unknown_dropped,
    }
    return _finish(entities, relations, split_ids, info, label_rows)


# ---------------------------------------------------------------------------- N-Triples
_IRI = r"<([^<>\"{}|^`\\\x00-\x20]*)>"
_BNODE = r"(_:[A-Za-z0-9_][A-Za-z0-9_.\-]*)"
_LITERAL = r"\"((?:[^\"\\\n\r]|\\.)*)\"(?:@([A-Za-z]+(?:-[A-Za-z0-9]+)*)|\^\^<([^>]*)>)?"
_NT_LINE = re.compile(rf"^\s*(?:{_IRI}|{_BNODE})\s+{_IRI}\s+(?:{_IRI}|{_BNODE}|{_LITERAL})\s*\.\s*(?:#.*)?$")
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))")
_SIMPLE_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}

RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
LABEL_PREDICATES = (RDFS + "label", SKOS + "prefLabel", "http://schema.org/name")
ALIAS_PREDICATES = (SKOS + "altLabel", "http://schema.org/alternateName")
DESCRIPTION_PREDICATES = (RDFS + "comment", SKOS + "definition", "http://schema.org/description")


def _unescape(text: str, path: Path, lineno: int) -> str:
    def sub(m: re.Match) -> str:
        if m.group(3) is not None:
            if m.group(3) not in _SIMPLE_ESCAPES:
                raise KGFormatError(f"unknown escape '\\{m.group(3)}' in literal", path, lineno)
            return _SIMPLE_ESCAPES[m.group(3)]
        code = int(m.group(1) or m.group(2), 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise KGFormatError(f"escape '{m.group(0)}' is not a Unicode character", path, lineno)
        return chr(code)

    return _ESCAPE.sub(sub, text) if "\\" in text else text


def _local_name(iri: str) -> str:
    return re.split(r"[/#:]", iri.rstrip("/#"))[-1] or iri


def _in_language(tag: str, language: str) -> bool:
    """Whether the BCP-47 ``tag`` falls under ``language`` (lowercase): equal to it or extending it."""
    tag = tag.lower()
    return tag == language or tag.startswith(language + "-")


def read_ntriples(path: PathLike, *, language: str | None = "en") -> KnowledgeGraph:
    """Read an N-Triples file.

    IRI and blank-node objects give triples. Literal objects describe their subject:
    ``rdfs:label``/``skos:prefLabel``/``schema:name`` give the label (further ones become
    aliases), ``skos:altLabel``/``schema:alternateName`` aliases, and
    ``rdfs:comment``/``skos:definition``/``schema:description`` the description. Other
    literals (numbers, dates) are not graph edges; they are counted in
    ``kg.info["literals_skipped"]`` and reported with a warning. Entities without a
    label get their IRI's local name.

    Args:
        path: the ``.nt`` file.
        language: keep only language-tagged names in this language, a BCP-47 prefix
            compared case-insensitively (``"en"`` keeps ``@en``, ``@EN`` and ``@en-GB``;
            untagged names are always kept); ``None`` keeps all. (default: ``"en"``)
    """
    path = Path(path)
    language = language.lower() if language else None
    entities, relations = _Vocab(), _Vocab()
    ids: list[tuple[int, int, int]] = []
    label_forms: dict[str, list[str]] = {}
    alias_forms: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    skipped = other_language = 0
    for lineno, line in _lines(path):
        if line.lstrip().startswith("#"):
            continue
        m = _NT_LINE.match(line)
        if m is None:
            raise KGFormatError("not a valid N-Triples statement '<s> <p> <o> .'", path, lineno)
        subject = m.group(1) if m.group(1) is not None else m.group(2)
        predicate = m.group(3)
        obj = m.group(4) if m.group(4) is not None else m.group(5)
        if obj is not None:
            ids.append((entities.add(subject), relations.add(predicate), entities.add(obj)))
            continue
        value, lang = _unescape(m.group(6), path, lineno), m.group(7)
        is_name = predicate in LABEL_PREDICATES or predicate in ALIAS_PREDICATES
        if (is_name or predicate in DESCRIPTION_PREDICATES) and language and lang and not _in_language(lang, language):
            other_language += 1
            continue
        entities.add(subject)
        if predicate in LABEL_PREDICATES:
            label_forms.setdefault(subject, []).append(value)
        elif predicate in ALIAS_PREDICATES:
            alias_forms.setdefault(subject, []).append(value)
        elif predicate in DESCRIPTION_PREDICATES:
            descriptions.setdefault(subject, value)
        else:
            skipped += 1
    if not ids:
        raise KGFormatError("contains no triples between resources", path)
    if skipped:
        warnings.warn(f"{path}: {skipped} literal-valued triples are not graph edges and were skipped.", stacklevel=2)
    labels = {}
    for key in entities.keys:
        forms = list(dict.fromkeys([*label_forms.get(key, ()), *alias_forms.get(key, ())]))
        label = forms[0] if forms else _local_name(key)
        labels[key] = (label, tuple(forms[1:]), descriptions.get(key, ""))
    info = {
        "source": str(path),
        "reader": "read_ntriples",
        "literals_skipped": skipped,
        "names_in_other_languages": other_language,
    }
    return _finish(entities, relations, {"train": ids}, info, labels)
