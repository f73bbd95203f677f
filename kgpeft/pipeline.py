"""What ``kgpeft train | evaluate | predict`` run: a job built from one YAML config.

A job config names a base model, a knowledge graph and a task, and holds the adapter
(:class:`~kgpeft.tuners.KGLoraConfig`) , retrieval (:class:`~kgpeft.retrieval.RetrievalConfig`) and training
(:class:`~kgpeft.training.config.TrainingConfig`) settings in sections of the same names::

    model: SmolLM2-135M-Instruct     # a packaged model, or a local Hugging Face folder
    kg: wordnet                      # a dataset name, a saved KG folder or a triples file
    task: hypernym_qa                # a WordNet task, or a JSON-lines file of TaskExample rows
    adapter: {r: 8, knowledge_mode: token}
    retrieval: {num_neighbors: [16, 8], max_nodes: 32, num_facts: 0}
    training: {output_dir: runs/hqa, max_steps: 200, learning_rate: 0.001}

Every key is checked: an unknown key or a value of the wrong type is an error naming it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kgpeft.configuration import ConfigError, dataclass_from_dict, is_int, read_yaml
from kgpeft.graph import KnowledgeGraph
from kgpeft.kge.distillation import DistillationConfig
from kgpeft.retrieval.config import RetrievalConfig
from kgpeft.tasks.registry import TASKS, get_task
from kgpeft.training.config import TrainingConfig
from kgpeft.tuners.config import KGLoraConfig

TASK_TYPES = ("causal_lm", "multiple_choice", "classification", "seq2seq")


class JobConfigError(ConfigError):
    """A job config holds an unknown key, a wrongly typed value, or a task that cannot be read."""


@dataclass
class JobConfig:
    """A training / evaluation job."""

    model: str = field(metadata={"help": "A packaged model name (kgpeft.pretrained) or a local HF folder."})
    kg: str = field(default="wordnet", metadata={"help": "Dataset name, saved KG folder or triples file."})
    task: str = field(
        default="hypernym_qa",
        metadata={"help": f"One of {tuple(TASKS)}, or a .jsonl file of rows (text, answer | label, split)."},
    )
    task_type: str = field(
        default="causal_lm",
        metadata={
            "help": "causal_lm (generation, scored by exact match and F1, or ROUGE for glosses), multiple_choice "
            "(trained as causal_lm on the gold answer, scored by the options' log-likelihood), classification "
            "(accuracy, macro and micro F1: entity typing for IE) or seq2seq."
        },
    )
    num_labels: int | None = field(default=None, metadata={"help": "Classes, for classification."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Sample at most this many."})
    max_eval_examples: int | None = field(default=None, metadata={"help": "Sample at most this many."})
    max_length: int = field(default=64, metadata={"help": "Most tokens per example."})
    max_new_tokens: int = field(default=16, metadata={"help": "Generated tokens at evaluation."})
    seed: int = field(default=0, metadata={"help": "Sampling and retrieval seed."})
    adapter: KGLoraConfig = field(default_factory=KGLoraConfig, metadata={"help": "KGLoraConfig settings."})
    retrieval: RetrievalConfig = field(
        default_factory=RetrievalConfig,
        metadata={"help": "RetrievalConfig settings: fan-out, node cap, link candidates, facts written as text."},
    )
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"help": "TrainingConfig settings."})
    distillation: DistillationConfig | None = field(
        default=None,
        metadata={
            "help": "Knowledge distillation from a KGE teacher (DistillationConfig: teacher, candidates, "
            "num_candidates, temperature, weight, relations); none: off."
        },
    )

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise JobConfigError(f"`task_type` should be one of {TASK_TYPES}, got {self.task_type!r}.")
        for name in ("max_length", "max_new_tokens", "num_labels", "max_train_examples", "max_eval_examples"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value <= 0):
                raise JobConfigError(f"`{name}` should be a positive integer, got {value!r}.")
        if self.task_type == "classification" and self.adapter.modules_to_save is None:
            # The new classification head trains (peft's names for it).
            self.adapter = dataclasses.replace(self.adapter, modules_to_save=["classifier", "score"])

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | None = None) -> JobConfig:
        """Build from a plain dict; the ``adapter``, ``training`` and ``distillation`` sections are checked too.

        Raises:
            JobConfigError: an unknown key, a wrong type or an invalid value, named with its section (and
                ``source``, the file it came from).
        """
        try:
            return dataclass_from_dict(cls, values, "job config", JobConfigError)
        except JobConfigError as e:
            if source is None:
                raise
            raise JobConfigError(f"{source}: {e}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> JobConfig:
        return cls.from_dict(read_yaml(path), source=str(path))

    def adapter_config(self) -> KGLoraConfig:
        return self.adapter

    def training_config(self) -> TrainingConfig:
        return self.training

    def retrieval_config(self) -> RetrievalConfig:
        return self.retrieval

    def distillation_config(self) -> DistillationConfig | None:
        return self.distillation


def load_kg(name_or_path: str) -> KnowledgeGraph:
    """A KG from a dataset name, a saved KG folder, a PyKEEN-style split folder or a triples file."""
    from kgpeft.datasets import DATASETS, load
    from kgpeft.graph import read_pykeen_folder, read_triples

    path = Path(name_or_path)
    if name_or_path.lower() in DATASETS:
        return load(name_or_path)
    if (path / "kg.json").is_file():
        return KnowledgeGraph.load(path)
    if path.is_dir():
        return read_pykeen_folder(path)
    return read_triples(path)


def load_examples(config: JobConfig, kg: KnowledgeGraph) -> dict[str, list]:
    """The task's examples per split."""
    import random

    from kgpeft.training.data import as_example

    if config.task in TASKS:
        splits = get_task(config.task).build(kg, seed=config.seed)
    else:
        path = Path(config.task)
        if not path.is_file():
            raise JobConfigError(f"task: {config.task!r} is neither a known task ({', '.join(TASKS)}) nor a file.")
        splits = {"train": [], "valid": [], "test": []}
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise JobConfigError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                example = as_example(row, lineno)
                if example.split not in splits:
                    raise JobConfigError(f"{path}:{lineno}: `split` should be one of {list(splits)}.")
                splits[example.split].append(example)
    rng = random.Random(config.seed)
    for name, limit in [
        ("train", config.max_train_examples),
        ("valid", config.max_eval_examples),
        ("test", config.max_eval_examples),
    ]:
        if limit is not None and len(splits[name]) > limit:
            splits[name] = rng.sample(splits[name], limit)
    return splits


