"""The joint training loop on `accelerate`: adapters and graph encoder train, the base model stays frozen.

The same script runs on one CPU, one GPU, or as data-parallel processes under
``accelerate launch --multi_gpu --num_processes N script.py``; kgpeft writes no process-group
code. On a machine without GPUs, set ``ACCELERATE_USE_CPU=1`` for the same command to start N
CPU processes joined by gloo (``accelerate launch --cpu`` starts only one, unless under MPI).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration, set_seed
from torch import nn
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm
from transformers import get_scheduler

from kgpeft.errors import KGPeftError
from kgpeft.padding import skip_padding
from kgpeft.training.checkpoints import (
    CHECKPOINT_PREFIX,
    TrainerState,
    claim_output_dir,
    find_checkpoint,
    is_sharded,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_adapter,
    save_checkpoint,
)
from kgpeft.training.config import TrainingConfig, TrainingConfigError
from kgpeft.training.loss import batch_loss, causal_lm_head
from kgpeft.training.tracking import trackers
from kgpeft.utils import ensure_writable

Evaluate = Callable[[nn.Module, Accelerator], dict[str, float]]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Args:
        global_step (int): optimizer steps taken in all, resumed ones included.
        train_loss (float): mean training loss over the batches of this call, all processes.
        metrics (dict): the last evaluation (empty without ``eval_dataset`` and ``evaluate``).
        best_metric (float, optional): the best ``metric_for_best_model`` seen.
        best_step (int, optional): the step it was seen at.
        final_dir (Path): where the final adapter was saved (``output_dir/final``).
    """

    global_step: int
    train_loss: float
    metrics: dict[str, float]
    best_metric: float | None
    best_step: int | None
    final_dir: Path


def train(
    model: nn.Module,
    train_dataset: Sequence[Any],
    collate_fn: Callable[[list[Any]], dict[str, Any]],
    config: TrainingConfig,
    eval_dataset: Sequence[Any] | None = None,
    evaluate: Evaluate | None = None,
) -> TrainResult:
    """Train the trainable parameters of ``model`` (adapters, graph encoder) with AdamW.

    Run it as is on one device, or under ``accelerate launch`` for data parallelism (DDP):
    each process then takes its share of every step's batches.

    Args:
        model (KGPeftModel): the model; ``model(**batch)`` must return an output with
            ``.loss``, and the model must have ``save_pretrained``.
        train_dataset (Sequence): samples, indexed; ``collate_fn`` turns a list of them into
            a batch dict, e.g. ``input_ids``, ``attention_mask``, ``labels`` and
            ``knowledge`` (a :class:`~kgpeft.tuners.KnowledgeBatch`).
        collate_fn (Callable): builds a batch from a list of samples.
        config (TrainingConfig): the settings.
        eval_dataset (Sequence, optional): samples whose mean loss is reported as the
            evaluation metric ``loss``.
        evaluate (Callable, optional): ``evaluate(model, accelerator) -> dict[str, float]``,
            further evaluation metrics. The contract: it is called on every process at the
            same time, with the prepared (possibly DDP-wrapped) model in eval mode under
            ``torch.no_grad()``; it iterates over its own data prepared with
            ``accelerator.prepare(dataloader)``, combines predictions across processes with
            ``accelerator.gather_for_metrics(...)`` (which drops the samples duplicated to
            even out the last batch), and returns the same floats on every process. Use
            ``accelerator.unwrap_model(model)`` for ``generate``.

    Evaluation runs every ``eval_steps`` steps and at the end; with ``save_best`` the
    adapter with the best ``metric_for_best_model`` goes to ``output_dir/best``. The final
    adapter goes to ``output_dir/final``. Each has a ``trainer_state.json`` (step, metrics,
    config) next to the weights. Every ``save_steps`` steps a resumable
    ``output_dir/checkpoint-{step}`` is written; ``resume_from_checkpoint`` continues from
    one so exactly that the result equals an uninterrupted run (on CPU).

    ``output_dir`` is checked to be writable before anything else, and held for this run
    (:func:`~kgpeft.training.checkpoints.claim_output_dir`): another run writing there, or
    another run's checkpoints left there, stop this one at once, unless it resumes
    (``resume_from_checkpoint``) or starts afresh (``overwrite_output_dir``).

    Raises:
        OutputPathError: ``output_dir`` cannot be written, another run holds it, it holds
            another run's checkpoints, or its ``best`` or ``final`` folder holds files the trainer
            did not write (they are kept).
        TrainingDivergedError: the loss or the trainable parameters became NaN or infinite;
            the checkpoints saved before are kept, the final adapter is not saved.
    """
    output_dir = ensure_writable(config.output_dir, "`output_dir`")
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=_resolve_mixed_precision(config.mixed_precision),
        log_with=trackers(config, output_dir / "logs"),
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        # A batch without linked entities may leave graph-encoder parameters out of the autograd graph.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    unpadded = skip_padding(model) if config.skip_padding else nullcontext()
    with claim_output_dir(output_dir, config, accelerator), unpadded:
        return _train(model, train_dataset, collate_fn, config, eval_dataset, evaluate, accelerator, output_dir)


