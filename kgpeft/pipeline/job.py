"""The one road from a job config to numbers: prepare, train, evaluate, report.

:func:`prepare` loads the KG, the task's examples and the base model once, and builds each
split's dataset once (linking, retrieval, tokenisation); with a ``selection`` section it
also trains the fact scorer. :func:`train_variant` and :func:`evaluate_variant` train and
score one :class:`~kgpeft.pipeline.config.Variant` under one knowledge control;
:func:`run` does every variant and control of the config and reports. ``kgpeft train``,
``kgpeft demo`` and the benchmarks all come through here.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import random
import re
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kgpeft.configuration import read_json
from kgpeft.data import KnowledgeDataset
from kgpeft.errors import KGFileNotFoundError
from kgpeft.graph import KnowledgeGraph
from kgpeft.pipeline.config import JobConfig, JobConfigError, Variant
from kgpeft.tasks.registry import TASKS, get_task
from kgpeft.training.checkpoints import hold_lock
from kgpeft.utils import ensure_writable, quiet_checkpointing_deprecation, short_repr


def load_kg(name_or_path: str) -> KnowledgeGraph:
    """A KG from a dataset name, a saved KG folder, a PyKEEN-style split folder, an N-Triples
    file (``.nt``) or a triples file (TSV, CSV).

    Raises:
        KGFileNotFoundError: ``name_or_path`` is neither a dataset nor a file or folder; the message
            lists the datasets and the closest one.
    """
    from kgpeft.datasets import DATASETS, load
    from kgpeft.graph import read_ntriples, read_pykeen_folder, read_triples

    path = Path(name_or_path)
    if name_or_path.lower() in DATASETS:
        return load(name_or_path)
    if (path / "kg.json").is_file():
        return KnowledgeGraph.load(path)
    if path.is_dir():
        return read_pykeen_folder(path)
    if not path.exists():
        close = difflib.get_close_matches(name_or_path.lower(), DATASETS, n=1)
        raise KGFileNotFoundError(
            f"KG {name_or_path!r} is neither a file nor a dataset (datasets: {', '.join(DATASETS)})"
            + (f"; did you mean {close[0]!r}?" if close else ".")
        )
    if path.suffix.lower() == ".nt":
        return read_ntriples(path)
    return read_triples(path)


def load_examples(config: JobConfig, kg: KnowledgeGraph | None = None) -> dict[str, list]:
    """The task's examples per split; a split over its limit keeps a seeded sample (shuffled, then cut).

    ``kg`` builds a registered task; a task file is read without it.
    """
    if config.task in TASKS:
        if kg is None:
            raise ValueError(f"the task {config.task!r} is built from the KG: pass `kg`.")
        splits = get_task(config.task).build(kg, seed=config.seed)
    else:
        splits = read_task_file(config.task)
    limits = {"train": config.max_train_examples, "valid": config.max_eval_examples, "test": config.max_eval_examples}
    for name, limit in limits.items():
        if limit is not None and len(splits[name]) > limit:
            examples = list(splits[name])
            random.Random(config.seed).shuffle(examples)
            splits[name] = examples[:limit]
    return splits


#: The longest line of a task file, in bytes: each row is read whole, and a file without line
#: breaks (a binary file given as `task`) must not be.
MAX_ROW_BYTES = 1 << 26


def read_task_file(task: str) -> dict[str, list]:
    """The examples of a JSON-lines task file per split, every row checked.

    Raises:
        JobConfigError: not a file, or a line that is longer than :data:`MAX_ROW_BYTES`, not UTF-8, not
            JSON or not a valid row, named by ``file:line``.
    """
    from kgpeft.data import DataError, as_example

    path = Path(task)
    if not path.is_file():
        raise JobConfigError(f"task: {task!r} is neither a known task ({', '.join(TASKS)}) nor a file.")
    splits = {"train": [], "valid": [], "test": []}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(MAX_ROW_BYTES + 1), b""), start=1):
            if len(raw) > MAX_ROW_BYTES:
                raise JobConfigError(
                    f"{path}:{lineno}: a line over {MAX_ROW_BYTES:,} bytes; each line is one JSON row."
                )
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise JobConfigError(
                    f"{path}:{lineno}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1}); save it as UTF-8."
                ) from None
            if not line.strip():
                continue
            try:
                example = as_example(json.loads(line), lineno)
            except DataError as e:
                raise JobConfigError(f"{path}:{lineno}: {e}") from None
            except json.JSONDecodeError as e:
                raise JobConfigError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            except ValueError as e:  # an int of more than 4300 digits
                raise JobConfigError(f"{path}:{lineno}: not valid JSON ({str(e).split(':')[0]})") from None
            except RecursionError:
                raise JobConfigError(f"{path}:{lineno}: not valid JSON (nested too deeply)") from None
            if example.split not in splits:
                raise JobConfigError(
                    f"{path}:{lineno}: `split` should be one of {list(splits)}, got {short_repr(example.split)}."
                )
            splits[example.split].append(example)
    return splits


# Files one of which a Hugging Face model folder's tokenizer is read from.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
)


def check_model_folder(config: JobConfig) -> Path | None:
    """The job's local model folder, checked before anything loads (``None`` for a packaged model).

    It must hold a ``config.json`` (a JSON object whose ``model_type`` transformers knows), tokenizer
    files, and only whole safetensors files (their headers are read: a truncated file is found here).

    Raises:
        JobConfigError: ``model`` names neither a packaged model nor a Hugging Face model folder, or one
            of its files is missing or damaged; the message names the file (and the line or key).
    """
    from safetensors import SafetensorError, safe_open
    from transformers import CONFIG_MAPPING

    from kgpeft.pretrained import PACKAGED_MODELS

    if config.model in PACKAGED_MODELS:
        return None
    path = Path(config.model)
    if not path.is_dir():
        raise JobConfigError(
            f"model: {config.model!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) nor a local folder."
        )
    if not (path / "config.json").is_file():
        raise JobConfigError(
            f"model: {path} has no config.json; expected a Hugging Face model folder (written by save_pretrained)."
        )
    file = path / "config.json"
    values = read_json(file, JobConfigError, "model: ")
    if not isinstance(values, dict):
        raise JobConfigError(f"model: {file}: expected a JSON object of settings, got a JSON {type(values).__name__}.")
    model_type = values.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        got = "missing" if model_type is None else repr(model_type)
        raise JobConfigError(
            f"model: `model_type` in {file} is {got}, not a model type this transformers knows (e.g. 'llama', "
            "'gpt2', 'bert'); correct it, or upgrade transformers for a newer architecture."
        )
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise JobConfigError(
            f"model: {path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the model's tokenizer there "
            "too (`tokenizer.save_pretrained(folder)`)."
        )
    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except (SafetensorError, OSError) as e:
            raise JobConfigError(
                f"model: {weights} is not a whole safetensors file (truncated or corrupt?): {e}; copy it again."
            ) from None
    return path


def quantized_loading(quantization: str) -> dict:
    """``from_pretrained`` arguments that load a base model quantised by bitsandbytes on the current GPU.

    ``"4bit"`` is QLoRA's: NF4 weights, double quantisation, bfloat16 compute.

    Raises:
        JobConfigError: bitsandbytes is not installed, or there is no CUDA GPU.
    """
    import importlib.util

    from transformers import BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise JobConfigError(f"`quantization: {quantization}` needs bitsandbytes: `pip install bitsandbytes`.")
    if not torch.cuda.is_available():
        raise JobConfigError(f"`quantization: {quantization}` needs a CUDA GPU (bitsandbytes); none is available.")
    if quantization == "4bit":
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    return {"quantization_config": config, "device_map": {"": torch.cuda.current_device()}}


def load_base_model(config: JobConfig):
    """``(model, tokenizer)`` for the job's base model, offline."""
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from kgpeft.pretrained import packaged_model_path

    auto = {
        "causal_lm": AutoModelForCausalLM,
        "multiple_choice": AutoModelForCausalLM,
        "seq2seq": AutoModelForSeq2SeqLM,
        "classification": AutoModelForSequenceClassification,
    }[config.task_type]
    path = check_model_folder(config) or packaged_model_path(config.model)
    kwargs = {"num_labels": config.num_labels} if config.task_type == "classification" else {}
    if config.quantization != "none":
        kwargs.update(quantized_loading(config.quantization))
    # What check_model_folder cannot see (a damaged tokenizer file or shard index), named; the tokenizer first, as
    # it is quicker to load.
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise JobConfigError(f"model: cannot load the tokenizer in {path}: {e}") from None
    torch.manual_seed(config.seed)  # a classification head starts from the same weights every time
    try:
        model = auto.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise JobConfigError(f"model: cannot load the model in {path}: {e}") from None
    if config.quantization != "none":
        from peft import prepare_model_for_kbit_training

        # Norms in float32 and input gradients on; gradient checkpointing stays kgpeft's to turn on
        # (training.gradient_checkpointing), which keeps the knowledge context for recomputation.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


