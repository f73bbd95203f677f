"""The kgpeft checkpoint format: file names, ``kgpeft_config.json``, and safe reading.

A checkpoint folder written by :meth:`kgpeft.model.KGPeftModel.save_pretrained` holds
peft's own ``adapter_config.json`` and ``adapter_model.safetensors`` (other adapters in
subfolders), ``kgpeft_model.safetensors`` (graph encoders and knowledge weights) and
``kgpeft_config.json``: the KG-LoRA configs, the KG fingerprint, the base model's signature,
a format version and, for an adapter a job trained, how it answered (:class:`AnswerSettings`);
and the fact scorers it was trained with (:data:`SCORER_NAME`, :data:`STAGED_SCORER_NAME`).
This module imports no model code, so the trainer and other readers of checkpoints can use it alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from packaging.version import InvalidVersion, Version
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from kgpeft import __version__
from kgpeft.configuration import check_field_types, dataclass_from_dict, is_int, read_json
from kgpeft.errors import KGFileNotFoundError, KGPeftError, PathNameError
from kgpeft.io import file_sha256
from kgpeft.retrieval.config import RetrievalConfig
from kgpeft.tasks.types import TASK_TYPES
from kgpeft.utils import check_name

if TYPE_CHECKING:
    from kgpeft.graph import KnowledgeGraph

CONFIG_NAME = "kgpeft_config.json"
WEIGHTS_NAME = "kgpeft_model.safetensors"
PEFT_WEIGHTS_NAME = "adapter_model.safetensors"
#: The fact scorer a ``memory`` adapter trained with (``FactScorerConfig.training: joint``), beside its weights.
SCORER_NAME = "fact_scorer.safetensors"
#: The fact scorer that ranked an adapter's facts before its job trained it (``selection.training: staged``).
STAGED_SCORER_NAME = "staged_fact_scorer.safetensors"
#: What the trainer writes beside each adapter it saves (kgpeft.training.checkpoints).
TRAINER_STATE_NAME = "trainer_state.json"
# Bumped when a saved checkpoint stops being readable by older kgpeft versions.
FORMAT_VERSION = 1
#: The distributions whose versions decide what a checkpoint computes (recorded by :func:`library_versions`).
LIBRARIES = ("kgpeft", "torch", "transformers", "peft", "torch-geometric", "accelerate", "safetensors")
#: The files of a kgpeft adapter folder: ours, peft's (with its model card) and the trainer's state.
ADAPTER_FILES = frozenset(
    {
        CONFIG_NAME,
        WEIGHTS_NAME,
        PEFT_WEIGHTS_NAME,
        SCORER_NAME,
        STAGED_SCORER_NAME,
        "adapter_config.json",
        "README.md",
        TRAINER_STATE_NAME,
    }
)
#: How an adapter's facts are ordered before the first ``num_facts`` / ``memory_facts`` are taken.
FACT_RANKINGS = ("retrieval", "staged")


class CheckpointError(KGPeftError, ValueError):
    """A checkpoint is unreadable or does not fit the base model or the KG."""


@dataclass
class AnswerSettings:
    """How the job that trained an adapter built a question's knowledge and answered it (``answering`` in
    ``kgpeft_config.json``), so that the adapter folder alone answers as the job did
    (:func:`kgpeft.pipeline.answer.predict`)."""

    task: str = field(metadata={"help": "The job's task: a name of kgpeft.tasks.TASKS, or the task file it read."})
    task_type: str = field(metadata={"help": "The job's task type (kgpeft.tasks.TASK_TYPES)."})
    retrieval: RetrievalConfig = field(
        metadata={"help": "Linking, retrieval and fact format; num_facts, memory_facts and max_fact_tokens the job's."}
    )
    max_length: int = field(metadata={"help": "The job's token budget of a row (budgets.json)."})
    max_new_tokens: int = field(metadata={"help": "Generated tokens per answer."})
    batch_size: int = field(metadata={"help": "Rows per evaluation batch (per_device_eval_batch_size)."})
    seed: int = field(metadata={"help": "The retrieval sampling seed."})
    fact_ranking: str = field(
        default="retrieval",
        metadata={
            "help": "`staged`: facts ranked by the staged scorer saved beside (STAGED_SCORER_NAME); else as retrieved."
        },
    )
    num_labels: int | None = field(default=None, metadata={"help": "Classes, for a classification task."})

    def __post_init__(self) -> None:
        check_field_types(self, CheckpointError)
        if self.task_type not in TASK_TYPES:
            raise CheckpointError(f"`task_type` should be one of {tuple(TASK_TYPES)}, got {self.task_type!r}.")
        if self.fact_ranking not in FACT_RANKINGS:
            raise CheckpointError(f"`fact_ranking` should be one of {FACT_RANKINGS}, got {self.fact_ranking!r}.")
        for name in ("max_length", "max_new_tokens", "batch_size"):
            if getattr(self, name) <= 0:
                raise CheckpointError(f"`{name}` should be a positive integer, got {getattr(self, name)!r}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CheckpointMeta:
    """The contents of ``kgpeft_config.json``, as :func:`write_checkpoint_config` writes them.

    Only the keys read when loading are required; checkpoints of older kgpeft versions lack
    ``sha256`` (and may lack the informational keys).
    """

    kg_fingerprint: str = field(metadata={"help": "KnowledgeGraph.fingerprint of the KG the adapters read."})
    base_model: dict[str, Any] = field(metadata={"help": "base_model_signature of the base model."})
    adapters: dict[str, dict[str, Any]] = field(metadata={"help": "Each adapter's KGLoraConfig, as a dict."})
    target_modules: dict[str, list[str] | str] = field(metadata={"help": "Each adapter's resolved target modules."})
    format_version: int = field(default=0, metadata={"help": "The checkpoint format version (FORMAT_VERSION)."})
    kgpeft_version: str = field(default="0", metadata={"help": "The kgpeft version that saved it."})
    kg_size: dict[str, int] = field(default_factory=dict, metadata={"help": "num_entities and num_relations."})
    active_adapter: str | None = field(default=None, metadata={"help": "Active on loading (default: the first)."})
    sha256: dict[str, str] = field(default_factory=dict, metadata={"help": "{weight file: sha256}, checked."})
    card: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "What the adapter card shows beyond the above (kgpeft.card.CARD_KEYS)."}
    )
    versions: dict[str, str] = field(
        default_factory=dict, metadata={"help": "The versions of Python and the libraries that saved it."}
    )
    answering: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "The AnswerSettings of the job that trained it; empty when saved outside a job."},
    )


def library_versions() -> dict[str, str]:
    """``{name: version}`` of Python and of :data:`LIBRARIES` as installed (``"not installed"`` where missing).

    Checkpoints and ``results.json`` record them, so a number can be traced to the environment
    that produced it (``make`` installs the locked ones, ``requirements/lock.txt``).
    """
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def check_adapter_name(name: Any, what: str, error: type[KGPeftError] = PathNameError) -> str:
    """Return ``name`` if it can name an adapter; raise ``error`` naming ``what`` and the value otherwise.

    An adapter is saved in the subfolder of its name, so the name must be a file name
    (:func:`~kgpeft.utils.check_name`); its modules are keyed by it, and torch's module names hold
    no dot (nor, then, do the names of the files beside it, :data:`ADAPTER_FILES`).
    """
    check_name(name, what, error)
    if "." in name:
        raise error(f"{what} should be an adapter name, got {name!r}: it holds a dot, which torch module names cannot.")
    return name


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
    card: dict[str, Any] | None = None,
    answering: AnswerSettings | None = None,
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
        card (dict, optional): what the adapter card shows beyond these (see :mod:`kgpeft.card`).
        answering (AnswerSettings, optional): how the job that trained the adapters answered.
    """
    meta = {
        "format_version": FORMAT_VERSION,
        "kgpeft_version": __version__,
        "kg_fingerprint": kg.fingerprint,
        "kg_size": {"num_entities": kg.num_entities, "num_relations": kg.num_relations},
        "base_model": base_signature,
        "active_adapter": active_adapter,
        "adapters": adapters,
        "target_modules": target_modules,
        "sha256": digests or {},
        "card": card or {},
        "versions": library_versions(),
        "answering": answering.to_dict() if answering is not None else {},
    }
    (folder / CONFIG_NAME).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def read_adapter_config(path: Path) -> dict[str, Any]:
    """Read and check ``kgpeft_config.json`` in the checkpoint folder ``path``, before anything is loaded.

    Every key written by :func:`write_checkpoint_config` is checked for its type (the
    adapters' own settings are :class:`~kgpeft.tuners.KGLoraConfig`'s to check). A key this
    kgpeft does not know is refused, naming the closest known key, unless the file was written
    by a newer kgpeft: then it is ignored with a warning.

    Returns:
        dict: the :class:`CheckpointMeta` fields, defaults filled in; ``answering`` read into an
        :class:`AnswerSettings` (``None`` for adapters saved outside a job or before kgpeft kept it).

    Raises:
        KGFileNotFoundError: ``path`` holds no ``kgpeft_config.json``.
        CheckpointError: the file is not a JSON object (the message gives the line and column
            of a syntax error), has a newer format version, or holds an unknown key, a value of
            the wrong type, no adapter, or an adapter without target modules; the message
            names the file and the key.
    """
    file = path / CONFIG_NAME
    if not file.is_file():
        raise KGFileNotFoundError(f"No kgpeft checkpoint at {path} (missing {CONFIG_NAME}).")
    meta = read_json(file, CheckpointError)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{file}: expected a JSON object of settings, got a JSON {type(meta).__name__}.")
    version = meta.get("format_version", 0)
    if not is_int(version):
        raise CheckpointError(f"`format_version` in {file} should be int, got {type(version).__name__} {version!r}.")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this kgpeft ({__version__}) reads up to "
            f"{FORMAT_VERSION}. Upgrade kgpeft."
        )
    known = {f.name for f in dataclasses.fields(CheckpointMeta)}
    unknown = sorted(set(meta) - known)
    if written_by_newer_kgpeft(meta, file) and unknown:
        warnings.warn(
            f"Ignoring unknown keys {unknown} in {file}, written by kgpeft {meta['kgpeft_version']}.", stacklevel=2
        )
        meta = {k: v for k, v in meta.items() if k in known}
    checked = dataclasses.asdict(dataclass_from_dict(CheckpointMeta, meta, str(file), CheckpointError))
    _check_entries(checked, file)
    checked["answering"] = read_answer_settings(checked["answering"], file) if checked["answering"] else None
    return checked


