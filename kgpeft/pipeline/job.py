"""What every variant of a job shares: :class:`Job` and :func:`prepare`, which builds it.

:func:`prepare` loads the KG, the task's examples and the base model once, settles the job's
token budgets (:mod:`kgpeft.pipeline.budgets`), and builds each split's dataset once (linking,
retrieval, tokenisation); with a ``selection`` section it also trains the fact scorer
(:func:`prepare`'s last block, :data:`SCORER_FILE`).
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from kgpeft import selection
from kgpeft.data import KnowledgeDataset
from kgpeft.datasets import load_kg
from kgpeft.datasets.source import MIN_NAMED_SHARE, named_entities, names_hint
from kgpeft.graph import KnowledgeGraph
from kgpeft.model import get_kg_peft_model
from kgpeft.pipeline.answer import answer_settings, with_chosen_facts
from kgpeft.pipeline.base_model import check_model_folder, load_base_model
from kgpeft.pipeline.budgets import BUDGETS_FILE, Budgets, derive_budgets, max_positions, read_budgets, write_budgets
from kgpeft.pipeline.config import JobConfig, JobConfigError, Variant
from kgpeft.pipeline.examples import load_examples
from kgpeft.tasks.registry import TASKS
from kgpeft.training.checkpoints import hold_lock
from kgpeft.utils import ensure_writable


@dataclass
class Job:
    """What every variant of a job shares: the KG, the examples, the base model and the datasets.

    Build it with :func:`prepare`. Datasets are linked, retrieved and tokenised once per
    split, cut to the job's ``budgets``; the facts, fact ranking and knowledge control of a
    variant derive from them.
    """

    config: JobConfig
    kg: KnowledgeGraph
    base: nn.Module
    tokenizer: Any
    splits: dict[str, list]
    scorer: nn.Module | None = None
    selection_report: dict[str, Any] | None = None
    budgets: Budgets | None = None
    #: Per split: its questions, those with a linked entity, those with a non-empty subgraph (:func:`report_linking`).
    linking: dict[str, tuple[int, int, int]] | None = None
    _datasets: dict[tuple, KnowledgeDataset] = field(default_factory=dict, repr=False)
    _kg_lora_budget: int | None = field(default=None, repr=False)

    def kg_lora_budget(self) -> int:
        """Trainable parameters of the job's KG-LoRA adapter, the budget plain-LoRA variants match."""
        if self._kg_lora_budget is None:
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
            teacher = config.distillation.build_teacher(self.kg, config.task_kind.choices)
        rows = self.splits[split] if examples is None else examples
        dataset = self._new_dataset(rows, with_target, self.budgets.max_length, teacher)
        if examples is None:
            self._datasets[key] = dataset
        return dataset

    def _new_dataset(self, examples: list, with_target: bool, max_length: int, teacher: Any = None) -> KnowledgeDataset:
        """``examples`` linked, retrieved and tokenised, with no facts yet, cut to ``max_length``."""
        config = self.config
        max_fact_tokens = self.budgets.max_fact_tokens if self.budgets is not None else None
        return KnowledgeDataset(
            examples,
            self.tokenizer,
            self.kg,
            task=config.task_kind,
            retrieval=dataclasses.replace(
                config.retrieval, num_facts=0, memory_facts=0, max_fact_tokens=max_fact_tokens
            ),
            max_length=max_length,
            with_target=with_target,
            seed=config.seed,
            teacher=teacher,
        )

    def settle_budgets(self, train: bool) -> Budgets:
        """Set :attr:`budgets`: the config's, those it leaves unset read from the job's ``budgets.json``
        (``train=False``: the adapters' own) or derived from the job's rows (``train=True``, then written
        there; :meth:`_derive_budgets`)."""
        config = self.config
        path = Path(config.training.output_dir) / BUDGETS_FILE
        given = (config.max_length, config.retrieval.max_fact_tokens)
        budgets = None if train else read_budgets(path, config)
        if None not in given:
            budgets = Budgets(*given)
        elif budgets is None:
            budgets = self._derive_budgets()
            if train:
                with hold_output_dir(config):
                    write_budgets(budgets, path)
        self.budgets = budgets
        # On stderr, as the truncation counts: `kgpeft evaluate` and `explain --json` write JSON on stdout.
        print(f"budgets: {budgets.describe()}", file=sys.stderr)
        return budgets

    def _derive_budgets(self) -> Budgets:
        """The budgets derived from every split's rows (:func:`~kgpeft.pipeline.budgets.derive_budgets`): each
        split is linked and retrieved once, tokenised with no cut (at the model's positions, no fact budget),
        and kept, cut to the budgets, as its dataset (the training rows with their answers, the others
        without: the prompts of generation)."""
        cap = max_positions(self.base)
        probes = {
            (split, split == "train", False): self._new_dataset(rows, split == "train", cap or PROBE_LENGTH)
            for split, rows in self.splits.items()
            if rows
        }
        budgets = derive_budgets(self.config, list(probes.values()), cap)
        for key, probe in probes.items():
            retrieval = dataclasses.replace(probe.retrieval, max_fact_tokens=budgets.max_fact_tokens)
            self._datasets[key] = probe.with_retrieval(retrieval).with_max_length(budgets.max_length)
        return budgets

    def dataset(
        self,
        split: str,
        variant: Variant,
        *,
        with_target: bool,
        control: str = "correct",
        examples: list | None = None,
    ) -> KnowledgeDataset:
        """``split``'s dataset as ``variant`` reads it, under a knowledge ``control`` (correct, shuffled, none).

        ``examples`` (optional) replaces the split's examples (e.g. multiple-choice options). A
        KG-LoRA variant's training data carries the KGE teacher's soft targets when the job has
        a ``distillation`` section. With a trained fact scorer, a variant's facts follow its
        ranking when they are ``selected`` or read as memory (then its prompt facts too); a variant
        whose scorer trains jointly (:meth:`~kgpeft.pipeline.JobConfig.scorer_training`) gets every
        subgraph fact as a candidate, for its model's own scorer to pick (``with_fact_candidates``). A
        variant's ``knowledge_dropout`` empties the knowledge of that share of its training examples.
        """
        distill = (
            self.config.distillation is not None and split == "train" and with_target and variant.kind.reads_knowledge
        )
        data = self._base_dataset(split, with_target, examples, distill).with_knowledge(control, seed=self.config.seed)
        joint = self.config.scorer_training(variant) != "staged"  # the model's own scorer picks its memory facts
        data = with_chosen_facts(data, answer_settings(self, variant), self.tokenizer, self.scorer, joint)
        if variant.knowledge_dropout and split == "train" and with_target and control == "correct":
            data = data.with_knowledge_dropout(variant.knowledge_dropout, seed=self.config.seed)
        return data


