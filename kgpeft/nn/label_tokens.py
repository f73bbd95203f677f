"""Token ids of every entity label as one CSR pair, tokenised in batches and cached on disk.

:class:`~kgpeft.nn.TextNodeFeatures` (and the fact scorer) read entity labels through the
base model's embeddings. For a Wikidata-sized KG, tokenising millions of labels into a Python
list per label would hold gigabytes of small objects and take a minute each time a model is
built; here labels go through the tokenizer ``_BATCH`` at a time, straight into flat integer
arrays, and the result is kept in ``kgpeft.datasets.cache_dir() / "label_tokens"`` under a key
of the KG's labels and the tokenizer, so the next build maps it from disk in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kgpeft.graph import KnowledgeGraph
from kgpeft.graph.strings import StringTable, string_table
from kgpeft.io import cache_dir as default_cache_dir
from kgpeft.io import file_sha256
from kgpeft.utils import atomic_folder

FORMAT_VERSION = 1
# Labels tokenised per tokenizer call.
_BATCH = 1 << 16
# KGs with fewer entities tokenise in well under a second and are not written to the cache.
CACHE_MIN_ENTITIES = 50_000


def tokenize_labels(labels: Sequence[str], tokenizer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of ``labels`` (no special tokens) as ``(ids, ptr)``: label ``i`` is ``ids[ptr[i]:ptr[i + 1]]``.

    ``ids`` is ``int32`` (every vocabulary here is smaller than ``2**31``), ``ptr`` ``int64``.
    Labels are tokenised ``_BATCH`` at a time, so no Python list per label outlives its batch.
    """
    chunks, lengths = [], []
    for start in range(0, len(labels), _BATCH):
        batch = labels[start : start + _BATCH]
        ids = tokenizer(
            list(batch), add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False
        )["input_ids"]
        length = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int64, count=int(length.sum()))
        if flat.size and (flat.min() < 0 or flat.max() >= 2**31):
            raise ValueError(f"The tokenizer gave token ids outside [0, 2**31): {flat.min()}..{flat.max()}.")
        chunks.append(flat.astype(np.int32))
        lengths.append(length)
    ptr = np.zeros(len(labels) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=ptr[1:])
    return (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)), ptr


def tokenizer_digest(tokenizer: Any) -> str | None:
    """A digest of everything that decides a fast tokenizer's ids, or ``None`` for a slow one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None and type(tokenizer).__module__.startswith("tokenizers"):
        backend = tokenizer  # a bare tokenizers.Tokenizer
    if backend is None or not hasattr(backend, "to_str"):
        return None
    return hashlib.sha256(f"{type(tokenizer).__qualname__}\n{backend.to_str()}".encode()).hexdigest()


def label_token_ids(
    kg: KnowledgeGraph,
    tokenizer: Any,
    cache_dir: str | Path | None = None,
    min_entities: int = CACHE_MIN_ENTITIES,
) -> tuple[Tensor, Tensor]:
    """The token ids of ``kg``'s labels as ``(ids (T,) int32, ptr (num_entities + 1,) int64)`` tensors.

    With a fast tokenizer and at least ``min_entities`` entities, the result is cached in
    ``cache_dir`` (default: ``kgpeft.datasets.cache_dir() / "label_tokens"``) under a digest of
    the labels and the tokenizer, written atomically with a SHA-256 digest per file and read
    back memory-mapped (copy-on-write); a cached entry that does not match its digests is
    rebuilt with a warning, and one that cannot be written only warns.
    """
    labels = kg.labels
    tok_digest = tokenizer_digest(tokenizer)
    if tok_digest is None or kg.num_entities < min_entities:
        return _tensors(*tokenize_labels(labels, tokenizer))
    if cache_dir is None:
        cache_dir = default_cache_dir() / "label_tokens"
    table = labels if isinstance(labels, StringTable) else string_table(labels)
    key = json.dumps([FORMAT_VERSION, table.digest(), tok_digest])
    folder = Path(cache_dir) / hashlib.sha256(key.encode()).hexdigest()[:32]
    if (folder / "meta.json").is_file():
        try:
            return _tensors(*_read(folder, len(labels)))
        except (OSError, ValueError, KeyError, TypeError) as e:
            message = f"Tokenising the labels again: the cached tokens in {folder} cannot be used ({e!r})."
            warnings.warn(message, stacklevel=2)
    ids, ptr = tokenize_labels(labels, tokenizer)
    try:
        _write(folder, ids, ptr)
    except OSError as e:
        warnings.warn(f"The label tokens could not be cached in {folder}: {e}", stacklevel=2)
    return _tensors(ids, ptr)


def _tensors(ids: np.ndarray, ptr: np.ndarray) -> tuple[Tensor, Tensor]:
    with warnings.catch_warnings():  # a copy-on-write map is writable; torch need not warn
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(ids), torch.from_numpy(ptr)


def _write(folder: Path, ids: np.ndarray, ptr: np.ndarray) -> None:
    with atomic_folder(folder, overwrite=True) as tmp:
        files = {}
        for name, array in (("ids", ids), ("ptr", ptr)):
            file = tmp / f"{name}.npy"
            np.save(file, array, allow_pickle=False)
            files[name] = {"sha256": file_sha256(file), "dtype": array.dtype.str, "size": int(array.size)}
        meta = {"format": "kgpeft.label_tokens", "version": FORMAT_VERSION, "num_labels": ptr.size - 1, "files": files}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _read(folder: Path, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta.get("format") != "kgpeft.label_tokens" or meta.get("version") != FORMAT_VERSION:
        raise ValueError("meta.json is not of this format version")
    if meta.get("num_labels") != num_labels:
        raise ValueError(f"meta.json names {meta.get('num_labels')} labels, the KG has {num_labels}")
    arrays = []
    for name in ("ids", "ptr"):
        info, path = meta["files"][name], folder / f"{name}.npy"
        if file_sha256(path) != info["sha256"]:
            raise ValueError(f"{path.name} does not match its SHA-256 digest")
        array = np.load(path, mmap_mode="c", allow_pickle=False)
        if array.ndim != 1 or array.dtype.str != info["dtype"] or array.size != info["size"]:
            raise ValueError(f"{path.name} does not hold the array meta.json names")
        arrays.append(array)
    ids, ptr = arrays
    if ptr.size != num_labels + 1 or ptr[0] != 0 or ptr[-1] != ids.size:
        raise ValueError("ptr.npy does not fit ids.npy")
    return ids, ptr
