"""Compact string columns: millions of strings in two arrays, not a Python object each.

A :class:`StringTable` holds strings as one UTF-8 byte array and ``n + 1`` offsets; a
:class:`RaggedStrings` groups such strings per row (an entity's aliases). Both are read-only
sequences, decoded on access, so a memory-mapped table costs memory only for the strings
that are read. :class:`~kgpeft.graph.KnowledgeGraph` keeps its vocabularies in them when
loaded with ``mmap=True`` and saves them this way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import overload

import numpy as np

# Decoding in chunks bounds the memory a full pass (iteration, a digest) needs.
_CHUNK = 1 << 16


def _as_array(a: np.ndarray, dtype: type, name: str) -> np.ndarray:
    if a.ndim != 1:
        raise ValueError(f"`{name}` should be 1-D, got shape {a.shape}.")
    return a if a.dtype == dtype else a.astype(dtype)


class StringTable(Sequence[str]):
    """An immutable sequence of strings stored as UTF-8 ``data`` and ``offsets``.

    String ``i`` is ``data[offsets[i]:offsets[i + 1]]`` decoded. Indexing with an int gives
    a ``str``, with a slice a ``list``; iteration and ``==`` against any sequence of
    strings work as for a list.

    Args:
        data (np.ndarray): ``uint8`` bytes of all strings, one after another.
        offsets (np.ndarray): ``int64`` of shape ``(n + 1,)``, non-decreasing, starting at 0
            and ending at ``len(data)``.
    """

    __slots__ = ("data", "offsets")

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data = _as_array(np.asanyarray(data), np.uint8, "data")
        self.offsets = _as_array(np.asanyarray(offsets), np.int64, "offsets")
        if self.offsets.size == 0 or self.offsets[0] != 0 or self.offsets[-1] != self.data.size:
            raise ValueError(
                f"`offsets` should start at 0 and end at len(data) ({self.data.size}), "
                f"got {self.offsets[:1].tolist()}..{self.offsets[-1:].tolist()}."
            )

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> StringTable:
        """Encode ``strings`` (any iterable, consumed once, in chunks)."""
        chunks: list[bytes] = []
        lengths: list[np.ndarray] = []
        batch: list[bytes] = []
        for s in strings:
            batch.append(s.encode("utf-8"))
            if len(batch) == _CHUNK:
                chunks.append(b"".join(batch))
                lengths.append(np.fromiter(map(len, batch), dtype=np.int64, count=len(batch)))
                batch = []
        if batch:
            chunks.append(b"".join(batch))
            lengths.append(np.fromiter(map(len, batch), dtype=np.int64, count=len(batch)))
        offsets = np.zeros(1 + sum(map(len, lengths)), dtype=np.int64)
        if lengths:
            np.cumsum(np.concatenate(lengths), out=offsets[1:])
        data = np.frombuffer(b"".join(chunks), dtype=np.uint8) if chunks else np.zeros(0, dtype=np.uint8)
        return cls(data, offsets)

    def __len__(self) -> int:
        return self.offsets.size - 1

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return self._decode_range(*index.indices(len(self)))
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"string index {index} out of range for {n} strings")
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.data[lo:hi].tobytes().decode("utf-8")

    def _decode_range(self, start: int, stop: int, step: int = 1) -> list[str]:
        if step != 1:
            return [self[i] for i in range(start, stop, step)]
        if stop <= start:
            return []
        off = self.offsets[start : stop + 1]
        blob = self.data[off[0] : off[-1]].tobytes()
        rel = (off - off[0]).tolist()
        # Slicing bytes then decoding each piece; faster than per-item numpy slicing.
        return [blob[a:b].decode("utf-8") for a, b in pairwise(rel)]

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), _CHUNK):
            yield from self._decode_range(start, min(start + _CHUNK, len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StringTable):
            return np.array_equal(self.offsets, other.offsets) and np.array_equal(self.data, other.data)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking equality, like a list

    def __add__(self, other: Sequence[str]) -> list[str]:
        return [*self, *other]

    def __radd__(self, other: Sequence[str]) -> list[str]:
        return [*other, *self]

    def digest(self) -> str:
        """SHA-256 of the offsets and bytes (what :meth:`KnowledgeGraph.load` checks)."""
        h = hashlib.sha256()
        offsets = np.ascontiguousarray(self.offsets, dtype="<i8").view(np.uint8)  # no copy of a saved table
        for start in range(0, offsets.size, 1 << 24):
            h.update(offsets[start : start + (1 << 24)])
        for start in range(0, self.data.size, 1 << 24):
            h.update(self.data[start : start + (1 << 24)])
        return h.hexdigest()

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self[:3]))
        return f"{type(self).__name__}([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"


class RaggedStrings(Sequence[tuple[str, ...]]):
    """Per row, a tuple of strings (e.g. an entity's aliases): a :class:`StringTable` and row pointers.

    Row ``i`` is ``tuple(strings[rowptr[i]:rowptr[i + 1]])``.

    Args:
        strings (StringTable): all strings, row after row.
        rowptr (np.ndarray): ``int64`` of shape ``(rows + 1,)``, from 0 to ``len(strings)``.
    """

    __slots__ = ("rowptr", "strings")

    def __init__(self, strings: StringTable, rowptr: np.ndarray) -> None:
        self.strings = strings
        self.rowptr = _as_array(np.asanyarray(rowptr), np.int64, "rowptr")
        if self.rowptr.size == 0 or self.rowptr[0] != 0 or self.rowptr[-1] != len(strings):
            raise ValueError(f"`rowptr` should start at 0 and end at the number of strings ({len(strings)}).")

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[str]]) -> RaggedStrings:
        counts: list[int] = []

        def flat() -> Iterator[str]:
            for row in rows:
                counts.append(len(row))
                yield from row

        strings = StringTable.from_strings(flat())
        rowptr = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(np.asarray(counts, dtype=np.int64), out=rowptr[1:])
        return cls(strings, rowptr)

    @property
    def num_strings(self) -> int:
        return len(self.strings)

    def __len__(self) -> int:
        return self.rowptr.size - 1

    @overload
    def __getitem__(self, index: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, ...]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, ...] | list[tuple[str, ...]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"row index {index} out of range for {n} rows")
        lo, hi = int(self.rowptr[i]), int(self.rowptr[i + 1])
        return () if lo == hi else tuple(self.strings._decode_range(lo, hi))

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        ptr = self.rowptr
        for start in range(0, len(self), _CHUNK):
            stop = min(start + _CHUNK, len(self))
            lo, hi = int(ptr[start]), int(ptr[stop])
            flat = self.strings._decode_range(lo, hi)
            rel = (ptr[start : stop + 1] - lo).tolist()
            for a, b in pairwise(rel):
                yield tuple(flat[a:b])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RaggedStrings):
            return np.array_equal(self.rowptr, other.rowptr) and self.strings == other.strings
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == tuple(b) for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rows={len(self)}, strings={len(self.strings)})"


def string_table(strings: Sequence[str] | StringTable) -> StringTable:
    """``strings`` as a :class:`StringTable` (itself if it is one)."""
    return strings if isinstance(strings, StringTable) else StringTable.from_strings(strings)


def ragged_strings(rows: Sequence[Sequence[str]] | RaggedStrings) -> RaggedStrings:
    """``rows`` as :class:`RaggedStrings` (itself if it is one)."""
    return rows if isinstance(rows, RaggedStrings) else RaggedStrings.from_rows(rows)
