"""Reading KG text files: UTF-8 lines (gzip, bzip2 or xz compressed or not), delimited records and rows
checked for their columns."""

from __future__ import annotations

import codecs
import csv
import itertools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from kgpeft.errors import KGFormatError
from kgpeft.graph.readers.compression import (
    CORRUPT_COMPRESSED,
    DECOMPRESSION_ERRORS,
    is_compressed,
    open_binary,
    plain_suffix,
)

PathLike = str | os.PathLike
#: ``True``, ``False`` or ``"auto"``: the first row names the columns when it holds only known column names.
Header = bool | Literal["auto"]

#: The keys of a ``columns`` mapping, in the order of a triple.
TRIPLE_COLUMNS = ("head", "relation", "tail")
#: The names a header row of a triples file may give its columns, case-insensitively (``header: auto``).
TRIPLE_HEADER_NAMES = frozenset(
    {"head", "relation", "tail", "subject", "predicate", "object", "source", "target", "h", "r", "t", "s", "p", "o"}
)
#: The names a header row of a labels file may give its columns (``header: auto``).
LABEL_HEADER_NAMES = frozenset(
    {"id", "key", "entity", "name", "label", "synonyms", "aliases", "definition", "description"}
)


def decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for every line of a UTF-8 file, line ending kept, a leading BOM dropped.

    A compressed file (:func:`~kgpeft.graph.readers.compression.open_binary`) is decompressed as it streams;
    corrupt or truncated compressed data is a :class:`KGFormatError` naming the line it breaks off at.
    """
    with open_binary(path) as f:
        lines = enumerate(f, start=1)
        lineno = 0
        while True:
            try:
                lineno, raw = next(lines)
            except StopIteration:
                return
            except DECOMPRESSION_ERRORS as e:
                if not is_compressed(f):  # a failing disk, not a broken file
                    raise
                raise KGFormatError(f"{CORRUPT_COMPRESSED} ({e})", path, lineno + 1) from None
            if lineno == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise KGFormatError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path, lineno) from None
            yield lineno, line


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for the non-blank lines of a UTF-8 file, without line endings."""
    for lineno, line in decoded_lines(path):
        if line.strip():
            yield lineno, line.rstrip("\r\n")


def delimiter_for(path: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    return "," if plain_suffix(path) == ".csv" else "\t"


def _records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first line number, fields)`` for the non-blank records of a delimited file.

    Comma-separated files are read with :mod:`csv`, so a quoted field may hold commas, doubled
    quotes and line breaks (``"New York, NY",located_in,USA``); other delimiters split each line
    as it is, quotes included.
    """
    if delimiter != ",":
        for lineno, line in text_lines(path):
            yield lineno, line.split(delimiter)
        return
    reader = csv.reader((line for _, line in decoded_lines(path)), strict=True)
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


def is_header(fields: list[str], names: frozenset[str]) -> bool:
    """Whether a first row's ``fields`` are all known column ``names`` (case-insensitively): a header row."""
    return all(f.strip().lower() in names for f in fields)


def checked_rows(
    path: Path,
    delimiter: str,
    min_cols: int,
    max_cols: int,
    header: Header = False,
    header_names: frozenset[str] = frozenset(),
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)``, checking the column count and empty required fields.

    ``header``: skip the first row (``True``), or skip it if it holds only ``header_names`` (``"auto"``).
    """
    expected = str(min_cols) if min_cols == max_cols else f"{min_cols} to {max_cols}"
    records = _records(path, delimiter)
    if header:
        first = next(records, None)
        if first is not None and header == "auto" and not is_header(first[1], header_names):
            records = itertools.chain([first], records)
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


def triple_rows(
    path: Path, delimiter: str, header: Header = False, columns: Mapping[str, str | int] | None = None
) -> Iterator[tuple[int, str, str, str]]:
    """Yield ``(line_number, head, relation, tail)``; a file without triples is an error.

    Without ``columns`` each row is ``head, relation, tail``; with them (``{"head": "subject", ...}``:
    header names, or 0-based column numbers) rows may have more columns, as many as the first row.
    """
    if columns is None:
        rows = ((n, *fields) for n, fields in checked_rows(path, delimiter, 3, 3, header, TRIPLE_HEADER_NAMES))
    else:
        rows = _mapped_rows(path, delimiter, header, columns)
    empty = True
    for row in rows:
        empty = False
        yield row
    if empty:
        raise KGFormatError("contains no triples", path)


def _mapped_rows(
    path: Path, delimiter: str, header: Header, columns: Mapping[str, str | int]
) -> Iterator[tuple[int, str, str, str]]:
    """The triples of a file whose ``columns`` say where head, relation and tail are (see :func:`triple_rows`)."""
    records = _records(path, delimiter)
    first = next(records, None)
    if first is None:
        return
    top, names = first[0], [f.strip() for f in first[1]]
    by_name = any(isinstance(c, str) for c in columns.values())
    if by_name and header is False:
        raise KGFormatError("`columns` names header columns but `header` is false; set `header: true`", path, top)
    has_header = header is True or (header == "auto" and (by_name or is_header(names, TRIPLE_HEADER_NAMES)))
    index = []
    for key in TRIPLE_COLUMNS:
        column = columns[key]
        if isinstance(column, str) and column not in names:
            raise KGFormatError(
                f"column {column!r} (`columns.{key}`) is not in the header ({', '.join(map(repr, names))})", path, top
            )
        index.append(names.index(column) if isinstance(column, str) else column)
    width = len(names)
    if max(index) >= width:
        raise KGFormatError(f"`columns` asks for column {max(index) + 1} of rows with {width} columns", path, top)
    for lineno, raw in records if has_header else itertools.chain([first], records):
        fields = [f.strip() for f in raw]
        if len(fields) != width:
            raise KGFormatError(
                f"expected {width} columns separated by {delimiter!r} (as on line {top}), got {len(fields)}",
                path,
                lineno,
            )
        triple = [fields[i] for i in index]
        for key, value in zip(TRIPLE_COLUMNS, triple, strict=True):
            if not value:
                raise KGFormatError(f"the {key} column ({columns[key]!r}) is empty", path, lineno)
        yield lineno, *triple