#: Where a job keeps its trained fact scorer, inside ``training.output_dir``.
SCORER_FILE = "fact_scorer.safetensors"
#: The length a job's training rows are first tokenised at, to derive its budgets, for a model that
#: names no maximum of positions.
PROBE_LENGTH = 1 << 15


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

    The (staged) scorer, unless every variant reading selected facts trains its own (``joint``),
    is trained on the training split and saved to ``output_dir/fact_scorer.safetensors``
    (``train_scorer=True``, holding the folder meanwhile: :func:`hold_output_dir`), or read back from
    there (``False``: evaluating a finished job); so are the budgets the config leaves unset
    (:meth:`Job.settle_budgets`).
    """
    # What is quick to check comes before what is slow to load: the model folder, a task file's rows.
    folder = check_model_folder(config)
    _check_files(config)
    splits = None if config.task in TASKS else load_examples(config)
    _check_training_examples(config, splits, train_scorer)
    kg = load_kg(config.kg)
    if splits is None:
        splits = load_examples(config, kg)
        _check_training_examples(config, splits, train_scorer)
    if train_scorer and config.needs_staged_scorer() and config.selection.objective == "answers":
        splits = {**splits, "train": _with_answer_entities(config, kg, splits["train"])}
    base, tokenizer = load_base_model(config, folder)
    _check_names(config, kg, splits)
    job = Job(config, kg, base, tokenizer, splits)
    job.settle_budgets(train=train_scorer)
    if train_scorer:
        job.linking = report_linking(job)
    if config.needs_staged_scorer():
        path = Path(config.training.output_dir) / SCORER_FILE
        if train_scorer:
            with hold_output_dir(config):  # held already inside `run`; here for a caller that prepares alone
                job.scorer = selection.build_fact_scorer(kg, tokenizer, base.get_input_embeddings(), config.selection)
                train = job._base_dataset("train", with_target=True)
                job.selection_report = selection.train_fact_scorer(
                    job.scorer, train, tokenizer, config.selection, language_model=base
                )
                selection.save_fact_scorer(job.scorer, config.selection, kg, path)
        else:
            job.scorer = selection.load_fact_scorer(path, kg, tokenizer, base.get_input_embeddings())
    return job


#: Below this share of training rows naming answer entities, the ``answers`` objective is warned about.
MIN_ANSWER_SHARE = 0.1


def _with_answer_entities(config: JobConfig, kg: KnowledgeGraph, rows: list) -> list:
    """The training rows, those naming no ``answer_entities`` given them from their answer text with the
    job's linker (:func:`~kgpeft.selection.link_answers`); the share that have them goes to stderr.

    Raises:
        FactScorerError: no row names an answer entity, even linked: the ``answers`` objective has nothing.
    """
    rows, links = selection.link_answers(rows, lambda: config.retrieval.build_linker(kg), kg)
    print(f"selection: {links.describe()}", file=sys.stderr)
    if links.rows and not links.share:
        raise selection.FactScorerError(
            f"selection: the `answers` objective learns from the entities an answer names, and none of the "
            f"{links.rows} training rows of {config.task!r} names one in `answer_entities` or in an answer text "
            "that links to the KG; give `answer_entities` (entity keys), or use `selection.objective: marginal`."
        )
    if links.share < MIN_ANSWER_SHARE:
        warnings.warn(
            f"selection: only {links.describe()}: the fact scorer learns from those alone; give "
            "`answer_entities` (entity keys) or use `selection.objective: marginal`.",
            stacklevel=3,
        )
    return rows


#: A training job warns when fewer of a split's questions than this share have a linked entity.
MIN_LINKED_SHARE = 0.5


def _check_names(config: JobConfig, kg: KnowledgeGraph, splits: dict[str, list]) -> None:
    """Refuse a KG whose entities (almost) all go by their ids (fewer than :data:`MIN_NAMED_SHARE` named) for a
    job whose questions are linked to it (a variant reads the KG and some example names no gold entity): the
    linker would find nothing in the text, and every knowledge variant would silently read nothing."""
    if not any(v.uses_knowledge for v in config.variants):
        return
    if all(e.entity is not None for rows in splits.values() for e in rows):
        return
    named = named_entities(kg)
    if named < MIN_NAMED_SHARE * kg.num_entities:
        raise JobConfigError(
            f"kg: {config.kg}: {named} of {kg.num_entities} entities have a name other than their id (such as "
            f"{kg.labels[0]!r}), so no question can be linked to the KG and the knowledge variants would read "
            f"nothing; {names_hint()}."
        )


def report_linking(job: Job) -> dict[str, tuple[int, int, int]]:
    """Print, per split, how many questions had a linked entity and a non-empty subgraph; warn where most had none
    and a variant reads the KG.

    Returns ``{split: (questions, linked, with a subgraph)}``. Each split is read as the job reads it (its
    dataset, built once: training rows with their answers, the others without).
    """
    report = {}
    for split, rows in job.splits.items():
        if not rows:
            continue
        data = job._base_dataset(split, with_target=split == "train")
        linked = sum(1 for mentions in data.mentions if mentions)
        with_subgraph = sum(1 for graph in data.graphs if graph.edge_index.size(1) > 0)
        report[split] = (len(rows), linked, with_subgraph)
    print(
        "linking: "
        + "; ".join(
            f"{split} {linked} of {n} questions linked ({100 * linked / n:.0f}%), {graphs} with a non-empty subgraph"
            for split, (n, linked, graphs) in report.items()
        ),
        file=sys.stderr,
    )
    reads_kg = any(v.uses_knowledge for v in job.config.variants)
    for split, (n, linked, _) in report.items():
        if reads_kg and linked < MIN_LINKED_SHARE * n:
            warnings.warn(
                f"only {linked} of {n} {split} questions have an entity linked in the KG: the knowledge variants read "
                f"nothing for the others. Check that the KG's labels are names found in the questions; "
                f"{names_hint()}.",
                stacklevel=2,
            )
    return report


def _check_files(config: JobConfig) -> None:
    """The KG embedding files the job reads exist (a KGE teacher, ``kge`` node features)."""
    files = {"distillation.teacher": config.distillation.teacher} if config.distillation else {}
    for variant in config.variants:
        adapter = config.variant_adapter(variant)
        if variant.kind.reads_knowledge and adapter.node_features == "kge":
            files[f"variants: {variant.name}: `adapter.kge_path` (for `node_features: kge`)"] = adapter.kge_path
    for key, path in files.items():
        if path is None or not Path(path).is_file():
            raise JobConfigError(f"{key}: {path} is not a file of KG embeddings (written by `kgpeft kge train`).")


def _check_training_examples(config: JobConfig, splits: dict[str, list] | None, train: bool) -> None:
    if train and splits is not None and not splits["train"]:
        counts = ", ".join(f"{len(v)} {k}" for k, v in splits.items())
        raise JobConfigError(f"task: {config.task!r} has no training examples ({counts}); rows need `split: train`.")
