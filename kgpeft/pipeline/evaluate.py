"""Score one variant's model on a split under one knowledge control, as the job's task type says.

A task type's ``evaluation`` picks the scorer: ``generate`` (generated text, scored by the
task's metric), ``classify`` (a classification head's argmax) or ``choose`` (the option the
model finds likeliest).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kgpeft.data import KnowledgeDataset
from kgpeft.evaluation import compute_metrics
from kgpeft.inference import first_line, generate_texts, predict_classes, target_log_likelihoods
from kgpeft.pipeline.config import JobConfigError, Variant
from kgpeft.pipeline.job import Job

#: What a scorer returns: the dataset it read, the predictions, the metrics.
Scored = tuple[KnowledgeDataset, list, dict[str, Any]]


def evaluate_variant(
    job: Job, variant: Variant, model: nn.Module, control: str = "correct", split: str = "test"
) -> dict[str, Any]:
    """The task's metrics of ``model`` on ``split`` under a knowledge ``control``, with the predictions and
    what the token budgets cut of the rows (``truncation``: :class:`~kgpeft.data.truncation.Truncation`'s counts)."""
    score = EVALUATIONS[job.config.task_kind.evaluation]
    data, predictions, metrics = score(job, variant, model, control, split)
    truncation = data.truncation()
    truncation.report(f"{variant.name}, {split}, {control}")
    return {
        **metrics,
        "prompt_tokens": mean_prompt_tokens(data),
        "predictions": predictions,
        "truncation": truncation.to_dict(),
    }


def _classify(job: Job, variant: Variant, model: nn.Module, control: str, split: str) -> Scored:
    """A classification head's classes, scored by accuracy, macro and micro F1."""
    examples = job.splits[split]
    data = job.dataset(split, variant, with_target=True, control=control)
    predictions = predict_classes(model, data, batch_size=job.config.training.per_device_eval_batch_size).tolist()
    references = [e.label for e in examples]
    ie = compute_metrics("ie", predictions, references)
    return data, predictions, {**compute_metrics("classification", predictions, references), "micro_f1": ie["micro_f1"]}


def _choose(job: Job, variant: Variant, model: nn.Module, control: str, split: str) -> Scored:
    """The option of each example with the highest log-likelihood as the answer, scored by accuracy."""
    examples = job.splits[split]
    if any(not e.choices or e.label is None for e in examples):
        raise JobConfigError("multiple_choice: every example needs `choices` and the gold `label` index.")
    if control != "correct":
        raise JobConfigError("multiple_choice: only the `correct` control is supported.")
    options = [dataclasses.replace(e, answer=c) for e in examples for c in e.choices]
    data = job.dataset(split, variant, with_target=True, examples=options)
    scores = target_log_likelihoods(model, data, batch_size=job.config.training.per_device_eval_batch_size)
    rows, start = [], 0
    for e in examples:
        rows.append(scores[start : start + len(e.choices)])
        start += len(e.choices)
    width = max(len(r) for r in rows)
    padded = torch.stack([nn.functional.pad(r, (0, width - len(r)), value=-float("inf")) for r in rows])
    return data, padded.argmax(-1).tolist(), compute_metrics("multiple_choice", padded, [e.label for e in examples])


def _generate(job: Job, variant: Variant, model: nn.Module, control: str, split: str) -> Scored:
    """Generated answers (their first line), scored by the task's metric (a task file's: ``qa``)."""
    config, examples = job.config, job.splits[split]
    data = job.dataset(split, variant, with_target=False, control=control)
    outputs = generate_texts(
        model,
        data,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.training.per_device_eval_batch_size,
        first_line_only=True,
    )
    predictions = [first_line(p) for p in outputs]
    metric = config.task_metric
    if metric == "classification":  # a generated class name, scored over the gold classes
        gold = [e.answer for e in examples]
        return data, predictions, compute_metrics(metric, predictions, gold, labels=sorted(set(gold)))
    return data, predictions, compute_metrics(metric, predictions, [list(e.answers) for e in examples])


#: The scorer of each task type's ``evaluation``.
EVALUATIONS: dict[str, Callable[[Job, Variant, nn.Module, str, str], Scored]] = {
    "generate": _generate,
    "classify": _classify,
    "choose": _choose,
}


def mean_prompt_tokens(data: KnowledgeDataset) -> float:
    """Tokens per example before the target (the question and any facts written into it)."""

    def prompt(feature: dict[str, Any]) -> int:
        labels = feature.get("labels")
        if isinstance(labels, list) and len(labels) == len(feature["input_ids"]):
            return labels.count(-100)
        return len(feature["input_ids"])

    return sum(prompt(f) for f in data.features) / max(len(data.features), 1)
