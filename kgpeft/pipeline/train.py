"""Build, train and load back one variant's model, as its kind (:mod:`kgpeft.pipeline.variants`) says."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from kgpeft import selection
from kgpeft.data import KnowledgeCollator
from kgpeft.errors import KGFileNotFoundError
from kgpeft.pipeline.config import Variant
from kgpeft.pipeline.job import Job
from kgpeft.training.checkpoints import find_checkpoint
from kgpeft.training.trainer import train


def load_variant_model(job: Job, variant: Variant, adapter_dir: str | Path) -> nn.Module:
    """``variant``'s model with the adapter saved in ``adapter_dir`` (KG-LoRA or plain peft LoRA)."""
    return variant.kind.load(job, Path(adapter_dir))


def build_model(job: Job, variant: Variant) -> nn.Module:
    """A fresh model for ``variant`` on a copy of the base model (the base model itself for ``none``)."""
    return variant.kind.build(job, variant)


@dataclass
class TrainedVariant:
    """A variant's trained model and what its training cost."""

    variant: Variant
    model: nn.Module
    trainable: int
    seconds: float
    steps: int
    output_dir: Path | None
    #: A jointly trained fact scorer's answer-fact recall on the test split, ``{"before": ..., "after": ...}``.
    scorer_recall: dict[str, float] | None = None
    truncation: dict[str, Any] | None = None  # what the token budgets cut of its training rows


def train_variant(job: Job, variant: Variant) -> TrainedVariant:
    """Build and train ``variant`` with the job's training settings, in ``output_dir/<variant name>``."""
    model = build_model(job, variant)
    recall = _attach_joint_scorer(job, variant, model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if not variant.kind.trains:
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
    truncation = train_ds.truncation()
    truncation.report(f"{variant.name}, train")
    valid_ds = job.dataset("valid", variant, with_target=True) if training.eval_steps and job.splits["valid"] else None
    collator = KnowledgeCollator(job.tokenizer.pad_token_id, with_knowledge=variant.kind.reads_knowledge)
    t0 = time.perf_counter()
    result = train(model, train_ds, collator, training, eval_dataset=valid_ds)
    seconds = time.perf_counter() - t0
    if recall is not None:
        recall["after"] = _test_recall(job, model.fact_scorer)
    return TrainedVariant(
        variant, model, trainable, seconds, result.global_step, output_dir, recall, truncation.to_dict()
    )


def _attach_joint_scorer(job: Job, variant: Variant, model: nn.Module) -> dict[str, float] | None:
    """Give a variant whose scorer trains jointly its scorer: fresh (``joint``) or the staged one's copy
    (``joint-from-staged``), reading the model's own embedding; returns its test recall before training."""
    mode = job.config.scorer_training(variant)
    if mode == "staged":
        return None
    scorer = selection.build_fact_scorer(
        job.kg, job.tokenizer, model.base_model.get_input_embeddings(), job.config.selection
    )
    if mode == "joint-from-staged":
        scorer.load_state_dict(job.scorer.state_dict())
    recall = {"before": _test_recall(job, scorer)}
    model.attach_fact_scorer(scorer)
    return recall


def _test_recall(job: Job, scorer: nn.Module) -> float:
    """How often ``scorer``'s top ``retrieval.memory_facts`` facts of a test question include an answer fact."""
    test = job._base_dataset("test", with_target=False)
    return selection.answer_fact_recall(scorer, test, job.tokenizer, job.config.retrieval.memory_facts)
