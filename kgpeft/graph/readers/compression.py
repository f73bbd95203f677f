"""Opening KG files that may be compressed: gzip, bzip2 or xz data, recognised by its first bytes whatever the
file is called (a ``.ttl`` that is gzip data is decompressed, a ``.gz`` that is plain text read as it is)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

from kgpeft.errors import KGFileNotFoundError

#: The openers of compressed data, by its first bytes.
COMPRESSIONS: dict[bytes, Callable[..., IO[bytes]]] = {
    b"\x1f\x8b": gzip.open,
    b"BZh": bz2.open,
    b"\xfd7zXZ\x00": lzma.open,
}
#: Stripped before a file's format is guessed from its name (``kg.nt.gz`` is N-Triples).
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
#: What reading corrupt or truncated compressed data raises (bzip2's "Invalid data stream" and gzip's bad
#: CRC are plain OSErrors, so a reader takes these for broken data only where :func:`is_compressed`).
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
#: What a reader's error says of such data.
CORRUPT_COMPRESSED = "compressed data is corrupt or truncated"


def open_binary(path: Path) -> IO[bytes]:
    """``path`` opened for reading bytes, decompressed as it is read if it is gzip, bzip2 or xz data.

    Raises:
        KGFileNotFoundError: ``path`` is not a file; the message names it.
    """
    if not path.is_file():
        raise KGFileNotFoundError(f"KG file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(6)
    opener = next((o for m, o in COMPRESSIONS.items() if magic.startswith(m)), open)
    return opener(path, "rb")


def is_compressed(f: IO[bytes]) -> bool:
    """Whether ``f``, from :func:`open_binary`, decompresses: an error reading it is then the data's, not the disk's."""
    return not isinstance(f, io.BufferedReader)


def plain_suffix(path: Path) -> str:
    """The lowercased suffix of ``path`` once a compression suffix is stripped: ``.nt`` for ``kg.nt.gz``."""
    name = path.name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    return Path(name).suffix
