"""The kgpeft checkpoint format: file names, ``kgpeft_config.json``, and safe reading.

A checkpoint folder written by :meth:`kgpeft.model.KGPeftModel.save_pretrained` holds
peft's own ``adapter_config.json`` and ``adapter_model.safetensors`` (other adapters in
subfolders), ``kgpeft_model.safetensors`` (graph encoders and knowledge weights) and
``kgpeft_config.json``: the KG-LoRA configs, the KG fingerprint, the base model's signature
and a format version. This module imports no model code, so the trainer and other readers
of checkpoints can use it alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from kgpeft.errors import KGFileNotFoundError, KGPeftError

if TYPE_CHECKING:
    from kgpeft.graph import KnowledgeGraph

CONFIG_NAME = "kgpeft_config.json"
WEIGHTS_NAME = "kgpeft_model.safetensors"
PEFT_WEIGHTS_NAME = "adapter_model.safetensors"
# Bumped when a saved checkpoint stops being readable by older kgpeft versions.
FORMAT_VERSION = 1
#: The files of a kgpeft adapter folder: ours, peft's (with its model card) and the trainer's state.
ADAPTER_FILES = frozenset(
    {CONFIG_NAME, WEIGHTS_NAME, PEFT_WEIGHTS_NAME, "adapter_config.json", "README.md", "trainer_state.json"}
)


class CheckpointError(KGPeftError, ValueError):
    """A checkpoint is unreadable or does not fit the base model or the KG."""


def base_model_signature(model: nn.Module) -> dict[str, Any]:
    """What a checkpoint remembers of its base model, to refuse loading onto another one.

    The architecture fields of the config, plus a checksum of the first rows of the input
    embedding, rounded through float16: a float16 copy of the same weights fits, a bfloat16
    copy does not (its fewer mantissa bits round to other float16 values).
    """
    config = model.config
    fields = ("model_type", "vocab_size", "hidden_size", "d_model", "n_embd", "num_hidden_layers", "num_layers")
    signature: dict[str, Any] = {k: getattr(config, k) for k in fields if getattr(config, k, None) is not None}
    weight = model.get_input_embeddings().weight.detach()[:256].to("cpu", torch.float16).contiguous()
    signature["embedding_checksum"] = hashlib.sha256(weight.numpy().tobytes()).hexdigest()[:16]
    return signature


def file_sha256(file: Path) -> str:
    """The SHA-256 digest of a file, in hex."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weight_digests(folder: Path) -> dict[str, str]:
    """``{path relative to folder: sha256}`` of every safetensors file in ``folder`` and its subfolders."""
    return {f.relative_to(folder).as_posix(): file_sha256(f) for f in sorted(folder.rglob("*.safetensors"))}


def load_safetensors(file: Path, sha256: str | None = None, recorded_in: Path | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file, naming it in the error if it is missing, truncated or corrupt.

    With ``sha256`` (the digest recorded when it was saved, in the file ``recorded_in``), a file
    whose bytes changed since is refused.
    """
    if not file.is_file():
        raise KGFileNotFoundError(f"Checkpoint file missing: {file}")
    if sha256 is not None and (actual := file_sha256(file)) != sha256:
        raise CheckpointError(
            f"{file} is corrupt or was changed after saving: its sha256 is {actual[:16]}..., but "
            f"{recorded_in or 'the checkpoint'} records {sha256[:16]}...."
        )
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file} is not a readable safetensors file (truncated or corrupt?): {e}") from None


def write_checkpoint_config(
    folder: Path,
    kg: KnowledgeGraph,
    base_signature: dict[str, Any],
    active_adapter: str,
    adapters: dict[str, dict[str, Any]],
    target_modules: dict[str, list[str] | str],
    digests: dict[str, str] | None = None,
) -> None:
    """Write ``kgpeft_config.json`` into ``folder``.

    Args:
        folder (Path): the checkpoint folder.
        kg (KnowledgeGraph): the graph the adapters read; its fingerprint and size are kept.
        base_signature (dict): the base model's :func:`base_model_signature`.
        active_adapter (str): the adapter made active again on loading.
        adapters (dict): each adapter's KG-LoRA config, as a dict.
        target_modules (dict): each adapter's resolved target modules.
        digests (dict, optional): ``{file: sha256}`` of the weight files (:func:`weight_digests`),
            checked on loading.
    """
    meta = {
        "format_version": FORMAT_VERSION,
        "kgpeft_version": _version(),
        "kg_fingerprint": kg.fingerprint,
        "kg_size": {"num_entities": kg.num_entities, "num_relations": kg.num_relations},
        "base_model": base_signature,
        "active_adapter": active_adapter,
        "adapters": adapters,
        "target_modules": target_modules,
        "sha256": digests or {},
    }
    (folder / CONFIG_NAME).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def read_checkpoint_config(path: Path, kg: KnowledgeGraph, model: nn.Module) -> dict[str, Any]:
    """Read ``kgpeft_config.json`` from the checkpoint folder ``path``, refusing one that does not fit.

    Raises:
        KGFileNotFoundError: ``path`` holds no ``kgpeft_config.json``.
        CheckpointError: the file is not JSON, or the checkpoint has a newer format version,
            another KG (fingerprint) or another base model (architecture or weights); the
            message says what differs.
    """
    meta_file = path / CONFIG_NAME
    if not meta_file.is_file():
        raise KGFileNotFoundError(f"No kgpeft checkpoint at {path} (missing {CONFIG_NAME}).")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{meta_file}: not valid JSON ({e}).") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {meta.get('format_version')}; this kgpeft "
            f"({_version()}) reads up to {FORMAT_VERSION}. Upgrade kgpeft."
        )
    if meta["kg_fingerprint"] != kg.fingerprint:
        raise CheckpointError(
            f"{path} was trained on another knowledge graph: fingerprint {meta['kg_fingerprint'][:12]}... "
            f"({meta['kg_size']['num_entities']} entities, {meta['kg_size']['num_relations']} relations), "
            f"but the given KG has {kg.fingerprint[:12]}... ({kg.num_entities} entities, "
            f"{kg.num_relations} relations)."
        )
    signature = base_model_signature(model)
    differs = {k: (v, signature.get(k)) for k, v in meta["base_model"].items() if signature.get(k) != v}
    if differs:
        what = ", ".join(f"{k}: checkpoint {a!r}, model {b!r}" for k, (a, b) in differs.items())
        raise CheckpointError(f"{path} was trained on another base model ({what}).")
    return meta


def foreign_entries(folder: Path) -> list[str]:
    """The entries of ``folder`` that no kgpeft save wrote, so that saving there would lose them.

    None in a missing or empty folder, nor in a kgpeft adapter folder (``kgpeft_config.json``,
    :data:`ADAPTER_FILES` and its adapters' subfolders); every entry of any other folder.
    """
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir())
    if CONFIG_NAME not in names:
        return names
    try:
        adapters = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))["adapters"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        adapters = {}
    adapters = adapters if isinstance(adapters, dict) else {}
    return [
        name
        for name in names
        if not (name in ADAPTER_FILES and (folder / name).is_file())
        and not (name in adapters and (folder / name).is_dir())
    ]


def _version() -> str:
    from kgpeft import __version__

    return __version__