@dataclass
class _Run:
    """What one call of :func:`train` prepared: the prepared model, data, optimizer and schedule."""

    model: nn.Module
    train_dataloader: DataLoader
    eval_dataloader: DataLoader | None
    generator: torch.Generator  # the training order's, reseeded with seed + epoch at every epoch
    optimizer: torch.optim.Optimizer
    scheduler: Any
    param_names: list[str]
    max_steps: int


@dataclass
class _Window:
    """The training loss and throughput since the last log line, and the loss before it."""

    loss: torch.Tensor
    batches: int = 0
    samples: int = 0
    start: float = 0.0
    total_loss: torch.Tensor | None = None
    total_batches: int = 0

    def close(self) -> None:
        """Add the window to the totals and start a new one."""
        self.total_loss, self.total_batches = self.total_loss + self.loss, self.total_batches + self.batches
        self.loss, self.batches, self.samples = torch.zeros_like(self.loss), 0, 0
        self.start = time.perf_counter()


def _train(
    model: nn.Module,
    train_dataset: Sequence[Any],
    collate_fn: Callable[[list[Any]], dict[str, Any]],
    config: TrainingConfig,
    eval_dataset: Sequence[Any] | None,
    evaluate: Evaluate | None,
    accelerator: Accelerator,
    output_dir: Path,
) -> TrainResult:
    set_seed(config.seed)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    run = _prepare(model, train_dataset, collate_fn, config, eval_dataset, accelerator)
    if config.save_best and run.eval_dataloader is None and evaluate is None:
        raise TrainingConfigError("`save_best=True` needs something to evaluate: pass `eval_dataset` or `evaluate`.")
    accelerator.init_trackers("kgpeft", config=_hparams(config))
    state = TrainerState()
    if config.resume_from_checkpoint is not None:
        checkpoint = find_checkpoint(config.resume_from_checkpoint, output_dir)
        state = load_checkpoint(
            checkpoint, accelerator, run.model, run.optimizer, run.scheduler, run.param_names, config
        )
        accelerator.print(f"Resumed from {checkpoint} at step {state.global_step}.")
    window, evaluated_at = _train_steps(run, state, config, evaluate, accelerator, output_dir)
    if evaluated_at != state.global_step and (run.eval_dataloader is not None or evaluate is not None):
        _evaluate_and_keep_best(accelerator, run.model, run.eval_dataloader, evaluate, state, config, output_dir)
    final_dir = output_dir / "final"
    _check_finite_parameters(run.model, state, output_dir)
    save_adapter(final_dir, accelerator, run.model, state, config)
    window.close()
    train_loss = accelerator.reduce(window.total_loss / max(window.total_batches, 1), "mean").item()
    accelerator.print(f"Trained {state.global_step} steps, loss {train_loss:.4f}; adapter saved to {final_dir}.")
    # Not `end_training()`: it also destroys the process group, which belongs to the script (it may
    # evaluate next), and destroying it while DDP still holds it can deadlock gloo at teardown.
    for tracker in accelerator.trackers:
        tracker.finish()
    return TrainResult(state.global_step, train_loss, state.metrics, state.best_metric, state.best_step, final_dir)


