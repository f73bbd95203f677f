"""`TrainingConfig`: the settings of the joint training loop."""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import SchedulerType, get_scheduler

from kgpeft.configuration import ConfigError, check_field_types, dataclass_from_dict, is_int

MixedPrecision = Literal["no", "bf16", "fp16", "auto"]
MIXED_PRECISIONS = ("no", "bf16", "fp16", "auto")
TRACKERS = ("csv", "tensorboard")
# These step on a metric rather than on the step count, which the loop does not feed them.
_METRIC_SCHEDULERS = ("reduce_lr_on_plateau", "greedy")
# What the training loop passes to every schedule itself.
_SCHEDULER_ARGUMENTS = {"optimizer", "num_warmup_steps", "num_training_steps", "last_epoch"}
LR_SCHEDULERS = tuple(s.value for s in SchedulerType if s.value not in _METRIC_SCHEDULERS)


class TrainingConfigError(ConfigError):
    """A training setting is unknown, of the wrong type or out of range."""


@dataclass
class TrainingConfig:
    """Settings of :func:`kgpeft.training.trainer.train`.

    Steps are optimizer steps: one step consumes ``gradient_accumulation_steps`` batches of
    ``per_device_train_batch_size`` samples on each process.
    """

    output_dir: str = field(
        default="outputs",
        metadata={"help": "Folder for checkpoints (`checkpoint-{step}`, `best`, `final`) and logs."},
    )
    max_steps: int | None = field(
        default=None, metadata={"help": "Optimizer steps to train for; when set, overrides `num_epochs`."}
    )
    num_epochs: int = field(default=1, metadata={"help": "Passes over the training set (when `max_steps` is None)."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Training samples per batch per process."})
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "Evaluation samples per batch per process."})
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate of AdamW."})
    weight_decay: float = field(
        default=0.0, metadata={"help": "AdamW weight decay, applied to weight matrices (not to biases or norms)."}
    )
    warmup_steps: int = field(default=0, metadata={"help": "Optimizer steps of linear learning-rate warmup."})
    lr_scheduler_type: str = field(
        default="linear",
        metadata={"help": f"Learning-rate schedule, a `transformers.get_scheduler` name: {', '.join(LR_SCHEDULERS)}."},
    )
    lr_scheduler_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Extra arguments of the schedule, e.g. `{'min_lr_rate': 0.1}` for `cosine_with_min_lr`."},
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Batches whose gradients are summed before each optimizer step."}
    )
    max_grad_norm: float | None = field(
        default=1.0, metadata={"help": "Clip the gradient norm to this before each step (None: no clipping)."}
    )
    mixed_precision: MixedPrecision = field(
        default="auto",
        metadata={"help": "`no`, `bf16`, `fp16`, or `auto`: bf16 on a GPU that supports it, else `no`."},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute the base model's activations in backward to save memory."}
    )
    skip_padding: bool = field(
        default=True,
        metadata={
            "help": "Run the frozen linear layers only on real tokens, not on padding (`kgpeft.padding`): "
            "the same numbers, bit for bit, in less time."
        },
    )
    eval_steps: int | None = field(
        default=None,
        metadata={"help": "Evaluate every this many steps (None: only at the end); evaluation always runs at the end."},
    )
    save_steps: int | None = field(
        default=None,
        metadata={"help": "Write a resumable checkpoint `checkpoint-{step}` every this many steps (None: never)."},
    )
    save_total_limit: int | None = field(
        default=None, metadata={"help": "Keep only the newest this many resumable checkpoints (None: keep all)."}
    )
    save_best: bool = field(
        default=False, metadata={"help": "Save the adapter with the best evaluation metric to `output_dir/best`."}
    )
    metric_for_best_model: str = field(
        default="loss",
        metadata={"help": "Evaluation metric that decides the best model: `loss` or a key `evaluate` returns."},
    )
    greater_is_better: bool = field(
        default=False, metadata={"help": "Whether a larger `metric_for_best_model` is better."}
    )
    logging_steps: int = field(default=10, metadata={"help": "Log loss, learning rate and samples/s this often."})
    seed: int = field(default=42, metadata={"help": "Seed of all random generators and of the data order."})
    log_with: list[str] = field(
        default_factory=list,
        metadata={"help": "Trackers: `csv` (`output_dir/logs/metrics.csv`) and/or `tensorboard`."},
    )
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "A `checkpoint-{step}` folder to resume from, or `latest` for the newest in `output_dir`."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start afresh in an `output_dir` holding another run's checkpoints, deleting its "
            "`checkpoint-*`, `best`, `final` and `logs` (without it, such a folder is refused unless resuming)."
        },
    )
    progress_bar: bool = field(default=True, metadata={"help": "Show a progress bar on the main process."})

    def __post_init__(self) -> None:
        check_field_types(self, TrainingConfigError)
        self.log_with = list(self.log_with)
        positive = ["num_epochs", "per_device_train_batch_size", "per_device_eval_batch_size"]
        positive += ["gradient_accumulation_steps", "logging_steps"]
        optional = ["max_steps", "eval_steps", "save_steps", "save_total_limit"]
        for name in positive + [n for n in optional if getattr(self, n) is not None]:
            value = getattr(self, name)
            if not is_int(value) or value <= 0:
                raise TrainingConfigError(f"`{name}` should be a positive integer, got {value!r}.")
        for name in ("warmup_steps", "num_workers"):
            value = getattr(self, name)
            if not is_int(value) or value < 0:
                raise TrainingConfigError(f"`{name}` should be a non-negative integer, got {value!r}.")
        if not self.learning_rate > 0:
            raise TrainingConfigError(f"`learning_rate` should be positive, got {self.learning_rate!r}.")
        if not self.weight_decay >= 0:
            raise TrainingConfigError(f"`weight_decay` should be non-negative, got {self.weight_decay!r}.")
        for name in ("learning_rate", "weight_decay"):
            if not math.isfinite(getattr(self, name)):
                raise TrainingConfigError(f"`{name}` should be finite, got {getattr(self, name)!r}.")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise TrainingConfigError(f"`max_grad_norm` should be positive or None, got {self.max_grad_norm!r}.")
        if self.lr_scheduler_type not in LR_SCHEDULERS:
            raise TrainingConfigError(
                f"`lr_scheduler_type` should be one of {LR_SCHEDULERS}, got {self.lr_scheduler_type!r}."
            )
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise TrainingConfigError(
                f"`mixed_precision` should be one of {MIXED_PRECISIONS}, got {self.mixed_precision!r}."
            )
        unknown = [t for t in self.log_with if t not in TRACKERS]
        if unknown:
            raise TrainingConfigError(f"`log_with` entries should be among {TRACKERS}, got {unknown}.")
        if not 0 <= self.seed < 2**32:
            raise TrainingConfigError(f"`seed` should be in [0, 2**32), got {self.seed!r}.")
        if not self.metric_for_best_model:
            raise TrainingConfigError("`metric_for_best_model` should name an evaluation metric, got an empty string.")
        self._check_scheduler_kwargs()

    def _check_scheduler_kwargs(self) -> None:
        """Refuse ``lr_scheduler_kwargs`` the schedule does not take, or whose values it cannot compute with.

        The schedule is built once over a dummy parameter and its factor read along the run, so a
        wrong key or value fails here rather than once the model is loaded.
        """
        from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION

        name = SchedulerType(self.lr_scheduler_type)
        known = set()
        if name not in (SchedulerType.CONSTANT, SchedulerType.CONSTANT_WITH_WARMUP):  # get_scheduler passes none
            known = set(inspect.signature(TYPE_TO_SCHEDULER_FUNCTION[name]).parameters) - _SCHEDULER_ARGUMENTS
        unknown = sorted(set(self.lr_scheduler_kwargs) - known)
        if unknown:
            raise TrainingConfigError(
                f"`lr_scheduler_kwargs` has keys {unknown} that `lr_scheduler_type` {name.value!r} does not take; "
                f"it takes {sorted(known) or 'none'}."
            )
        steps = self.max_steps or 100
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        try:
            scheduler = get_scheduler(
                name,
                optimizer,
                num_warmup_steps=self.warmup_steps,
                num_training_steps=steps,
                scheduler_specific_kwargs=self.lr_scheduler_kwargs or None,
            )
            for step in range(0, steps + 1, max(1, steps // 16)):
                for factor in getattr(scheduler, "lr_lambdas", []):
                    factor(step)
        except (TypeError, ValueError, ArithmeticError) as e:
            raise TrainingConfigError(
                f"`lr_scheduler_kwargs` {self.lr_scheduler_kwargs} do not fit `lr_scheduler_type` {name.value!r}: {e}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """Build from a plain dict (e.g. a YAML file's ``training:`` section), checking keys and types.

        Unlike a saved adapter config, a training config is written by hand, so an unknown key
        is an error (usually a typo) rather than a warning.
        """
        return dataclass_from_dict(cls, values, "training config", TrainingConfigError)
