"""`JobConfig`: one YAML file from a base model, a KG and a task to the numbers.

A job config names a base model, a knowledge graph and a task, and holds the adapter
(:class:`~kgpeft.tuners.KGLoraConfig`), retrieval (:class:`~kgpeft.retrieval.RetrievalConfig`),
fact selection (:class:`~kgpeft.selection.FactScorerConfig`) and training
(:class:`~kgpeft.training.config.TrainingConfig`) settings in sections of the same names, the
variants to train side by side (:class:`Variant`) and the knowledge controls to evaluate them
under::

    model: SmolLM2-135M-Instruct     # a packaged model, or a local Hugging Face folder
    kg: wordnet                      # a dataset name, a KG folder or file, or {triples: FILE, labels: FILE}
    task: hypernym_qa                # a registered task, or a JSON-lines file of TaskExample rows
    adapter: {r: 8, knowledge_mode: memory}
    retrieval: {max_nodes: 32, num_facts: 2, memory_facts: 2}
    selection: {max_steps: 200}      # train a fact scorer: graph-selected facts
    training: {output_dir: runs/hqa, max_steps: 120, learning_rate: 0.001}
    variants:
      - {name: lora+facts, adapter: lora, facts: prior}
      - {name: kg-lora}
    controls: [correct, shuffled, none]

Every key is checked: an unknown key or a value of the wrong type is an error naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgpeft.configuration import ConfigError, check_field_types, dataclass_from_dict, is_int, read_yaml
from kgpeft.data import CONTROLS
from kgpeft.datasets import KGSource
from kgpeft.kge.distillation import DistillationConfig
from kgpeft.pipeline.variants import VARIANT_KINDS, VariantKind
from kgpeft.retrieval.config import RetrievalConfig
from kgpeft.selection import TRAINING_MODES, FactScorerConfig
from kgpeft.tasks.registry import TASKS
from kgpeft.tasks.types import TASK_TYPES, TaskType, UnknownTaskTypeError, get_task_type
from kgpeft.training.config import TrainingConfig
from kgpeft.tuners.config import KGLoraConfig
from kgpeft.utils import check_name

QUANTIZATIONS = ("none", "4bit", "8bit")
#: The keys of a `kg:` mapping that a job config may hold by mistake at its top level (`labels` beside `kg`).
KG_SOURCE_KEYS = ("triples", "labels", "columns", "delimiter", "header")
FACT_SOURCES = ("none", "prior", "selected")


class JobConfigError(ConfigError):
    """A job config holds an unknown key, a wrongly typed value, or a task that cannot be read."""


@dataclass
class Variant:
    """One model a job trains and evaluates, beside the others, on the same data, steps and seed."""

    name: str = field(
        default="kg-lora",
        metadata={"help": "Name in the results table and of its folder in `training.output_dir` (a file name)."},
    )
    adapter: str = field(
        default="kg-lora",
        metadata={
            "help": f"One of {tuple(VARIANT_KINDS)}: "
            + ", ".join(f"`{kind.name}` ({kind.help})" for kind in VARIANT_KINDS.values())
            + "."
        },
    )
    facts: str = field(
        default="none",
        metadata={
            "help": f"One of {FACT_SOURCES}: facts written into the prompt, `retrieval.num_facts` of them: `prior` "
            "(those touching a linked entity first) or `selected` (ranked by the trained fact scorer)."
        },
    )
    num_facts: int | None = field(
        default=None, metadata={"help": "Facts in the prompt for this variant (default: `retrieval.num_facts`)."}
    )
    knowledge: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "KGLoraConfig settings that replace the job's for this variant (e.g. knowledge_mode)."},
    )
    scorer_training: str | None = field(
        default=None,
        metadata={
            "help": f"How a `memory` variant's fact scorer trains, one of {TRAINING_MODES} (see `selection.training`, "
            "which it replaces for this variant)."
        },
    )
    knowledge_dropout: float = field(
        default=0.0,
        metadata={
            "help": "Share of training examples given no knowledge (no subgraph, links, facts or memory), so the "
            "model also learns to answer without its KG; evaluation is unchanged."
        },
    )

    def __post_init__(self) -> None:
        check_field_types(self, JobConfigError)
        check_name(self.name, "`name`", JobConfigError)  # the variant's folder in `training.output_dir`
        if self.adapter not in VARIANT_KINDS:
            raise JobConfigError(f"`adapter` should be one of {tuple(VARIANT_KINDS)}, got {self.adapter!r}.")
        if self.facts not in FACT_SOURCES:
            raise JobConfigError(f"`facts` should be one of {FACT_SOURCES}, got {self.facts!r}.")
        if self.num_facts is not None and (not is_int(self.num_facts) or self.num_facts <= 0 or self.facts == "none"):
            raise JobConfigError(f"`num_facts` should be a positive integer with `facts` set, got {self.num_facts!r}.")
        if self.knowledge and not self.kind.reads_knowledge:
            raise JobConfigError(f"`knowledge` overrides a KG-LoRA adapter; variant {self.name!r} has none.")
        if self.scorer_training is not None and self.scorer_training not in TRAINING_MODES:
            raise JobConfigError(f"`scorer_training` should be one of {TRAINING_MODES}, got {self.scorer_training!r}.")
        if not 0 <= self.knowledge_dropout < 1:
            raise JobConfigError(f"`knowledge_dropout` should be in [0, 1), got {self.knowledge_dropout!r}.")
        if self.knowledge_dropout and not self.uses_knowledge:
            raise JobConfigError(f"`knowledge_dropout` drops knowledge; variant {self.name!r} reads none.")

    @property
    def kind(self) -> VariantKind:
        """What ``adapter`` names: how the variant's model is built and loaded, and whether it reads the KG."""
        return VARIANT_KINDS[self.adapter]

    @property
    def uses_knowledge(self) -> bool:
        """Whether the variant reads the KG: facts in its prompt or a KG-LoRA adapter."""
        return self.facts != "none" or self.kind.reads_knowledge


