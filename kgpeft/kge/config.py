"""`KGEConfig`: the model and training settings of a KG embedding (the ``kge:`` section of a config file)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kgpeft.configuration import ConfigError, check_field_types, dataclass_from_dict, is_int

KGE_MODELS = ("transe", "distmult", "complex", "rotate")
# Losses per training regime; the first of each is the regime's default.
LOSSES = {"negative_sampling": ("softplus", "margin", "nssa"), "1-n": ("ce", "bce")}
# Names used before `KGEConfig` took `TrainingConfig`'s words; embedding files saved then still load.
RENAMED_KEYS = {"lr": "learning_rate", "epochs": "num_epochs"}


class KGEConfigError(ConfigError):
    """An invalid KG embedding config."""


@dataclass
class KGEConfig:
    """Model and training settings of a KG embedding (``kge:`` section of a config file)."""

    model: str = field(
        default="complex", metadata={"help": "The scoring model: transe, distmult, complex or rotate (any case)."}
    )
    hidden_channels: int = field(
        default=200, metadata={"help": "Embedding size (complex dimensions for ComplEx and RotatE)."}
    )
    reciprocal: bool = field(
        default=False, metadata={"help": "Add a reciprocal relation per relation; heads are predicted as its tails."}
    )
    margin: float = field(default=1.0, metadata={"help": "RotatE's gamma; the margin of the `margin` loss."})
    p_norm: float = field(default=1.0, metadata={"help": "TransE's distance norm."})
    training: Literal["negative_sampling", "1-n"] = field(
        default="1-n",
        metadata={"help": "`negative_sampling` (corruptions per positive) or `1-n` (each query against all entities)."},
    )
    loss: Literal["softplus", "margin", "nssa", "bce", "ce"] | None = field(
        default=None,
        metadata={
            "help": "softplus, margin or nssa (negative sampling); bce or ce (1-n). Default: ce for 1-n, softplus "
            "for negative sampling."
        },
    )
    num_negatives: int = field(default=32, metadata={"help": "Corruptions per positive (negative sampling)."})
    negative_sampler: Literal["uniform", "bernoulli"] = field(
        default="uniform",
        metadata={"help": "`uniform` (head or tail with probability 1/2) or `bernoulli` (by the relation's tph/hpt)."},
    )
    adversarial_temperature: float = field(default=1.0, metadata={"help": "Alpha of the `nssa` loss."})
    label_smoothing: float = field(default=0.0, metadata={"help": "Label smoothing of the `bce` and `ce` losses."})
    regularizer: Literal["n3", "l2"] = field(
        default="n3", metadata={"help": "`n3` or `l2`, on the embeddings a batch uses."}
    )
    regularization_weight: float = field(default=0.0, metadata={"help": "Weight of the regularizer; 0 turns it off."})
    optimizer: Literal["adam", "adagrad"] = field(default="adam", metadata={"help": "`adam` or `adagrad`."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of the optimizer."})
    batch_size: int = field(default=256, metadata={"help": "Positives (or 1-n queries) per step."})
    num_epochs: int = field(default=100, metadata={"help": "Most passes over the training triples."})
    eval_every: int = field(default=10, metadata={"help": "Epochs between validation evaluations; 0: never."})
    patience: int = field(
        default=3,
        metadata={
            "help": "Evaluations without a better valid MRR before stopping; 0: never stop early. The best state "
            "is restored at the end."
        },
    )
    eval_batch_size: int = field(default=256, metadata={"help": "Queries per evaluation batch."})
    seed: int = field(default=0, metadata={"help": "Seed of initialisation and sampling."})
    device: str = field(default="auto", metadata={"help": "`auto` (CUDA when available), `cpu`, `cuda`, ..."})

    def __post_init__(self) -> None:
        check_field_types(self, KGEConfigError)
        if isinstance(self.model, str):
            self.model = self.model.lower()
        for name, choices in [
            ("model", KGE_MODELS),
            ("training", tuple(LOSSES)),
            ("negative_sampler", ("uniform", "bernoulli")),
            ("regularizer", ("n3", "l2")),
            ("optimizer", ("adam", "adagrad")),
        ]:
            if getattr(self, name) not in choices:
                raise KGEConfigError(f"`{name}` should be one of {choices}, got {getattr(self, name)!r}.")
        if self.loss is None:
            self.loss = LOSSES[self.training][0]
        if self.loss not in LOSSES[self.training]:
            raise KGEConfigError(
                f"`loss={self.loss!r}` does not go with `training={self.training!r}`; "
                f"choose one of {', '.join(LOSSES[self.training])}."
            )
        for name in ("hidden_channels", "batch_size", "eval_batch_size", "num_negatives"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise KGEConfigError(f"`{name}` should be at least 1, got {value!r}.")
        for name in ("num_epochs", "eval_every", "patience"):
            value = getattr(self, name)
            if not is_int(value) or value < 0:
                raise KGEConfigError(f"`{name}` should be a non-negative integer, got {value!r}.")
        if not self.learning_rate > 0:
            raise KGEConfigError(f"`learning_rate` should be positive, got {self.learning_rate!r}.")
        if not self.regularization_weight >= 0:
            raise KGEConfigError(f"`regularization_weight` should be non-negative, got {self.regularization_weight!r}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise KGEConfigError(f"`label_smoothing` should be in [0, 1), got {self.label_smoothing!r}.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> KGEConfig:
        """Build from a plain dict (a YAML file's ``kge:`` section), naming unknown keys and wrong types."""
        return dataclass_from_dict(cls, values, "KGE config", KGEConfigError)

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> KGEConfig:
        """Build from the config saved in an embedding file, reading the keys of older files by their new names."""
        return cls.from_dict({RENAMED_KEYS.get(k, k): v for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_kwargs(self) -> dict[str, float]:
        """Keyword arguments of the model's constructor beyond the sizes."""
        return {
            "transe": {"margin": self.margin, "p_norm": self.p_norm},
            "distmult": {"margin": self.margin},
            "complex": {},
            "rotate": {"margin": self.margin},
        }[self.model]
