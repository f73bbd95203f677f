"""Resumable training checkpoints: what a ``checkpoint-{step}`` folder holds, how it is written and restored.

:func:`save_checkpoint` writes the folder atomically (a temporary folder renamed into place); it holds

- the adapter as ``save_pretrained`` writes it, so the folder also loads as a model;
- ``trainable_params.safetensors``: the trainable parameters, by name;
- ``optimizer.safetensors`` and ``optimizer.json``: AdamW's state, tensors keyed
  ``{param}.{exp_avg|exp_avg_sq|step}``, and its parameter groups with their hyperparameters;
- ``scheduler.json``: the learning-rate scheduler's state;
- ``rng_state_{process}.safetensors`` and ``rng_state_{process}.json``: each process's torch,
  CUDA, numpy and Python RNG states;
- ``trainer_state.json``: the :class:`TrainerState` (step, epoch, batches consumed in it,
  metrics, best metric), the format version, the number of processes, the training config
  and the sha256 of the parameter and optimizer files, checked on resuming.

Only safetensors and JSON: loading runs no code. :func:`load_checkpoint` restores all of it, so
a resumed run continues exactly where the interrupted one stopped. The ``best`` and ``final``
folders hold only the adapter and ``trainer_state.json`` (:func:`save_adapter`).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DistributedType
from filelock import FileLock, Timeout
from safetensors.torch import save_file
from torch import nn

from kgpeft.checkpoint import (
    TRAINER_STATE_NAME,
    CheckpointError,
    foreign_entries,
    load_safetensors,
    read_adapter_config,
)
from kgpeft.configuration import dataclass_from_dict, is_int, read_json
from kgpeft.errors import KGFileNotFoundError, KGPeftError, OutputPathError
from kgpeft.io import file_sha256
from kgpeft.training.config import TrainingConfig
from kgpeft.utils import foreign_entries_or_refuse, replace_folder, writing

PARAMS_NAME = "trainable_params.safetensors"
OPTIMIZER_NAME = "optimizer.safetensors"
OPTIMIZER_GROUPS_NAME = "optimizer.json"
SCHEDULER_NAME = "scheduler.json"
RNG_NAME = "rng_state_{}.safetensors"  # one per process
RNG_EXTRA_NAME = "rng_state_{}.json"
CHECKPOINT_PREFIX = "checkpoint-"
LOCK_NAME = ".kgpeft.lock"  # held by the main process of the run writing the folder
#: The folders the trainer saves adapters to in ``output_dir`` (:func:`save_adapter`).
ADAPTER_FOLDERS = ("best", "final")
STATE_FORMAT_VERSION = 1
# Changing these between a checkpoint and its resumption changes which batches were consumed.
_DATA_ORDER_FIELDS = ("seed", "per_device_train_batch_size", "gradient_accumulation_steps")


@dataclass
class TrainerState:
    """Where training stands; written as ``trainer_state.json`` next to every saved model.

    ``epoch`` and ``batch_in_epoch`` (batches this process consumed in that epoch) say where
    a resumed run picks up the data.
    """

    global_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    best_metric: float | None = None
    best_step: int | None = None

    def write(
        self, folder: Path, config: TrainingConfig, num_processes: int, digests: dict[str, str] | None = None
    ) -> None:
        values = {
            "format_version": STATE_FORMAT_VERSION,
            **asdict(self),
            "num_processes": num_processes,
            "config": config.to_dict(),
            "sha256": digests or {},
        }
        _write_json(folder / TRAINER_STATE_NAME, values)


def is_sharded(accelerator: Accelerator) -> bool:
    """Whether the prepared model's parameters may be shards (FSDP or DeepSpeed), not whole tensors."""
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def save_adapter(
    folder: Path, accelerator: Accelerator, model: nn.Module, state: TrainerState, config: TrainingConfig
) -> None:
    """Save the adapter (``save_pretrained``) with ``trainer_state.json`` beside it, atomically.

    An adapter saved to ``folder`` before is replaced; a folder holding anything else is refused
    (:func:`refuse_foreign_adapter_folder`), as :meth:`~kgpeft.KGPeftModel.save_pretrained` refuses it.
    """
    refuse_foreign_adapter_folder(folder)  # on every process, before the first collective: all raise alike
    accelerator.wait_for_everyone()
    # A sharded model (FSDP, DeepSpeed) holds only shards: gather the full weights first, on every
    # process (a collective); accelerate gives them to the main process.
    full = accelerator.get_state_dict(model) if is_sharded(accelerator) else None
    if accelerator.is_main_process:
        tmp = _fresh_temp(folder)
        with writing(folder, tmp, _after_failed_save(folder)):
            accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=full)
            state.write(tmp, config, accelerator.num_processes)
            replace_folder(tmp, folder)
    accelerator.wait_for_everyone()


