"""Classification metrics: accuracy and F1, thin wrappers on :mod:`sklearn.metrics`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from sklearn.metrics import accuracy_score, f1_score

from kgpeft.evaluation.inputs import MetricInputError, as_label_list, as_label_pair

AVERAGES = ("macro", "micro", "weighted")


def accuracy(predictions: Iterable[Any], references: Iterable[Any]) -> float:
    """Fraction of examples whose predicted label equals the reference label.

    Args:
        predictions (Iterable): predicted labels, ints or strings; a list, tensor or array of shape ``(N,)``.
        references (Iterable): gold labels of the same kind and length.

    Returns:
        float: accuracy in ``[0, 1]``, as :func:`sklearn.metrics.accuracy_score`.
    """
    predictions, references = as_label_pair(predictions, references)
    return float(accuracy_score(references, predictions))


def f1(
    predictions: Iterable[Any],
    references: Iterable[Any],
    average: Literal["macro", "micro", "weighted"] = "macro",
    labels: Sequence[Any] | None = None,
) -> float:
    """F1 over classes, as :func:`sklearn.metrics.f1_score` with ``zero_division=0``.

    ``macro`` averages the per-class F1 with equal weight, ``weighted`` weights each class by
    its number of gold examples, and ``micro`` pools true/false positives over all classes
    (for single-label data over all classes it equals accuracy). A class that is never
    predicted, or never gold, has precision or recall 0 rather than undefined.

    Args:
        predictions (Iterable): predicted labels, ints or strings, shape ``(N,)``.
        references (Iterable): gold labels of the same kind and length.
        average (str): ``"macro"``, ``"micro"`` or ``"weighted"``. (default: ``"macro"``)
        labels (Sequence, optional): the classes to score and average over; classes left out
            are ignored (see :func:`kgpeft.evaluation.ie_f1` for the usual "no relation" case).
            (default: every class seen in predictions or references)

    Returns:
        float: F1 in ``[0, 1]``.
    """
    if average not in AVERAGES:
        raise MetricInputError(f"`average` must be one of {AVERAGES}, got {average!r}.")
    predictions, references = as_label_pair(predictions, references)
    labels = None if labels is None else as_label_list(labels, "labels")
    return float(f1_score(references, predictions, average=average, labels=labels, zero_division=0))