@dataclass
class Job:
    """What every variant of a job shares: the KG, the examples, the base model and the datasets.

    Build it with :func:`prepare`. Datasets are linked, retrieved and tokenised once per
    split; the facts, fact ranking and knowledge control of a variant derive from them.
    """

    config: JobConfig
    kg: KnowledgeGraph
    base: nn.Module
    tokenizer: Any
    splits: dict[str, list]
    scorer: nn.Module | None = None
    selection_report: dict[str, Any] | None = None
    _datasets: dict[tuple, KnowledgeDataset] = field(default_factory=dict, repr=False)
    _kg_lora_budget: int | None = field(default=None, repr=False)

    def kg_lora_budget(self) -> int:
        """Trainable parameters of the job's KG-LoRA adapter, the budget plain-LoRA variants match."""
        if self._kg_lora_budget is None:
            from kgpeft.model import get_kg_peft_model

            reference = get_kg_peft_model(copy.deepcopy(self.base), self.config.adapter, self.kg, self.tokenizer)
            self._kg_lora_budget, _ = reference.get_nb_trainable_parameters()
        return self._kg_lora_budget

    def _base_dataset(
        self, split: str, with_target: bool, examples: list | None = None, distill: bool = False
    ) -> KnowledgeDataset:
        key = (split, with_target, distill)
        if key in self._datasets and examples is None:
            return self._datasets[key]
        config = self.config
        teacher = None
        if distill:
            teacher = config.distillation.build_teacher(self.kg, config.task_type == "multiple_choice")
        dataset = KnowledgeDataset(
            self.splits[split] if examples is None else examples,
            self.tokenizer,
            self.kg,
            task="causal_lm" if config.task_type == "multiple_choice" else config.task_type,
            retrieval=dataclasses.replace(config.retrieval, num_facts=0, memory_facts=0),
            max_length=config.max_length,
            with_target=with_target,
            seed=config.seed,
            teacher=teacher,
        )
        if examples is None:
            self._datasets[key] = dataset
        return dataset

    def dataset(
        self,
        split: str,
        variant: Variant,
        *,
        with_target: bool,
        condition: str = "correct",
        examples: list | None = None,
    ) -> KnowledgeDataset:
        """``split``'s dataset as ``variant`` reads it, under a knowledge ``condition``.

        ``examples`` (optional) replaces the split's examples (e.g. multiple-choice options). A
        KG-LoRA variant's training data carries the KGE teacher's soft targets when the job has
        a ``distillation`` section. With a trained fact scorer, a variant's facts follow its
        ranking when they are ``selected`` or read as memory (then its prompt facts too). A
        variant's ``knowledge_dropout`` empties the knowledge of that share of its training examples.
        """
        distill = (
            self.config.distillation is not None and split == "train" and with_target and variant.adapter == "kg-lora"
        )
        data = self._base_dataset(split, with_target, examples, distill).with_knowledge(
            condition, seed=self.config.seed
        )
        memory = memory_facts(self.config, variant)
        if self.scorer is not None and (variant.facts == "selected" or memory):
            from kgpeft.selection import select_facts

            data = data.with_fact_ranking(select_facts(self.scorer, data, self.tokenizer, limit=None))
        num_facts = self.config.variant_facts(variant)
        if num_facts or memory:
            retrieval = dataclasses.replace(data.retrieval, num_facts=num_facts, memory_facts=memory)
            data = data.with_retrieval(retrieval)
        if variant.knowledge_dropout and split == "train" and with_target and condition == "correct":
            data = data.with_knowledge_dropout(variant.knowledge_dropout, seed=self.config.seed)
        return data