def read_answer_settings(values: dict[str, Any], file: Path) -> AnswerSettings:
    """The ``answering`` entry of the checkpoint config ``file``, checked; errors name the file and the key."""
    try:
        return dataclass_from_dict(AnswerSettings, values, f"`answering` in {file}", CheckpointError)
    except CheckpointError as e:
        if str(file) in str(e):
            raise
        # the checks of a value (AnswerSettings.__post_init__) and of the nested `retrieval` section
        raise CheckpointError(f"{file}: `answering`: {e}") from None


def written_by_newer_kgpeft(meta: dict[str, Any], file: Path) -> bool:
    """Whether the checkpoint config ``meta`` (read from ``file``) was saved by a newer kgpeft than this one."""
    saved = meta.get("kgpeft_version", "0")
    try:
        return Version(saved) > Version(__version__)
    except (InvalidVersion, TypeError):
        raise CheckpointError(
            f"`kgpeft_version` in {file} should be a version such as '0.1.0', got {saved!r}."
        ) from None


def _check_entries(meta: dict[str, Any], file: Path) -> None:
    """The checks of :func:`read_adapter_config` inside the mappings, naming the key."""
    adapters = meta["adapters"]
    if not adapters:
        raise CheckpointError(f"`adapters` in {file} is empty; a checkpoint holds at least one adapter.")
    for name, values in adapters.items():
        check_adapter_name(name, f"An adapter name (a key of `adapters`) in {file}", CheckpointError)
        if not isinstance(values, dict):
            raise CheckpointError(
                f"`adapters.{name}` in {file} should be a mapping of settings, got {type(values).__name__} {values!r}."
            )
        targets = meta["target_modules"].get(name)
        if not (isinstance(targets, str) or (isinstance(targets, list) and all(isinstance(t, str) for t in targets))):
            raise CheckpointError(
                f"`target_modules.{name}` in {file} should be a list of str or a str (one for each adapter), "
                f"got {targets!r}."
            )
    if meta["active_adapter"] is not None and meta["active_adapter"] not in adapters:
        raise CheckpointError(
            f"`active_adapter` in {file} is {meta['active_adapter']!r}, not one of the adapters {list(adapters)}."
        )
    size, size_keys = meta["kg_size"], ("num_entities", "num_relations")
    if size and set(size) != set(size_keys):  # empty in checkpoints of older kgpeft versions
        problems = [f"lacks `kg_size.{k}`" for k in size_keys if k not in size]
        problems += [f"holds the unknown key `kg_size.{k}`" for k in sorted(set(size) - set(size_keys))]
        raise CheckpointError(
            f"`kg_size` in {file} {' and '.join(problems)}; it should hold the KG's `num_entities` and "
            "`num_relations`, or be empty."
        )
    for key, kind in (("kg_size", int), ("sha256", str), ("versions", str)):
        for name, value in meta[key].items():
            if not isinstance(value, kind) or isinstance(value, bool):
                raise CheckpointError(
                    f"`{key}.{name}` in {file} should be {kind.__name__}, got {type(value).__name__} {value!r}."
                )


def read_checkpoint_config(path: Path, kg: KnowledgeGraph, model: nn.Module) -> dict[str, Any]:
    """Read ``kgpeft_config.json`` from the checkpoint folder ``path``, refusing one that does not fit.

    Raises:
        KGFileNotFoundError: ``path`` holds no ``kgpeft_config.json``.
        CheckpointError: the file is malformed (:func:`read_adapter_config`), or the checkpoint
            is for another KG (fingerprint) or another base model (architecture or weights);
            the message says what differs.
    """
    meta = read_adapter_config(path)
    if meta["kg_fingerprint"] != kg.fingerprint:
        size = meta["kg_size"]
        raise CheckpointError(
            f"{path} was trained on another knowledge graph: fingerprint {meta['kg_fingerprint'][:12]}... "
            f"({size.get('num_entities', '?')} entities, {size.get('num_relations', '?')} relations), "
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
    :data:`ADAPTER_FILES` and its adapters' subfolders), nor in a folder where the trainer saved a
    plain peft adapter (``trainer_state.json`` beside peft's files); every entry of any other folder.
    """
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir())
    if CONFIG_NAME not in names and TRAINER_STATE_NAME not in names:
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
