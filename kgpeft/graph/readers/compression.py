"""Opening KG files that may be compressed: gzip (``.gz``), bzip2 (``.bz2``) and xz (``.xz``), by suffix."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path
from typing import BinaryIO

from kgpeft.errors import KGFileNotFoundError

_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# What reading a corrupt or truncated compressed file raises (bzip2's "Invalid data stream" is a plain OSError,
# too broad to catch here).
DECOMPRESSION_ERRORS = (gzip.BadGzipFile, zlib.error, lzma.LZMAError, EOFError)


def open_binary(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed on the fly when its suffix names a compression."""
    if not path.is_file():
        raise KGFileNotFoundError(f"KG file not found: {path}")
    opener = _OPENERS.get(path.suffix.lower(), open)
    return opener(path, "rb")


def uncompressed_suffix(path: Path) -> str:
    """The suffix that names ``path``'s format, lowercase: ``kg.ttl.gz`` gives ``.ttl``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _OPENERS:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""
