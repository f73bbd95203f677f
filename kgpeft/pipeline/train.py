"""Build, train and load back one variant's model, as its kind (:mod:`kgpeft.pipeline.variants`) says."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

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
    truncation: dict[str, Any] | None = None  # what the token budgets cut of its training rows


def train_variant(job: Job, variant: Variant) -> TrainedVariant:
    """Build and train ``variant`` with the job's training settings, in ``output_dir/<variant name>``."""
    model = build_model(job, variant)
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
    return TrainedVariant(variant, model, trainable, seconds, result.global_step, output_dir, truncation.to_dict())
