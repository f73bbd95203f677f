"""Files on disk that every layer needs: the cache folder and file digests.

This module sits at the bottom of the layering (it imports nothing from kgpeft), so the
linker, the label-token table and the packaged-model loader can keep their caches here
without importing the datasets or checkpoint modules above them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """Where parsed datasets and derived tables are kept: ``$KGPEFT_CACHE``, else ``~/.cache/kgpeft``."""
    return Path(os.environ.get("KGPEFT_CACHE", Path.home() / ".cache" / "kgpeft"))


def file_sha256(file: Path) -> str:
    """The SHA-256 digest of a file, in hex."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
