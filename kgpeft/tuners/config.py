"""`KGLoraConfig`: the knowledge-conditioned LoRA configuration."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from peft import LoraConfig

from kgpeft.configuration import ConfigError, check_field_types, dataclass_from_dict, is_int
from kgpeft.tuners.modes import KNOWLEDGE_MODES as MODES

KNOWLEDGE_MODES = tuple(MODES)
KnowledgeMode = Literal[KNOWLEDGE_MODES]
NodeFeatures = Literal["text", "kge", "learned"]
NODE_FEATURES = ("text", "kge", "learned")
# Bumped when a saved checkpoint stops being readable by older kgpeft versions.
CONFIG_FORMAT_VERSION = 1
# Retrieval settings that older checkpoints saved here; RetrievalConfig owns them now.
LEGACY_KEYS = ("num_neighbors", "max_nodes", "max_candidates")


class KGLoraConfigError(ConfigError):
    """An adapter setting is unknown, of the wrong type or out of range."""


@dataclass
class KGLoraConfig:
    """Configuration of a knowledge-conditioned LoRA adapter (KG-LoRA).

    The LoRA part (``r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``) means what
    it means in peft and is saved as a plain :class:`peft.LoraConfig`; the rest describes the
    graph encoder and how its node states reach the adapters.
    """

    r: int = field(default=8, metadata={"help": "LoRA rank; also the width of the knowledge path."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator: the update is scaled by alpha / r."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the adapter input."})
    target_modules: list[str] | str | None = field(
        default=None,
        metadata={
            "help": "Module names (or a regex) to adapt, as in peft. Default: the attention projections of the "
            "architecture (query, key, value, output), found from the model when not in kgpeft's table."
        },
    )
    modules_to_save: list[str] | None = field(
        default=None,
        metadata={
            "help": "Modules trained in full and saved with the adapter, as in peft (e.g. a new classification "
            "head: ['classifier', 'score'])."
        },
    )
    knowledge_mode: KnowledgeMode = field(
        default="memory",
        metadata={
            "help": "How the knowledge reaches the model: "
            + "; ".join(f"`{name}`: {mode.help}" for name, mode in MODES.items())
            + ". `memory`, the default, is the mode the project measured carrying knowledge."
        },
    )
    graph_channels: int = field(default=128, metadata={"help": "Width of the R-GCN node states (d_graph)."})
    num_graph_layers: int = field(default=2, metadata={"help": "Number of R-GCN layers."})
    num_bases: int | None = field(
        default=4,
        metadata={"help": "R-GCN basis decomposition: relation weights share this many bases (None: off)."},
    )
    num_blocks: int | None = field(default=None, metadata={"help": "R-GCN block decomposition (None: off)."})
    graph_dropout: float = field(default=0.0, metadata={"help": "Dropout inside the R-GCN."})
    node_features: NodeFeatures = field(
        default="text",
        metadata={
            "help": "`text`: entity labels through the base model's frozen input embeddings (no per-entity "
            "table is saved); `kge`: frozen pretrained KG embeddings; `learned`: a trainable table."
        },
    )
    kge_path: str | None = field(
        default=None,
        metadata={
            "help": "For `node_features='kge'`: a KG embedding file from `kgpeft kge train`; refused unless it was "
            "trained on this KG (fingerprint)."
        },
    )
    relation_loss_weight: float = field(
        default=0.0,
        metadata={
            "help": "Relation-aware training: weight of an auxiliary link-prediction loss on the R-GCN's node "
            "states (a DistMult decoder scores held-out subgraph edges against corrupted ones); 0: off."
        },
    )
    relation_holdout: float = field(
        default=0.2, metadata={"help": "Fraction of subgraph triples held out from message passing and scored."}
    )
    relation_negatives: int = field(default=4, metadata={"help": "Corrupted tails per held-out edge."})
    num_prefix_tokens: int = field(default=4, metadata={"help": "Soft tokens in `prefix` mode."})
    memory_gate_scale: float = field(
        default=20.0,
        metadata={
            "help": "`memory` (and `prefix`) mode's per-head gates are tanh(scale * g), g starting at 0: the scale "
            "lets a gate open within a short training (Adam moves g by about the learning rate per step); 1: "
            "LLaMA-Adapter's gate."
        },
    )

    memory_positions: Literal["none", "prefix"] = field(
        default="none",
        metadata={
            "help": "Where `memory` mode's slots sit for the rotary position embedding: `none`, queries and slot keys "
            "unrotated (a slot is read as if at the reading token's own position); `prefix`, each slot keeps the "
            "position it would have if the facts were text just before the prompt (keys at -n..-1, queries at "
            "their own positions), so attention can tell which fact token follows which; it needs a rotary "
            "embedding (a model with absolute positions at the input, or ALiBi, takes `none`)."
        },
    )

    memory_softmax: Literal["own", "shared", "inline"] = field(
        default="own",
        metadata={
            "help": "How `memory` mode's slots share attention with the text: `own`, a softmax of their own added "
            "behind the gate (LLaMA-Adapter); `shared`, one softmax over the slots and the text, as if the facts "
            "were a key/value prefix, the gate moving from the model's own attention (closed) to the joint one "
            "(open); `inline`, the same joint softmax computed by the attention itself, once (the slots prefixed to "
            "the keys and values its attention function reads), each head's gate a bias log(tanh(scale * g)) of its "
            "slots' scores (an opening above 0 needed): the cost of the facts as a key/value prefix; a model with "
            "rotary embeddings needs memory_positions='prefix', one whose positions are added at the input (BERT, "
            "GPT-2, OPT) takes `none` (its slots carry the positions they were encoded at)."
        },
    )

    memory_encoder: Literal["base", "adapter", "trained", "projections"] = field(
        default="base",
        metadata={
            "help": "Which model turns `memory` mode's facts into slots: `base`, the frozen base model (adapters "
            "off); `adapter`, the model with this adapter's LoRA on (as facts written into the prompt are read), "
            "without gradient through the facts; `trained`, the same with gradient, so the LoRA learns how it "
            "writes its memory as it learns to read it (a backward pass over the fact tokens too); `projections`, as "
            "`adapter`, the gradient reaching each layer's key and value LoRA directly but not the layers below "
            "(a forward pass over the fact tokens only: the cost of `adapter`, the key/value LoRA learning how it "
            "writes the memory)."
        },
    )

    memory_facts_together: bool = field(
        default=False,
        metadata={
            "help": "Encode a sample's `memory` facts as one text, each fact's tokens after the previous fact's (as "
            "a facts block written before the prompt reads them), instead of each fact alone from position 0."
        },
    )

    memory_gate_opening: float = field(
        default=0.0,
        metadata={
            "help": "`memory` mode's initial gate opening tanh(scale * g) in [0, 1): 0, a fresh adapter is exactly "
            "the base model; near 1 with memory_softmax='shared', a fresh adapter reads its facts as the base model "
            "reads them written before the prompt."
        },
    )

    def __post_init__(self) -> None:
        check_field_types(self, KGLoraConfigError)
        positive = ("r", "lora_alpha", "graph_channels", "num_graph_layers", "num_prefix_tokens")
        for name in (*positive, "relation_negatives"):
            value = getattr(self, name)
            if not is_int(value) or value <= 0:
                raise KGLoraConfigError(f"`{name}` should be a positive integer, got {value!r}.")
        for name in ("num_bases", "num_blocks"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value <= 0):
                raise KGLoraConfigError(f"`{name}` should be a positive integer or None, got {value!r}.")
        for name in ("lora_dropout", "graph_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise KGLoraConfigError(f"`{name}` should be in [0, 1), got {value!r}.")
        if not 0.0 < self.relation_holdout < 1.0:
            raise KGLoraConfigError(f"`relation_holdout` should be in (0, 1), got {self.relation_holdout!r}.")
        if self.memory_positions not in ("none", "prefix"):
            raise KGLoraConfigError(f"`memory_positions` should be 'none' or 'prefix', got {self.memory_positions!r}.")
        if not 0.0 <= self.memory_gate_opening < 1.0:
            raise KGLoraConfigError(f"`memory_gate_opening` should be in [0, 1), got {self.memory_gate_opening!r}.")
        if self.memory_encoder not in ("base", "adapter", "trained", "projections"):
            raise KGLoraConfigError(
                "`memory_encoder` should be 'base', 'adapter', 'trained' or 'projections', "
                f"got {self.memory_encoder!r}."
            )
        if self.memory_softmax not in ("own", "shared", "inline"):
            raise KGLoraConfigError(
                f"`memory_softmax` should be 'own', 'shared' or 'inline', got {self.memory_softmax!r}."
            )
        if self.memory_softmax == "inline" and self.memory_gate_opening == 0:
            raise KGLoraConfigError(
                "`memory_softmax='inline'` makes each gate a bias log(opening) of its slots' scores, and an opening "
                "of 0 is a bias of -inf that no gradient opens; set memory_gate_opening above 0 (e.g. 0.99)."
            )
        if not self.memory_gate_scale > 0:
            raise KGLoraConfigError(f"`memory_gate_scale` should be positive, got {self.memory_gate_scale!r}.")
        if not self.relation_loss_weight >= 0:
            raise KGLoraConfigError(
                f"`relation_loss_weight` should be non-negative, got {self.relation_loss_weight!r}."
            )
        if self.knowledge_mode not in KNOWLEDGE_MODES:
            raise KGLoraConfigError(
                f"`knowledge_mode` should be one of {KNOWLEDGE_MODES}, got {self.knowledge_mode!r}."
            )
        refused = MODES[self.knowledge_mode].check_config(self)
        if refused is not None:
            raise KGLoraConfigError(refused)
        if self.node_features not in NODE_FEATURES:
            raise KGLoraConfigError(f"`node_features` should be one of {NODE_FEATURES}, got {self.node_features!r}.")
        if self.num_bases is not None and self.num_blocks is not None:
            raise KGLoraConfigError(
                "Set at most one of `num_bases` and `num_blocks`; for block decomposition pass `num_bases=None` "
                f"(got num_bases={self.num_bases}, num_blocks={self.num_blocks})."
            )
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)

    def to_lora_config(self, target_modules: list[str] | str, fan_in_fan_out: bool = False) -> LoraConfig:
        """The plain peft :class:`~peft.LoraConfig` of the LoRA part."""
        return LoraConfig(
            fan_in_fan_out=fan_in_fan_out,
            r=self.r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=target_modules,
            modules_to_save=self.modules_to_save,
            bias="none",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], strict: bool = False) -> KGLoraConfig:
        """Build from a saved dict, checking types; unknown keys (from a newer kgpeft) are ignored with a warning.

        With ``strict``, an unknown key is refused instead, naming the closest known key. The
        retrieval settings older versions saved (:data:`LEGACY_KEYS`) are dropped silently.
        """
        values = {k: v for k, v in values.items() if k not in LEGACY_KEYS}
        if not strict:
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                warnings.warn(
                    f"Ignoring unknown KGLoraConfig keys {unknown} (written by a newer kgpeft?).", stacklevel=2
                )
            values = {k: v for k, v in values.items() if k in known}
        return dataclass_from_dict(cls, values, "adapter config", KGLoraConfigError)