def memory_facts(config: JobConfig, variant: Variant) -> int:
    """How many facts ``variant`` reads as memory slots: ``retrieval.memory_facts`` for a memory adapter."""
    if variant.adapter != "kg-lora" or config.variant_adapter(variant).knowledge_mode != "memory":
        return 0
    return config.retrieval.memory_facts


#: Where a job keeps its trained fact scorer, inside ``training.output_dir``.
SCORER_FILE = "fact_scorer.safetensors"


def hold_output_dir(config: JobConfig) -> AbstractContextManager[None]:
    """Hold the job's ``training.output_dir`` inside the ``with`` block: no other job writes its files meanwhile.

    A job writes files its variants share (the fact scorer, ``results.json``), so the folder is
    locked (:func:`~kgpeft.training.checkpoints.hold_lock`) from before the first is written until
    the last is; each variant's folder is locked again by its training run. The folder is created
    (and checked to be writable) first.

    Raises:
        OutputPathError: the folder cannot be written, or another job holds it; the message
            names the lock file.
    """
    folder = ensure_writable(config.training.output_dir, "`training.output_dir`")
    return hold_lock(folder, "`training.output_dir`", "job")


def prepare(config: JobConfig, train_scorer: bool = True) -> Job:
    """Load the KG, the examples and the base model; with a ``selection`` section, the fact scorer.

    The scorer is trained on the training split and saved to ``output_dir/fact_scorer.safetensors``
    (``train_scorer=True``, holding the folder meanwhile: :func:`hold_output_dir`), or read back from
    there (``False``: evaluating a finished job).
    """
    # What is quick to check comes before what is slow to load: the model folder, a task file's rows.
    check_model_folder(config)
    _check_files(config)
    splits = None if config.task in TASKS else load_examples(config)
    _check_training_examples(config, splits, train_scorer)
    kg = load_kg(config.kg)
    if splits is None:
        splits = load_examples(config, kg)
        _check_training_examples(config, splits, train_scorer)
    base, tokenizer = load_base_model(config)
    job = Job(config, kg, base, tokenizer, splits)
    if config.selection is not None:
        from kgpeft import selection as fact_selection

        path = Path(config.training.output_dir) / SCORER_FILE
        if train_scorer:
            with hold_output_dir(config):  # held already inside `run`; here for a caller that prepares alone
                job.scorer = fact_selection.build_fact_scorer(
                    kg, tokenizer, base.get_input_embeddings(), config.selection
                )
                train = job._base_dataset("train", with_target=True)
                job.selection_report = fact_selection.train_fact_scorer(
                    job.scorer, train, tokenizer, config.selection, language_model=base
                )
                fact_selection.save_fact_scorer(job.scorer, config.selection, kg, path)
        else:
            job.scorer = fact_selection.load_fact_scorer(path, kg, tokenizer, base.get_input_embeddings())
    return job


