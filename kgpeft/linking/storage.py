"""The folder :meth:`~kgpeft.linking.EntityLinker.save` writes, its checks on reading, and the cache key.

A saved linker is one ``<name>.npy`` per alias table (no pickles) and ``linker.json``, which
names the format and its version, the KG's fingerprint, the settings and the SHA-256 digest,
dtype and size of each table.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from kgpeft.errors import LinkerFileError
from kgpeft.io import file_sha256
from kgpeft.linking.alias_tables import ARRAY_NAMES, BLOBS
from kgpeft.utils import atomic_folder, foreign_entries_or_refuse

FORMAT_NAME = "kgpeft.entity_linker"
FORMAT_VERSION = 1
META_FILE = "linker.json"


def stopwords_digest(stopwords: frozenset[str]) -> str:
    return hashlib.sha256(json.dumps(sorted(stopwords), ensure_ascii=False).encode()).hexdigest()


def settings_meta(max_candidates: int, min_alias_length: int, stopwords: frozenset[str]) -> dict[str, Any]:
    """The settings as ``linker.json`` and the cache key hold them (the stopwords as a digest)."""
    return {
        "max_candidates": max_candidates,
        "min_alias_length": min_alias_length,
        "stopwords_digest": stopwords_digest(stopwords),
    }


def cache_folder(cache_dir: str | os.PathLike, fingerprint: str, settings: dict[str, Any]) -> Path:
    """The folder of ``cache_dir`` that holds the linker of this KG and these :func:`settings_meta`.

    Its name is a digest of the format and its version, the KG's fingerprint and the settings.
    """
    key = [FORMAT_NAME, FORMAT_VERSION, fingerprint, settings]
    return Path(cache_dir) / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def write_linker(
    target: Path, tables: dict[str, np.ndarray], about: dict[str, Any], overwrite: bool, force: bool
) -> None:
    """Write ``tables`` and ``linker.json`` to the folder ``target``, atomically (see :meth:`EntityLinker.save`).

    ``about`` holds the fields of ``linker.json`` between its version and its ``arrays``, in order:
    ``fingerprint``, ``num_entities``, ``num_aliases``, ``num_patterns``, ``settings``, ``stopwords``.
    """
    others = foreign_entries_or_refuse(
        target,
        _foreign_entries,
        force,
        writer="EntityLinker.save",
        owner="a saved EntityLinker's",
        thing="the linker",
    )
    with atomic_folder(target, overwrite, keep=others) as tmp:
        files = {}
        for name, table in tables.items():
            np.save(tmp / f"{name}.npy", table, allow_pickle=False)
            files[name] = {
                "sha256": file_sha256(tmp / f"{name}.npy"),
                "dtype": table.dtype.str,
                "size": table.size,
            }
        meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **about, "arrays": files}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_checked_meta(
    path: Path,
    fingerprint: str,
    max_candidates: int | None,
    min_alias_length: int | None,
    stopwords: frozenset[str] | None,
) -> dict[str, Any]:
    """The ``linker.json`` of the folder ``path``, checked to be for this KG and these settings.

    A setting that is ``None`` is taken as saved.

    Raises:
        LinkerFileError: the file is missing or malformed, was written by a newer kgpeft, or
            the linker was built for another KG or with other settings.
    """
    meta_path = path / META_FILE
    meta = _read_meta_file(meta_path)
    if meta["fingerprint"] != fingerprint:
        raise LinkerFileError(
            f"the linker was built for another KG (fingerprint {meta['fingerprint'][:12]}..., "
            f"this KG's is {fingerprint[:12]}...); build one for this KG",
            meta_path,
        )
    saved = meta["settings"]
    wanted = {"max_candidates": max_candidates, "min_alias_length": min_alias_length}
    for key, value in wanted.items():
        if value is not None and value != saved[key]:
            raise LinkerFileError(f"the linker was built with {key}={saved[key]}, not {value}", meta_path)
    if stopwords is not None and stopwords_digest(stopwords) != saved["stopwords_digest"]:
        raise LinkerFileError("the linker was built with other stopwords", meta_path)
    return meta


def read_tables(path: Path, meta: dict[str, Any]) -> dict[str, np.ndarray | bytes]:
    """The tables of the folder ``path``, each checked against its digest in ``meta``, and all against each other.

    Raises:
        LinkerFileError: a table is missing, malformed, does not match its digest or does not
            fit the others; the message names the file.
    """
    tables = {name: _read_table(path / f"{name}.npy", meta["arrays"][name]) for name in ARRAY_NAMES}
    _check_tables(tables, meta, path)
    return tables


def _is_saved_linker_file(name: str) -> bool:
    return name == META_FILE or (name.endswith(".npy") and name[: -len(".npy")] in ARRAY_NAMES)


def _foreign_entries(folder: Path) -> list[str]:
    """The entries of ``folder`` that no :meth:`EntityLinker.save` wrote, so that saving there would lose them.

    None in a missing or empty folder, nor in a saved linker's folder (a ``linker.json`` of
    this format and the linker's arrays); every entry of any other folder.
    """
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir())
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not (isinstance(meta, dict) and meta.get("format") == FORMAT_NAME):
        return names
    return [name for name in names if not (_is_saved_linker_file(name) and (folder / name).is_file())]


def _read_meta_file(meta_path: Path) -> dict[str, Any]:
    """``linker.json``, checked to be of this format, of a version this kgpeft reads, and complete."""
    if not meta_path.is_file():
        raise LinkerFileError("not found; is this a folder EntityLinker.save wrote?", meta_path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LinkerFileError(f"cannot be read ({e})", meta_path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise LinkerFileError(f"is not a saved EntityLinker (no format {FORMAT_NAME!r})", meta_path)
    version = meta.get("version")
    if not isinstance(version, int) or version < 1:
        raise LinkerFileError(f"has no valid format version (got {version!r})", meta_path)
    if version > FORMAT_VERSION:
        raise LinkerFileError(
            f"was written by a newer kgpeft (format version {version}; this one reads up to {FORMAT_VERSION}); "
            "upgrade kgpeft or build the linker again",
            meta_path,
        )
    try:
        ok = (
            isinstance(meta["fingerprint"], str)
            and all(isinstance(meta[k], int) for k in ("num_entities", "num_aliases", "num_patterns"))
            and all(isinstance(meta["settings"][k], int) for k in ("max_candidates", "min_alias_length"))
            and isinstance(meta["settings"]["stopwords_digest"], str)
            and stopwords_digest(frozenset(meta["stopwords"])) == meta["settings"]["stopwords_digest"]
            and all(
                isinstance(meta["arrays"][name][k], t)
                for name in ARRAY_NAMES
                for k, t in (("sha256", str), ("dtype", str), ("size", int))
            )
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise LinkerFileError("is incomplete or malformed (file corrupted?)", meta_path)
    return meta


def _read_table(path: Path, info: dict[str, Any]) -> np.ndarray | bytes:
    """One saved table, checked against its digest, dtype and size; a blob as ``bytes``."""
    if not path.is_file():
        raise LinkerFileError("is missing", path)
    if file_sha256(path) != info["sha256"]:
        raise LinkerFileError("does not match its SHA-256 digest in linker.json (file corrupted or changed?)", path)
    try:
        if path.stem in BLOBS:
            # Read the bytes straight after the .npy header: np.load, then tobytes, would copy them.
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(f)
                table: np.ndarray | bytes = f.read()
            ok = dtype == np.uint8 and shape == (len(table),)
        else:
            table = np.load(path, allow_pickle=False)
            dtype, ok = table.dtype, table.ndim == 1
    except (OSError, ValueError) as e:
        raise LinkerFileError(f"cannot be read as a .npy array ({e})", path) from None
    if not ok or dtype.str != info["dtype"] or len(table) != info["size"]:
        raise LinkerFileError(f"does not hold the 1-D {info['dtype']} array of {info['size']} linker.json names", path)
    return table


def _check_tables(tables: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    """Check that the tables fit each other and the counts in ``linker.json`` (they match their digests,
    so only a linker.json edited by hand fails here)."""
    num_aliases, num_patterns = meta["num_aliases"], meta["num_patterns"]
    cand_ptr, groups = tables["cand_ptr"], tables["groups"]
    problems = {
        "pattern_lengths": tables["pattern_lengths"].size != num_patterns
        or not np.issubdtype(tables["pattern_lengths"].dtype, np.integer),
        "groups": not np.issubdtype(groups.dtype, np.integer)
        or groups.size < 1
        or groups.size - 1 > num_patterns
        or groups[0] != 0
        or (np.diff(groups) < 1).any()
        or groups[-1] != num_aliases - (num_patterns - (groups.size - 1)),
        "check_aliases": tables["check_aliases"].count(b"\n") != groups[-1] if groups.size else True,
        "cand_ptr": not np.issubdtype(cand_ptr.dtype, np.integer)
        or cand_ptr.size != num_aliases + 1
        or cand_ptr[0] != 0
        or (np.diff(cand_ptr) < 1).any()
        or cand_ptr[-1] != tables["candidates"].size,
        "candidates": not np.issubdtype(tables["candidates"].dtype, np.integer)
        or (
            tables["candidates"].size
            and not 0 <= tables["candidates"].min() <= tables["candidates"].max() < meta["num_entities"]
        ),
        "scores": tables["scores"].dtype != np.float64 or tables["scores"].size != tables["candidates"].size,
    }
    for name, bad in problems.items():
        if bad:
            raise LinkerFileError(
                "does not fit the other tables or linker.json (file corrupted?)", path / f"{name}.npy"
            )