def _prepare(
    model: nn.Module,
    train_dataset: Sequence[Any],
    collate_fn: Callable[[list[Any]], dict[str, Any]],
    config: TrainingConfig,
    eval_dataset: Sequence[Any] | None,
    accelerator: Accelerator,
) -> _Run:
    """The data loaders, the AdamW optimizer (weight matrices decayed) and the schedule, prepared by ``accelerator``."""
    # Reseeded with seed + epoch at every epoch, so every process and a resumed run see the same order.
    generator = torch.Generator()
    train_dataloader = DataLoader(
        train_dataset,
        batch_size=config.per_device_train_batch_size,
        sampler=RandomSampler(train_dataset, generator=generator),
        generator=generator,  # worker seeds come from here, not from the global RNG that dropout uses
        collate_fn=collate_fn,
        num_workers=config.num_workers,
    )
    if len(train_dataloader) == 0:
        raise ValueError("`train_dataset` is empty: there is nothing to train on.")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [(n, p) for n, p in named if p.ndim >= 2]  # weight matrices; biases and norms are not decayed
    no_decay = [(n, p) for n, p in named if p.ndim < 2]
    groups = [(decay, config.weight_decay), (no_decay, 0.0)]
    groups = [(params, wd) for params, wd in groups if params]
    param_names = [n for params, _ in groups for n, _ in params]
    optimizer = torch.optim.AdamW(
        [{"params": [p for _, p in params], "weight_decay": wd} for params, wd in groups], lr=config.learning_rate
    )
    steps_per_epoch = math.ceil(
        math.ceil(len(train_dataloader) / accelerator.num_processes) / config.gradient_accumulation_steps
    )
    max_steps = config.max_steps or config.num_epochs * steps_per_epoch
    # A prepared scheduler steps once per process at every optimizer step (accelerate's convention).
    scheduler = get_scheduler(
        config.lr_scheduler_type,
        optimizer,
        num_warmup_steps=config.warmup_steps * accelerator.num_processes,
        num_training_steps=max_steps * accelerator.num_processes,
        scheduler_specific_kwargs=config.lr_scheduler_kwargs or None,
    )
    if is_sharded(accelerator) and (config.save_steps or config.resume_from_checkpoint is not None):
        raise TrainingConfigError(
            f"`save_steps` and `resume_from_checkpoint` are not supported under {accelerator.distributed_type.value}: "
            "a resumable checkpoint holds whole optimizer states, which a sharded run does not have. Train without "
            "them (the final and best adapters are saved whole), or use DDP (configs/accelerate/ddp.yaml)."
        )
    model, optimizer, train_dataloader, scheduler = accelerator.prepare(model, optimizer, train_dataloader, scheduler)
    eval_dataloader = None
    if eval_dataset is not None:
        eval_dataloader = accelerator.prepare(
            DataLoader(
                eval_dataset,
                batch_size=config.per_device_eval_batch_size,
                collate_fn=collate_fn,
                num_workers=config.num_workers,
                generator=torch.Generator(),  # evaluating leaves the training's random stream alone
            )
        )
    return _Run(model, train_dataloader, eval_dataloader, generator, optimizer, scheduler, param_names, max_steps)


def _train_steps(
    run: _Run,
    state: TrainerState,
    config: TrainingConfig,
    evaluate: Evaluate | None,
    accelerator: Accelerator,
    output_dir: Path,
) -> tuple[_Window, int | None]:
    """Take optimizer steps up to ``run.max_steps``; returns the loss window and the step last evaluated at."""
    model, optimizer, scheduler, train_dataloader = run.model, run.optimizer, run.scheduler, run.train_dataloader
    progress = tqdm(
        total=run.max_steps,
        initial=state.global_step,
        desc="training",
        disable=not (config.progress_bar and accelerator.is_local_main_process),
    )
    head = causal_lm_head(model)  # a causal LM's loss runs its head only where there are labels
    zero = torch.zeros((), device=accelerator.device)
    window = _Window(zero.clone(), start=time.perf_counter(), total_loss=zero.clone())
    evaluated_at = None
    epoch, skip = state.epoch, state.batch_in_epoch  # where a resumed run picks up
    if skip >= len(train_dataloader):
        epoch, skip = epoch + 1, 0
    while state.global_step < run.max_steps:
        run.generator.manual_seed(config.seed + epoch)
        batches = accelerator.skip_first_batches(train_dataloader, skip) if skip else train_dataloader
        for batch_index, batch in enumerate(batches, start=skip):
            with accelerator.accumulate(model):
                loss = batch_loss(model, batch, head)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            window.loss += loss.detach().float()
            window.batches += 1
            window.samples += _batch_size(batch)
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            state.epoch, state.batch_in_epoch = epoch, batch_index + 1
            progress.update(1)
            # one check per step, agreed by all processes: a NaN on one spreads to all through the gradients
            if accelerator.reduce((~torch.isfinite(window.loss)).float(), "sum").item():
                raise TrainingDivergedError(_diverged("the training loss", state, output_dir))
            if state.global_step % config.logging_steps == 0:
                loss_value, throughput = _log_window(window, state, epoch, run, accelerator)
                progress.set_postfix(loss=f"{loss_value:.4f}", samples_s=f"{throughput:.1f}")
            paused = time.perf_counter()
            if _evaluate_and_save(run, state, config, evaluate, accelerator, output_dir):
                evaluated_at = state.global_step
            window.start += time.perf_counter() - paused  # samples/s counts training time only
            if state.global_step >= run.max_steps:
                break
        epoch, skip = epoch + 1, 0
    progress.close()
    return window, evaluated_at


def _log_window(
    window: _Window, state: TrainerState, epoch: int, run: _Run, accelerator: Accelerator
) -> tuple[float, float]:
    """Log the window's mean loss, the learning rate, samples/s and the epoch; start a new window.

    Returns the loss and the samples per second logged.
    """
    loss_value = accelerator.reduce(window.loss / window.batches, "mean").item()
    throughput = window.samples * accelerator.num_processes / (time.perf_counter() - window.start)
    accelerator.log(
        {
            "train/loss": loss_value,
            "train/learning_rate": run.scheduler.get_last_lr()[0],
            "train/samples_per_second": throughput,
            "train/epoch": epoch + state.batch_in_epoch / len(run.train_dataloader),
        },
        step=state.global_step,
    )
    window.close()
    return loss_value, throughput