def refuse_foreign_adapter_folder(folder: Path) -> None:
    """Raise :class:`OutputPathError` if ``folder`` is a file or holds anything but a saved adapter, naming it.

    The check of :func:`~kgpeft.checkpoint.foreign_entries`: ``best`` or ``final`` may be a user's
    own folder, which saving (or ``overwrite_output_dir``) would otherwise delete.
    """
    foreign_entries_or_refuse(
        folder,
        foreign_entries,
        False,
        writer="kgpeft",
        owner="a saved adapter's",
        thing="the adapter",
        remedy="kgpeft saves an adapter there and keeps nothing else; move them, or choose another `output_dir`",
    )


def save_checkpoint(
    folder: Path,
    accelerator: Accelerator,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    param_names: list[str],
    state: TrainerState,
    config: TrainingConfig,
) -> None:
    """Write a resumable checkpoint to ``folder``, atomically (a temporary folder renamed into place).

    It holds the adapter (``save_pretrained``, so it also loads as a model), the trainable
    parameters by name, AdamW's state (tensors keyed ``{param}.{exp_avg|exp_avg_sq|step}``,
    the group hyperparameters in JSON), the scheduler's state (JSON), each process's RNG
    states, and ``trainer_state.json``. Only safetensors and JSON: loading runs no code.
    ``folder`` must be on a file system all processes share.
    """
    accelerator.wait_for_everyone()
    tmp = folder.with_name(f".{folder.name}.tmp")
    advice = _after_failed_save(folder)
    if accelerator.is_main_process:
        _fresh_temp(folder)
        with writing(folder, tmp, advice):
            unwrapped = accelerator.unwrap_model(model)
            unwrapped.save_pretrained(tmp)
            params = dict(unwrapped.named_parameters())
            _save_tensors({n: params[n] for n in param_names}, tmp / PARAMS_NAME)
            optim_state = optimizer.state_dict()
            tensors = {f"{param_names[i]}.{k}": v for i, s in optim_state["state"].items() for k, v in s.items()}
            _save_tensors(tensors, tmp / OPTIMIZER_NAME)
            groups = [{**g, "params": [param_names[i] for i in g["params"]]} for g in optim_state["param_groups"]]
            _write_json(tmp / OPTIMIZER_GROUPS_NAME, groups)
            _write_json(tmp / SCHEDULER_NAME, scheduler.state_dict())
            digests = {name: file_sha256(tmp / name) for name in (PARAMS_NAME, OPTIMIZER_NAME)}
            state.write(tmp, config, accelerator.num_processes, digests)
    accelerator.wait_for_everyone()
    tensors, extra = _rng_state()
    with writing(folder, tmp, advice):
        _save_tensors(tensors, tmp / RNG_NAME.format(accelerator.process_index))
        _write_json(tmp / RNG_EXTRA_NAME.format(accelerator.process_index), extra)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with writing(folder, tmp, advice):
            replace_folder(tmp, folder)
    accelerator.wait_for_everyone()


