"""Entity labels files: ``key, label[, aliases[, description]]`` per line, aliases separated by ``|``."""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from kgpeft.errors import KGFormatError
from kgpeft.graph.readers.building import Vocab
from kgpeft.graph.readers.lines import LABEL_HEADER_NAMES, Header, PathLike, checked_rows, delimiter_for
from kgpeft.graph.strings import RaggedStrings, StringTable

# Labels-file rows encoded into string tables at a time.
_FLUSH = 1 << 16


def read_entity_labels(
    path: PathLike, delimiter: str | None = None, header: Header = "auto"
) -> dict[str, tuple[str, tuple[str, ...], str]]:
    """Read an entity labels file: ``key, label[, aliases[, description]]`` per line.

    Aliases are separated by ``|``. Returns ``{key: (label, aliases, description)}``.
    A key listed twice is an error naming both lines. ``header``: the first row names the columns
    (``True``), or does when it holds only names like ``id, name, synonyms, definition`` (``"auto"``,
    :data:`~kgpeft.graph.readers.lines.LABEL_HEADER_NAMES`).
    """
    path = Path(path)
    out: dict[str, tuple[str, tuple[str, ...], str]] = {}
    first_line: dict[str, int] = {}
    for lineno, fields in checked_rows(path, delimiter_for(path, delimiter), 2, 4, header, LABEL_HEADER_NAMES):
        key, label = fields[0], fields[1]
        if key in out:
            raise KGFormatError(f"entity {key!r} already labelled on line {first_line[key]}", path, lineno)
        aliases = tuple(a.strip() for a in fields[2].split("|") if a.strip()) if len(fields) > 2 else ()
        out[key] = (label, aliases, fields[3] if len(fields) > 3 else "")
        first_line[key] = lineno
    return out


class LabelRows:
    """Labels file rows as string tables, read in one streaming pass (see :func:`read_entity_labels`).

    Row ``i`` labels entity ``entity[i]``; :meth:`columns` orders them by entity id.
    """

    def __init__(self, path: Path, entities: Vocab, delimiter: str | None = None, header: Header = "auto") -> None:
        self.path = path
        entity, linenos = array("q"), array("q")
        alias_counts = array("q")

        def fields() -> Iterator[tuple[str, str, str]]:
            rows = checked_rows(path, delimiter_for(path, delimiter), 2, 4, header, LABEL_HEADER_NAMES)
            for lineno, row in rows:
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

    def _check_unique(self, entities: Vocab) -> None:
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