def _evaluate_and_save(
    run: _Run,
    state: TrainerState,
    config: TrainingConfig,
    evaluate: Evaluate | None,
    accelerator: Accelerator,
    output_dir: Path,
) -> bool:
    """Evaluate every ``eval_steps`` and write a resumable checkpoint every ``save_steps``; whether it evaluated."""
    evaluated = config.eval_steps is not None and state.global_step % config.eval_steps == 0
    if evaluated:
        _evaluate_and_keep_best(accelerator, run.model, run.eval_dataloader, evaluate, state, config, output_dir)
    if config.save_steps is not None and state.global_step % config.save_steps == 0:
        _check_finite_parameters(run.model, state, output_dir)
        save_checkpoint(
            output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}",
            accelerator,
            run.model,
            run.optimizer,
            run.scheduler,
            run.param_names,
            state,
            config,
        )
        prune_checkpoints(accelerator, output_dir, config.save_total_limit)
    return evaluated


# ------------------------------------------------------------------ evaluation
@torch.no_grad()
def evaluate_model(
    model: nn.Module, accelerator: Accelerator, eval_dataloader: DataLoader | None, evaluate: Evaluate | None
) -> dict[str, float]:
    """The mean loss over ``eval_dataloader`` (as ``loss``) and what ``evaluate`` returns."""
    model.eval()
    metrics: dict[str, float] = {}
    if eval_dataloader is not None:
        losses, head = [], causal_lm_head(model)
        for batch in eval_dataloader:
            loss = batch_loss(model, batch, head).detach().float()
            losses.append(accelerator.gather_for_metrics(loss.expand(_batch_size(batch))))  # (B,)
        metrics["loss"] = torch.cat(losses).mean().item()
    if evaluate is not None:
        metrics.update(evaluate(model, accelerator))
    model.train()
    return metrics


def _evaluate_and_keep_best(
    accelerator: Accelerator,
    model: nn.Module,
    eval_dataloader: DataLoader | None,
    evaluate: Evaluate | None,
    state: TrainerState,
    config: TrainingConfig,
    output_dir: Path,
) -> None:
    state.metrics = evaluate_model(model, accelerator, eval_dataloader, evaluate)
    accelerator.log({f"eval/{k}": v for k, v in state.metrics.items()}, step=state.global_step)
    accelerator.print(f"step {state.global_step}: " + ", ".join(f"{k}={v:.4g}" for k, v in state.metrics.items()))
    if not config.save_best:
        return
    name = config.metric_for_best_model
    if name not in state.metrics:
        raise TrainingConfigError(
            f"`metric_for_best_model` is {name!r}, but evaluation returned only {sorted(state.metrics)}."
        )
    value = state.metrics[name]
    if state.best_metric is None or (
        value > state.best_metric if config.greater_is_better else value < state.best_metric
    ):
        state.best_metric, state.best_step = value, state.global_step
        _check_finite_parameters(model, state, output_dir)
        save_adapter(output_dir / "best", accelerator, model, state, config)


# ------------------------------------------------------------------ divergence
class TrainingDivergedError(KGPeftError, FloatingPointError):
    """The training loss or the trainable parameters became NaN or infinite."""


def _check_finite_parameters(model: nn.Module, state: TrainerState, output_dir: Path) -> None:
    """Refuse to save NaN or infinite weights (a finite loss can still take a step to them)."""
    finite = [torch.isfinite(p).all() for p in model.parameters() if p.requires_grad]
    if finite and not torch.stack(finite).all().item():
        raise TrainingDivergedError(_diverged("the trainable parameters", state, output_dir))


def _diverged(what: str, state: TrainerState, output_dir: Path) -> str:
    saved = latest_checkpoint(output_dir)
    kept = f"the last checkpoint, {saved}, is kept" if saved else "no checkpoint was saved (set `save_steps`)"
    return (
        f"Training diverged: {what} became NaN or infinite at step {state.global_step}. Stopped without saving "
        f"it as the final adapter; {kept}. Lower `learning_rate` (or set `max_grad_norm`) and train again."
    )


# --------------------------------------------------------------------- helpers
def _resolve_mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _hparams(config: TrainingConfig) -> dict[str, bool | int | float | str]:
    """The config with scalar values only, as trackers such as TensorBoard's hparams want."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in config.to_dict().items()}


def _batch_size(batch: dict[str, Any]) -> int:
    for value in batch.values():
        if isinstance(value, torch.Tensor):
            return value.size(0)
    raise ValueError(f"Cannot tell the batch size: no tensor among the batch's keys {sorted(batch)}.")
