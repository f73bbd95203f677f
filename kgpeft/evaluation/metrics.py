"""One entry point that scores a task's predictions with the task's usual metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from kgpeft.evaluation.classification import accuracy, f1
from kgpeft.evaluation.ie import ie_f1
from kgpeft.evaluation.inputs import MetricInputError, as_label_pair
from kgpeft.evaluation.multiple_choice import multiple_choice_accuracy
from kgpeft.evaluation.qa import exact_match_score, token_f1_score
from kgpeft.evaluation.summarization import rouge


def _classification(
    predictions: Iterable[Any], references: Iterable[Any], labels: Sequence[Any] | None = None
) -> dict[str, float]:
    predictions, references = as_label_pair(predictions, references)
    return {"accuracy": accuracy(predictions, references), "macro_f1": f1(predictions, references, labels=labels)}


def _multiple_choice(scores: Any, labels: Iterable[int]) -> dict[str, float]:
    return {"accuracy": multiple_choice_accuracy(scores, labels)}


def _answers(predictions: Iterable[str], references: Iterable[str | Sequence[str]]) -> dict[str, float]:
    predictions, references = list(predictions), list(references)
    return {
        "exact_match": exact_match_score(predictions, references),
        "token_f1": token_f1_score(predictions, references),
    }


METRICS: Mapping[str, Callable[..., dict[str, float]]] = MappingProxyType(
    {
        "classification": _classification,
        "multiple_choice": _multiple_choice,
        "qa": _answers,
        "generation": _answers,
        "summarization": rouge,
        "ie": ie_f1,
    }
)
"""Task type → function ``(predictions, references, **kwargs) -> {metric name: value}``."""


def compute_metrics(task_type: str, predictions: Any, references: Any, **kwargs: Any) -> dict[str, float]:
    """Score predictions with the usual metrics of a task type.

    - ``"classification"``: predicted and gold labels ``(N,)`` → ``accuracy``, ``macro_f1``.
    - ``"multiple_choice"``: option scores ``(N, C)`` and gold option indices ``(N,)`` → ``accuracy``.
    - ``"qa"``, ``"generation"``: answer strings, and per example a gold answer or a list of
      acceptable ones → ``exact_match``, ``token_f1`` (SQuAD definitions).
    - ``"summarization"``: summaries, and per example a reference or a list of them →
      ``rouge1``, ``rouge2``, ``rougeL`` (mean F-measures).
    - ``"ie"``: predicted and gold entity or relation labels ``(N,)`` → ``micro_precision``,
      ``micro_recall``, ``micro_f1``, ``macro_f1``.

    Args:
        task_type (str): one of the keys of :data:`METRICS`.
        predictions: the model's outputs, as in the list above.
        references: the gold answers, as in the list above.
        **kwargs: passed to the task's metric: ``labels=`` for classification,
            ``types=``/``use_stemmer=``/``return_precision_recall=`` for :func:`rouge`,
            ``ignore_label=`` for :func:`ie_f1`.

    Returns:
        dict[str, float]: metric name → value, every value in ``[0, 1]``.
    """
    if task_type not in METRICS:
        raise MetricInputError(f"`task_type` must be one of {sorted(METRICS)}, got {task_type!r}.")
    return METRICS[task_type](predictions, references, **kwargs)