def load_checkpoint(
    folder: Path,
    accelerator: Accelerator,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    param_names: list[str],
    config: TrainingConfig,
) -> TrainerState:
    """Restore what :func:`save_checkpoint` wrote into the prepared objects; return the state.

    Raises:
        CheckpointError: a file of the checkpoint is damaged (the message names it, and the key or
            line), or the checkpoint does not fit the model (its adapter settings changed since).
    """
    state, saved = read_trainer_state(folder)
    changed = [k for k in _DATA_ORDER_FIELDS if saved["config"].get(k) != getattr(config, k)]
    if saved["num_processes"] != accelerator.num_processes:
        changed.append("num_processes")
    if changed:
        warnings.warn(
            f"Resuming from {folder} with other {', '.join(changed)} than it was trained with; "
            "the resumed run will not see the data the interrupted one would have.",
            stacklevel=3,
        )

    digests = saved["sha256"]
    weights = load_safetensors(folder / PARAMS_NAME, digests.get(PARAMS_NAME), folder / TRAINER_STATE_NAME)
    if set(weights) != set(param_names):
        raise CheckpointError(
            f"{folder / PARAMS_NAME} does not fit the model's trainable parameters: missing "
            f"{sorted(set(param_names) - set(weights))[:5]}, unexpected {sorted(set(weights) - set(param_names))[:5]}."
        )
    unwrapped = accelerator.unwrap_model(model)
    params = dict(unwrapped.named_parameters())
    for name, value in weights.items():
        if value.shape != params[name].shape:
            raise CheckpointError(
                f"{folder / PARAMS_NAME} does not fit the model: {name!r} has shape {tuple(value.shape)} there, "
                f"{tuple(params[name].shape)} in the model{_changed_settings(folder, unwrapped)}. The adapter settings "
                "changed since the checkpoint was saved: set them back to resume it, or train afresh "
                "(`overwrite_output_dir`, or another `output_dir`)."
            )
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)

    index = {name: i for i, name in enumerate(param_names)}
    groups = _read_json(folder / OPTIMIZER_GROUPS_NAME)
    if not (
        isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
    ):
        raise CheckpointError(
            f"{folder / OPTIMIZER_GROUPS_NAME}: expected a list of parameter groups, each with its `params` list."
        )
    if [n for g in groups for n in g["params"]] != param_names:
        raise CheckpointError(f"{folder / OPTIMIZER_GROUPS_NAME}: the optimizer's parameters differ from the model's.")
    optim_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_safetensors(
        folder / OPTIMIZER_NAME, digests.get(OPTIMIZER_NAME), folder / TRAINER_STATE_NAME
    ).items():
        name, what = key.rsplit(".", 1)
        optim_state.setdefault(index[name], {})[what] = value
    # JSON turned tuples such as AdamW's `betas` into lists
    param_groups = [{k: tuple(v) if isinstance(v, list) else v for k, v in g.items()} for g in groups]
    for group in param_groups:
        group["params"] = [index[n] for n in group["params"]]
    try:
        optimizer.load_state_dict({"state": optim_state, "param_groups": param_groups})
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / OPTIMIZER_GROUPS_NAME}: does not fit the optimizer ({e}).") from None
    schedule = _read_json(folder / SCHEDULER_NAME)
    if not isinstance(schedule, dict):
        raise CheckpointError(
            f"{folder / SCHEDULER_NAME}: expected a JSON object, got a JSON {type(schedule).__name__}."
        )
    scheduler.load_state_dict(schedule)

    rng_file = folder / RNG_NAME.format(accelerator.process_index)
    if rng_file.is_file():
        extra_file = folder / RNG_EXTRA_NAME.format(accelerator.process_index)
        extra = _read_json(extra_file)
        try:
            _set_rng_state(load_safetensors(rng_file), extra)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise CheckpointError(
                f"{extra_file} or {rng_file.name}: not an RNG state ({type(e).__name__}: {e})."
            ) from None
    else:
        warnings.warn(f"{rng_file} is missing; this process keeps its freshly seeded RNG.", stacklevel=3)
    return state