def _check_files(config: JobConfig) -> None:
    """The KG embedding files the job reads exist (a KGE teacher, ``kge`` node features)."""
    files = {"distillation.teacher": config.distillation.teacher} if config.distillation else {}
    for variant in config.variants:
        adapter = config.variant_adapter(variant)
        if variant.adapter == "kg-lora" and adapter.node_features == "kge":
            files[f"variants: {variant.name}: `adapter.kge_path` (for `node_features: kge`)"] = adapter.kge_path
    for key, path in files.items():
        if path is None or not Path(path).is_file():
            raise JobConfigError(f"{key}: {path} is not a file of KG embeddings (written by `kgpeft kge train`).")


def _check_training_examples(config: JobConfig, splits: dict[str, list] | None, train: bool) -> None:
    if train and splits is not None and not splits["train"]:
        counts = ", ".join(f"{len(v)} {k}" for k, v in splits.items())
        raise JobConfigError(f"task: {config.task!r} has no training examples ({counts}); rows need `split: train`.")


def load_variant_model(job: Job, variant: Variant, adapter_dir: str | Path) -> nn.Module:
    """``variant``'s model with the adapter saved in ``adapter_dir`` (KG-LoRA or plain peft LoRA)."""
    from peft import PeftModel

    from kgpeft.model import KGPeftModel

    if variant.adapter == "none":
        return job.base
    base = copy.deepcopy(job.base)
    if variant.adapter == "lora":
        return PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    return KGPeftModel.from_pretrained(base, adapter_dir, job.kg, tokenizer=job.tokenizer)