@dataclass
class JobConfig:
    """A training / evaluation job."""

    model: str = field(metadata={"help": "A packaged model name (kgpeft.pretrained) or a local HF folder."})
    kg: str | KGSource = field(
        default="wordnet",
        metadata={
            "help": "Dataset name, saved KG folder, PyKEEN split folder or triples file; or a mapping (KGSource: "
            "triples, labels, format, name, columns, header, delimiter, options) naming the files."
        },
    )
    task: str = field(
        default="hypernym_qa",
        metadata={"help": f"One of {tuple(TASKS)}, or a .jsonl file of rows (text, answer | label, split)."},
    )
    task_type: str = field(
        default="causal_lm",
        metadata={"help": ", ".join(f"{t.name} ({t.help})" for t in TASK_TYPES.values()) + "."},
    )
    num_labels: int | None = field(default=None, metadata={"help": "Classes, for classification."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Sample at most this many."})
    max_eval_examples: int | None = field(default=None, metadata={"help": "Sample at most this many."})
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Most tokens per example (prompt, facts as text and answer); a longer prompt loses its start "
            "(counted and reported). Unset: derived from the job's rows (training rows with their answers, "
            "evaluation prompts) with their longest facts as text (the longest, rounded up to a multiple of 8, at "
            "most the model's positions)."
        },
    )
    max_new_tokens: int = field(default=16, metadata={"help": "Generated tokens at evaluation."})
    seed: int = field(default=0, metadata={"help": "Sampling and retrieval seed."})
    quantization: str = field(
        default="none",
        metadata={
            "help": "Load the frozen base model quantised with bitsandbytes (needs a CUDA GPU and "
            "`pip install bitsandbytes`): `4bit` (NF4, bfloat16 compute, as QLoRA), `8bit`, or `none`."
        },
    )
    adapter: KGLoraConfig = field(default_factory=KGLoraConfig, metadata={"help": "KGLoraConfig settings."})
    retrieval: RetrievalConfig = field(
        default_factory=RetrievalConfig,
        metadata={"help": "RetrievalConfig settings: fan-out, node cap, link candidates, facts written as text."},
    )
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"help": "TrainingConfig settings."})
    selection: FactScorerConfig | None = field(
        default=None,
        metadata={
            "help": "Train a fact scorer (FactScorerConfig) on the training answers and rank each example's facts "
            "with it: the `selected` facts of variants, and the facts of a `memory` adapter; none: prior order."
        },
    )
    variants: list[Variant] = field(
        default_factory=lambda: [Variant()],
        metadata={"help": "The models to train and compare (Variant: name, adapter, facts, knowledge)."},
    )
    controls: list[str] = field(
        default_factory=lambda: ["correct"],
        metadata={
            "help": f"The controls: the knowledge each variant that reads the KG is evaluated with, from "
            f"{CONTROLS}: its "
            "own, another example's (shuffled), none. Reliance = score(correct) - score(shuffled)."
        },
    )
    distillation: DistillationConfig | None = field(
        default=None,
        metadata={
            "help": "Knowledge distillation from a KGE teacher (DistillationConfig: teacher, candidates, "
            "num_candidates, temperature, weight, relations); none: off."
        },
    )

    def __post_init__(self) -> None:
        check_field_types(self, JobConfigError)
        try:
            get_task_type(self.task_type)
        except UnknownTaskTypeError as e:
            raise JobConfigError(str(e)) from None
        for name in ("max_length", "max_new_tokens", "num_labels", "max_train_examples", "max_eval_examples"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value <= 0):
                raise JobConfigError(f"`{name}` should be a positive integer, got {value!r}.")
        if not 0 <= self.seed < 2**32:
            raise JobConfigError(f"`seed` should be in [0, 2**32), got {self.seed!r}.")
        if self.quantization not in QUANTIZATIONS:
            raise JobConfigError(f"`quantization` should be one of {QUANTIZATIONS}, got {self.quantization!r}.")
        if self.training.save_best and self.training.eval_steps is None:
            raise JobConfigError(
                "`training.save_best` keeps the adapter that scores best on the valid split every `eval_steps`; "
                "set `training.eval_steps`."
            )
        unknown = [c for c in self.controls if c not in CONTROLS]
        if unknown or not self.controls:
            raise JobConfigError(f"`controls` should be a non-empty list from {CONTROLS}, got {self.controls!r}.")
        names = [v.name for v in self.variants]
        if not names or len(set(names)) != len(names):
            raise JobConfigError(f"`variants` should be a non-empty list with distinct names, got {names}.")
        for variant in self.variants:
            self.variant_adapter(variant)  # each variant's KG-LoRA settings are valid
        memory = [v.name for v in self.variants if v.kind.reads_fact_memory(self, v)]
        if memory and self.retrieval.memory_facts == 0:
            raise JobConfigError(
                f"variants {memory} read facts as memory (`adapter.knowledge_mode: memory`, the default, or the "
                "variant's `knowledge`); set `retrieval.memory_facts` > 0, or another `knowledge_mode`."
            )
        facts = [v.name for v in self.variants if v.facts != "none" and v.num_facts is None]
        if facts and self.retrieval.num_facts == 0:
            raise JobConfigError(f"variants {facts} write facts into the prompt; set `retrieval.num_facts` > 0.")
        selected = [v.name for v in self.variants if v.facts == "selected"]
        if selected and self.selection is None:
            raise JobConfigError(f"variants {selected} use `facts: selected`; add a `selection:` section.")
        self._check_scorer_training()
        if self.task_kind.head_modules and self.adapter.modules_to_save is None:  # the new head trains
            self.adapter = dataclasses.replace(self.adapter, modules_to_save=list(self.task_kind.head_modules))

    def _check_scorer_training(self) -> None:
        """A variant's own ``scorer_training`` needs a ``selection`` section and a model that reads memory."""
        for variant in self.variants:
            if variant.scorer_training is None:
                continue
            if self.selection is None:
                raise JobConfigError(f"variants: {variant.name}: `scorer_training` needs a `selection:` section.")
            if not variant.kind.reads_fact_memory(self, variant):
                raise JobConfigError(
                    f"variants: {variant.name}: `scorer_training` trains the fact scorer with a `memory` adapter; "
                    "this variant reads no memory (set `knowledge: {knowledge_mode: memory}`, or drop the key)."
                )

    def scorer_training(self, variant: Variant) -> str:
        """How ``variant``'s fact scorer trains: its ``scorer_training`` or ``selection.training`` for a variant
        reading memory with a ``selection`` section, else ``staged`` (prompt facts come from the staged scorer)."""
        if self.selection is None or not variant.kind.reads_fact_memory(self, variant):
            return "staged"
        return variant.scorer_training or self.selection.training

    def needs_staged_scorer(self) -> bool:
        """Whether the job trains the staged scorer: it has a ``selection`` section and not every variant that
        reads selected facts trains a fresh scorer of its own (``joint``)."""
        users = [v for v in self.variants if v.facts == "selected" or v.kind.reads_fact_memory(self, v)]
        return self.selection is not None and not (
            users and all(v.facts != "selected" and self.scorer_training(v) == "joint" for v in users)
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | None = None) -> JobConfig:
        """Build from a plain dict; the ``adapter``, ``training`` and ``distillation`` sections are checked too.

        Raises:
            JobConfigError: an unknown key, a wrong type or an invalid value, named with its section (and
                ``source``, the file it came from).
        """
        try:
            misplaced = next((k for k in KG_SOURCE_KEYS if isinstance(values, dict) and k in values), None)
            if misplaced is not None:
                raise JobConfigError(
                    f"`{misplaced}` is not a job config key: it describes the KG's files; write it under `kg:`, "
                    f"as in `kg: {{triples: FILE, labels: FILE}}`."
                )
            return dataclass_from_dict(cls, values, "job config", JobConfigError)
        except JobConfigError as e:
            if source is None:
                raise
            raise JobConfigError(f"{source}: {e}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> JobConfig:
        return cls.from_dict(read_yaml(path), source=str(path))

    @property
    def task_metric(self) -> str:
        """The ``compute_metrics`` task its generated outputs are scored with (a task file's: qa)."""
        return TASKS[self.task].metric if self.task in TASKS else "qa"

    @property
    def task_kind(self) -> TaskType:
        """What ``task_type`` names: the model class, the rows, the evaluation and the headline metrics."""
        return TASK_TYPES[self.task_type]

    def variant_facts(self, variant: Variant) -> int:
        """How many facts ``variant`` writes into the prompt."""
        if variant.facts == "none":
            return 0
        return variant.num_facts if variant.num_facts is not None else self.retrieval.num_facts

    def variant_adapter(self, variant: Variant) -> KGLoraConfig:
        """The KG-LoRA settings of ``variant``: the job's ``adapter`` with the variant's ``knowledge``."""
        if not variant.knowledge:
            return self.adapter
        try:
            return dataclass_from_dict(
                KGLoraConfig,
                {**self.adapter.to_dict(), **variant.knowledge},
                f"variant {variant.name!r}",
                JobConfigError,
            )
        except ConfigError as e:
            raise JobConfigError(f"variants: {variant.name}: {e}") from None
