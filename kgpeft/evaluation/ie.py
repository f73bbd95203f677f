"""Scores for entity typing and relation classification, with an optional "no relation" class left out."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from sklearn.metrics import f1_score, precision_recall_fscore_support

from kgpeft.evaluation.inputs import as_label_pair


def ie_f1(
    predictions: Iterable[Hashable],
    references: Iterable[Hashable],
    ignore_label: Hashable | None = None,
) -> dict[str, float]:
    """Micro and macro precision/recall/F1 over the labels of an IE task.

    With ``ignore_label`` (e.g. ``"no_relation"`` on TACRED, ``"Other"`` on SemEval-2010
    Task 8, ``"O"`` for entity typing), that label is left out of the scored classes, as the
    standard relation-extraction scorers do: predicting it for a positive gold example is a
    false negative, predicting a real relation for an ``ignore_label`` gold example is a false
    positive, and agreeing on ``ignore_label`` counts for nothing. Micro scores pool the counts
    over the remaining classes; macro F1 averages their per-class F1 with equal weight. Classes
    are those seen in predictions or references; a score whose denominator is zero is 0
    (so if every label is ``ignore_label`` all scores are 0).

    Args:
        predictions (Iterable): predicted labels, ints or strings, shape ``(N,)``.
        references (Iterable): gold labels of the same kind and length.
        ignore_label (optional): the negative class to leave out. (default: :obj:`None`, score every class)

    Returns:
        dict[str, float]: ``micro_precision``, ``micro_recall``, ``micro_f1`` and ``macro_f1``.
    """
    predictions, references = as_label_pair(predictions, references)
    labels = [label for label in set(predictions) | set(references) if label != ignore_label]
    precision, recall, micro_f1, _ = precision_recall_fscore_support(
        references, predictions, labels=labels, average="micro", zero_division=0
    )
    macro_f1 = f1_score(references, predictions, labels=labels, average="macro", zero_division=0) if labels else 0.0
    return {
        "micro_precision": float(precision),
        "micro_recall": float(recall),
        "micro_f1": float(micro_f1),
        "macro_f1": float(macro_f1),
    }
