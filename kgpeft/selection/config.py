"""How the fact scorer is built and trained (:class:`FactScorerConfig`), and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field

from kgpeft.configuration import ConfigError, check_field_types, is_int
from kgpeft.errors import KGPeftError

#: What the scorer learns from: the task's answer entities, or the answer's likelihood under the LM.
OBJECTIVES = ("answers", "marginal")
#: How the scorer of a ``memory`` adapter trains: apart and first, with the adapter from the task loss, or both.
TRAINING_MODES = ("staged", "joint", "joint-from-staged")


class FactScorerError(KGPeftError, ValueError):
    """A saved fact scorer is unreadable or does not fit the KG, or a task gives it nothing to learn from."""


class FactScorerConfigError(ConfigError):
    """A :class:`FactScorerConfig` value is out of range or of the wrong kind."""


@dataclass
class FactScorerConfig:
    """How the fact scorer is built and trained."""

    hidden_channels: int = field(default=128, metadata={"help": "Width of the scorer's R-GCN node states."})
    num_layers: int = field(default=2, metadata={"help": "R-GCN layers of the scorer."})
    objective: str = field(
        default="answers",
        metadata={
            "help": "`answers`: listwise loss on the facts reaching the task's answer entities (no LM runs; a "
            "training row without `answer_entities` gets them by linking its answer text); "
            "`marginal`: the answer's marginal likelihood under the base LM over the scorer's top facts."
        },
    )
    num_candidates: int = field(default=4, metadata={"help": "Facts per question the `marginal` objective scores."})
    max_steps: int = field(default=200, metadata={"help": "Training steps of the scorer."})
    batch_size: int = field(default=32, metadata={"help": "Questions per scorer step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate of the scorer."})
    seed: int = field(default=0, metadata={"help": "Initialisation and batch order."})
    training: str = field(
        default="staged",
        metadata={
            "help": f"One of {TRAINING_MODES}: `staged`: the scorer trains first, with `objective`, and ranks each "
            "example's facts once; `joint`: a fresh scorer trains with each `memory` adapter from the task loss "
            "(its log-probability of each fact biases the attention to the fact's slots) and picks the memory facts "
            "of every batch; `joint-from-staged`: staged first, then joint. `selected` prompt facts come from the "
            "staged scorer."
        },
    )

    def __post_init__(self) -> None:
        check_field_types(self, FactScorerConfigError)
        if self.training not in TRAINING_MODES:
            raise FactScorerConfigError(f"`training` should be one of {TRAINING_MODES}, got {self.training!r}.")
        if self.objective not in OBJECTIVES:
            raise FactScorerConfigError(f"`objective` should be one of {OBJECTIVES}, got {self.objective!r}.")
        for name in ("hidden_channels", "num_layers", "max_steps", "batch_size", "num_candidates"):
            value = getattr(self, name)
            if not is_int(value) or value <= 0:
                raise FactScorerConfigError(f"`{name}` should be a positive integer, got {value!r}.")
        if not 0 <= self.seed < 2**32:
            raise FactScorerConfigError(f"`seed` should be in [0, 2**32), got {self.seed!r}.")
        if not self.learning_rate > 0:
            raise FactScorerConfigError(f"`learning_rate` should be positive, got {self.learning_rate!r}.")