def lora_rank_for_budget(base: nn.Module, targets: list[str] | str, trainable: int) -> int:
    """The plain-LoRA rank whose trainable parameters come closest to ``trainable``.

    ``targets`` are module-name suffixes, or a regex over full module names, as peft takes them.
    """

    def targeted(name: str) -> bool:
        if isinstance(targets, str):
            return re.fullmatch(targets, name) is not None
        return name.rsplit(".", 1)[-1] in targets

    per_rank = sum(
        m.in_features + m.out_features
        for name, m in base.named_modules()
        if isinstance(m, nn.Linear) and targeted(name)
    )
    return max(1, round(trainable / per_rank)) if per_rank else 1


def build_model(job: Job, variant: Variant) -> nn.Module:
    """A fresh model for ``variant`` on a copy of the base model (the base model itself for ``none``)."""
    from peft import LoraConfig, get_peft_model

    from kgpeft.model import get_kg_peft_model
    from kgpeft.tuners.targets import resolve_target_modules

    config = job.config
    if variant.adapter == "none":
        return job.base
    torch.manual_seed(config.seed)  # the same initial adapter whichever variants ran before
    adapter = config.variant_adapter(variant)
    if variant.adapter == "kg-lora":
        return get_kg_peft_model(copy.deepcopy(job.base), adapter, job.kg, job.tokenizer)
    targets = resolve_target_modules(job.base, adapter.target_modules)
    r = lora_rank_for_budget(job.base, targets, job.kg_lora_budget())
    torch.manual_seed(config.seed)
    lora = LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, modules_to_save=adapter.modules_to_save)
    with quiet_checkpointing_deprecation():
        return get_peft_model(copy.deepcopy(job.base), lora)


@dataclass
class TrainedVariant:
    """A variant's trained model and what its training cost."""

    variant: Variant
    model: nn.Module
    trainable: int
    seconds: float
    steps: int
    output_dir: Path | None


