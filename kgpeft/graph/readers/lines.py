"""Reading KG text files: UTF-8 lines, delimited records and rows checked for their columns."""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator
from pathlib import Path

from kgpeft.errors import KGFileNotFoundError, KGFormatError

PathLike = str | os.PathLike


def decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
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


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for the non-blank lines of a UTF-8 file, without line endings."""
    for lineno, line in decoded_lines(path):
        if line.strip():
            yield lineno, line.rstrip("\r\n")


def delimiter_for(path: Path, delimiter: str | None) -> str:
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


def checked_rows(
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


def triple_rows(path: Path, delimiter: str, header: bool) -> Iterator[tuple[int, str, str, str]]:
    """Yield ``(line_number, head, relation, tail)``; a file without triples is an error."""
    empty = True
    for lineno, (h, r, t) in checked_rows(path, delimiter, 3, 3, header):
        empty = False
        yield lineno, h, r, t
    if empty:
        raise KGFormatError("contains no triples", path)