def load_base_model(config: JobConfig):
    """``(model, tokenizer)`` for the job's base model, offline."""
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from kgpeft.pretrained import PACKAGED_MODELS, packaged_model_path

    auto = {
        "causal_lm": AutoModelForCausalLM,
        "multiple_choice": AutoModelForCausalLM,
        "seq2seq": AutoModelForSeq2SeqLM,
        "classification": AutoModelForSequenceClassification,
    }[config.task_type]
    path = packaged_model_path(config.model) if config.model in PACKAGED_MODELS else Path(config.model)
    if not path.is_dir():
        raise JobConfigError(f"model: {config.model!r} is neither a packaged model nor a local folder.")
    kwargs = {"num_labels": config.num_labels} if config.task_type == "classification" else {}
    torch.manual_seed(config.seed)  # a classification head starts from the same weights every time
    model = auto.from_pretrained(path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def datasets_for(config: JobConfig, examples: list, tokenizer, kg: KnowledgeGraph, with_target: bool, teacher=None):
    from kgpeft.training import KnowledgeDataset

    return KnowledgeDataset(
        examples,
        tokenizer,
        kg,
        task="causal_lm" if config.task_type == "multiple_choice" else config.task_type,
        retrieval=config.retrieval_config(),
        max_length=config.max_length,
        with_target=with_target,
        seed=config.seed,
        teacher=teacher,
    )


def evaluate_job(model, config: JobConfig, examples: list, tokenizer, kg: KnowledgeGraph) -> dict[str, float]:
    """The task's metrics on ``examples``."""
    from kgpeft.evaluation import compute_metrics
    from kgpeft.tasks import first_line, generate_texts, predict_classes, target_log_likelihoods

    if config.task_type == "classification":
        dataset = datasets_for(config, examples, tokenizer, kg, with_target=True)
        predictions = predict_classes(model, dataset).tolist()
        references = [e.label for e in examples]
        ie = compute_metrics("ie", predictions, references)
        return {**compute_metrics("classification", predictions, references), "micro_f1": ie["micro_f1"]}
    if config.task_type == "multiple_choice":
        if any(not e.choices or e.label is None for e in examples):
            raise JobConfigError("multiple_choice: every example needs `choices` and the gold `label` index.")
        options = [dataclasses.replace(e, answer=c) for e in examples for c in e.choices]
        scores = target_log_likelihoods(model, datasets_for(config, options, tokenizer, kg, with_target=True))
        rows, start = [], 0
        for e in examples:
            rows.append(scores[start : start + len(e.choices)])
            start += len(e.choices)
        width = max(len(r) for r in rows)
        padded = torch.stack([torch.nn.functional.pad(r, (0, width - len(r)), value=-float("inf")) for r in rows])
        return compute_metrics("multiple_choice", padded, [e.label for e in examples])
    dataset = datasets_for(config, examples, tokenizer, kg, with_target=False)
    predictions = [first_line(p) for p in generate_texts(model, dataset, max_new_tokens=config.max_new_tokens)]
    metric = get_task(config.task).metric if config.task in TASKS else "qa"
    references = [list(e.answers) for e in examples]
    return compute_metrics(metric, predictions, references)


def build_model(config: JobConfig, kg: KnowledgeGraph, adapter_dir: str | Path | None = None):
    """``(model, tokenizer)``: the base model with a fresh adapter, or the one saved in ``adapter_dir``."""
    from kgpeft.model import KGPeftModel, get_kg_peft_model

    base, tokenizer = load_base_model(config)
    if adapter_dir is None:
        return get_kg_peft_model(base, config.adapter_config(), kg, tokenizer), tokenizer
    return KGPeftModel.from_pretrained(base, adapter_dir, kg, tokenizer=tokenizer), tokenizer


def train_job(config: JobConfig) -> dict[str, float]:
    """Train the job's adapter, save it, and return its metrics on the test split."""
    from kgpeft.training import KnowledgeCollator
    from kgpeft.training.trainer import train

    kg = load_kg(config.kg)
    splits = load_examples(config, kg)
    model, tokenizer = build_model(config, kg)
    model.print_trainable_parameters()
    distillation = config.distillation_config()
    teacher = distillation.build_teacher(kg, config.task_type == "multiple_choice") if distillation else None
    train_ds = datasets_for(config, splits["train"], tokenizer, kg, with_target=True, teacher=teacher)
    valid_ds = datasets_for(config, splits["valid"], tokenizer, kg, with_target=True) if splits["valid"] else None
    training = config.training_config()
    train(model, train_ds, KnowledgeCollator(tokenizer.pad_token_id), training, eval_dataset=valid_ds)
    metrics = evaluate_job(model, config, splits["test"], tokenizer, kg) if splits["test"] else {}
    print(json.dumps({"test": metrics}, indent=2))
    return metrics