def train_variant(job: Job, variant: Variant) -> TrainedVariant:
    """Build and train ``variant`` with the job's training settings, in ``output_dir/<variant name>``."""
    from kgpeft.data import KnowledgeCollator
    from kgpeft.errors import KGFileNotFoundError
    from kgpeft.training.checkpoints import find_checkpoint
    from kgpeft.training.trainer import train

    model = build_model(job, variant)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if variant.adapter == "none":
        return TrainedVariant(variant, model, 0, 0.0, 0, None)
    model.print_trainable_parameters()
    output_dir = Path(job.config.training.output_dir) / variant.name
    resume = job.config.training.resume_from_checkpoint
    if resume == "latest":
        try:
            find_checkpoint(resume, output_dir)
        except KGFileNotFoundError:  # a resumed job whose variant had written no checkpoint yet
            print(f"{variant.name}: no checkpoint in {output_dir} to resume from; training from the start.")
            resume = None
    training = dataclasses.replace(job.config.training, output_dir=str(output_dir), resume_from_checkpoint=resume)
    train_ds = job.dataset("train", variant, with_target=True)
    valid_ds = job.dataset("valid", variant, with_target=True) if training.eval_steps and job.splits["valid"] else None
    collator = KnowledgeCollator(job.tokenizer.pad_token_id, with_knowledge=variant.adapter == "kg-lora")
    t0 = time.perf_counter()
    result = train(model, train_ds, collator, training, eval_dataset=valid_ds)
    return TrainedVariant(variant, model, trainable, time.perf_counter() - t0, result.global_step, output_dir)


def evaluate_variant(
    job: Job, variant: Variant, model: nn.Module, condition: str = "correct", split: str = "test"
) -> dict[str, Any]:
    """The task's metrics of ``model`` on ``split`` under a knowledge ``condition``, with the predictions."""
    from kgpeft.evaluation import compute_metrics
    from kgpeft.inference import first_line, generate_texts, predict_classes, target_log_likelihoods

    config, examples = job.config, job.splits[split]
    batch_size = config.training.per_device_eval_batch_size
    if config.task_type == "classification":
        data = job.dataset(split, variant, with_target=True, condition=condition)
        predictions = predict_classes(model, data, batch_size=batch_size).tolist()
        references = [e.label for e in examples]
        ie = compute_metrics("ie", predictions, references)
        metrics = {**compute_metrics("classification", predictions, references), "micro_f1": ie["micro_f1"]}
    elif config.task_type == "multiple_choice":
        if any(not e.choices or e.label is None for e in examples):
            raise JobConfigError("multiple_choice: every example needs `choices` and the gold `label` index.")
        if condition != "correct":
            raise JobConfigError("multiple_choice: only the `correct` control is supported.")
        options = [dataclasses.replace(e, answer=c) for e in examples for c in e.choices]
        data = job.dataset(split, variant, with_target=True, examples=options)
        scores = target_log_likelihoods(model, data, batch_size=batch_size)
        rows, start = [], 0
        for e in examples:
            rows.append(scores[start : start + len(e.choices)])
            start += len(e.choices)
        width = max(len(r) for r in rows)
        padded = torch.stack([nn.functional.pad(r, (0, width - len(r)), value=-float("inf")) for r in rows])
        predictions = padded.argmax(-1).tolist()
        metrics = compute_metrics("multiple_choice", padded, [e.label for e in examples])
    else:
        data = job.dataset(split, variant, with_target=False, condition=condition)
        outputs = generate_texts(
            model, data, max_new_tokens=config.max_new_tokens, batch_size=batch_size, first_line_only=True
        )
        predictions = [first_line(p) for p in outputs]
        metric = get_task(config.task).metric if config.task in TASKS else "qa"
        if metric == "classification":  # a generated class name, scored over the gold classes
            gold = [e.answer for e in examples]
            metrics = compute_metrics(metric, predictions, gold, labels=sorted(set(gold)))
        else:
            metrics = compute_metrics(metric, predictions, [list(e.answers) for e in examples])
    return {**metrics, "prompt_tokens": mean_prompt_tokens(data), "predictions": predictions}


def mean_prompt_tokens(data: KnowledgeDataset) -> float:
    """Tokens per example before the target (the question and any facts written into it)."""

    def prompt(feature: dict[str, Any]) -> int:
        labels = feature.get("labels")
        if isinstance(labels, list) and len(labels) == len(feature["input_ids"]):
            return labels.count(-100)
        return len(feature["input_ids"])

    return sum(prompt(f) for f in data.features) / max(len(data.features), 1)