def read_trainer_state(folder: Path) -> tuple[TrainerState, dict[str, Any]]:
    """The :class:`TrainerState` in ``folder/trainer_state.json`` and the file's values, every key checked.

    Raises:
        KGFileNotFoundError: the file is missing.
        CheckpointError: it is not a JSON object, lacks a key, holds a value of the wrong type, or was
            written by a newer kgpeft; the message names the file and the key.
    """
    file = folder / TRAINER_STATE_NAME
    saved = _read_json(file)
    if not isinstance(saved, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got a JSON {type(saved).__name__}.")
    fields = [f.name for f in dataclasses.fields(TrainerState)]
    missing = [k for k in (*fields, "num_processes", "config") if k not in saved]
    if missing:
        raise CheckpointError(
            f"{file} lacks {', '.join(f'`{k}`' for k in missing)}: the checkpoint is damaged; resume from an earlier "
            "one (`resume_from_checkpoint`: its folder) or train afresh."
        )
    version = saved.get("format_version", 0)
    if not is_int(version) or version > STATE_FORMAT_VERSION:
        raise CheckpointError(
            f"`format_version` in {file} is {version!r}; this kgpeft reads up to {STATE_FORMAT_VERSION}: upgrade it."
        )
    state = dataclass_from_dict(TrainerState, {k: saved[k] for k in fields}, str(file), CheckpointError)
    for key, least in (("global_step", 0), ("epoch", 0), ("batch_in_epoch", 0), ("num_processes", 1)):
        if not is_int(saved[key]) or saved[key] < least:
            raise CheckpointError(f"`{key}` in {file} should be an integer >= {least}, got {saved[key]!r}.")
    if not isinstance(saved["config"], dict):
        raise CheckpointError(f"`config` in {file} should be a mapping of settings, got {saved['config']!r}.")
    digests = saved.setdefault("sha256", {})  # absent from checkpoints of older kgpeft versions
    if not (isinstance(digests, dict) and all(isinstance(v, str) for v in digests.values())):
        raise CheckpointError(f"`sha256` in {file} should map file names to hex digests, got {digests!r}.")
    return state, saved


def _changed_settings(folder: Path, model: nn.Module) -> str:
    """`` (changed: `r` 4 -> 8)``: the KG-LoRA settings of ``model`` that differ from the checkpoint's, if readable."""
    configs = getattr(model, "kg_configs", None)
    try:
        saved = read_adapter_config(folder)["adapters"]
    except KGPeftError:
        return ""
    if not isinstance(configs, dict):
        return ""
    changes = [
        f"`{key}` {value!r} -> {now!r}"
        for name, config in configs.items()
        for key, now in config.to_dict().items()
        if key != "target_modules" and key in saved.get(name, {}) and (value := saved[name][key]) != now
    ]
    return f" (changed since: {', '.join(changes)})" if changes else ""


def _checkpoints(output_dir: Path) -> list[Path]:
    """The resumable checkpoints in ``output_dir``, oldest first."""
    found = [p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.name[len(CHECKPOINT_PREFIX) :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest resumable checkpoint in ``output_dir``, if any."""
    found = _checkpoints(output_dir)
    return found[-1] if found else None


@contextmanager
def hold_lock(folder: Path, what: str, holder: str) -> Iterator[None]:
    """Hold ``folder/.kgpeft.lock`` inside the ``with`` block, so that no other process writes ``folder`` meanwhile.

    The lock is exclusive between processes, released on leaving the block or when the process
    dies; the thread holding it may take it again (a job holding its folder calls code that does).

    Raises:
        OutputPathError: another process holds it; the message names ``what`` (the setting, e.g.
            ```output_dir```), the folder, the lock file and who holds it (``holder``, e.g. ``"training run"``).
    """
    # One lock object per file, whichever way the folder is spelled: taking it again in this thread is no conflict.
    lock = FileLock((folder / LOCK_NAME).resolve(), timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        raise OutputPathError(
            f"{what} {folder} is in use by another {holder} (it holds {folder / LOCK_NAME}); wait for that "
            f"{holder} to end, or choose another {what}."
        ) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def claim_output_dir(output_dir: Path, config: TrainingConfig, accelerator: Accelerator) -> Iterator[None]:
    """Hold ``output_dir`` for one training run, inside the ``with`` block.

    The main process takes an exclusive lock (:func:`hold_lock`), so a second run there stops at
    once. Another run's ``checkpoint-*`` folders are refused (they would be pruned, or resumed by
    ``latest``, as if they were this run's) unless this run resumes (``resume_from_checkpoint``);
    with ``overwrite_output_dir`` the earlier run's outputs (``checkpoint-*``, ``best``,
    ``final``, ``logs``) are deleted first. A ``best`` or ``final`` folder holding anything but
    an adapter the trainer saved is refused, before training (it is never deleted).

    Raises:
        OutputPathError: another run holds the lock, ``output_dir`` holds another run's checkpoints,
            or ``best`` or ``final`` is a file or holds files the trainer did not write.
    """
    held = hold_lock(output_dir, "`output_dir`", "training run") if accelerator.is_main_process else nullcontext()
    with held:
        for name in ADAPTER_FOLDERS:
            refuse_foreign_adapter_folder(output_dir / name)
        if config.resume_from_checkpoint is None:
            earlier = _checkpoints(output_dir)
            if earlier and not config.overwrite_output_dir:
                names = ", ".join(p.name for p in earlier[-3:])
                raise OutputPathError(
                    f"`output_dir` {output_dir} holds checkpoints of an earlier run ({names}). Resume it "
                    "(`resume_from_checkpoint='latest'`), start afresh deleting its outputs "
                    "(`overwrite_output_dir=True`), or choose another `output_dir`."
                )
            accelerator.wait_for_everyone()  # every process has looked before the main one deletes
            if config.overwrite_output_dir and accelerator.is_main_process:
                for old in [*earlier, *(output_dir / name for name in (*ADAPTER_FOLDERS, "logs"))]:
                    if old.is_dir():
                        shutil.rmtree(old)
            accelerator.wait_for_everyone()
        yield


def find_checkpoint(where: str, output_dir: Path) -> Path:
    """The checkpoint ``resume_from_checkpoint`` names: a folder, or ``"latest"`` in ``output_dir``."""
    if where == "latest":
        found = _checkpoints(output_dir)
        if not found:
            raise KGFileNotFoundError(f"`resume_from_checkpoint='latest'`, but {output_dir} holds no checkpoint-*.")
        return found[-1]
    folder = Path(where)
    if not (folder / TRAINER_STATE_NAME).is_file():
        raise KGFileNotFoundError(f"No resumable checkpoint at {folder} (missing {TRAINER_STATE_NAME}).")
    return folder


def prune_checkpoints(accelerator: Accelerator, output_dir: Path, limit: int | None) -> None:
    """Delete all but the newest ``limit`` checkpoints in ``output_dir`` (none with ``limit=None``)."""
    if limit is None or not accelerator.is_main_process:
        return
    for old in _checkpoints(output_dir)[:-limit]:
        shutil.rmtree(old)


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states: tensors (torch, CUDA, numpy's key) and JSON values (the rest)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    tensors["numpy.keys"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss_next = random.getstate()
    extra = {
        "numpy": {
            "kind": kind,
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }
    return tensors, extra


def _set_rng_state(tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"cuda.{i}" in tensors:
                torch.cuda.set_rng_state(tensors[f"cuda.{i}"], i)
    n = extra["numpy"]
    keys = tensors["numpy.keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = extra["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def _save_tensors(tensors: dict[str, torch.Tensor], file: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(file), metadata={"format": "pt"})


def _read_json(file: Path) -> Any:
    """The JSON value in the checkpoint file ``file``; an error naming the file (and the line) if it is unreadable."""
    if not file.is_file():
        raise KGFileNotFoundError(f"Checkpoint file missing: {file}")
    return read_json(file, CheckpointError)


def _write_json(file: Path, values: Any) -> None:
    file.write_text(json.dumps(values, indent=2), encoding="utf-8")


def _after_failed_save(folder: Path) -> str:
    """What to do when saving ``folder`` (in a run's ``output_dir``) failed: where to resume from."""
    last = latest_checkpoint(folder.parent)
    resume = f"; then resume from {last} (`kgpeft train --resume`, `resume_from_checkpoint='latest'`)" if last else ""
    return f"Free space (or choose another `output_dir`){resume}."


def _fresh_temp(folder: Path) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    return tmp
