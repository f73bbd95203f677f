"""Multiple-choice accuracy from per-option scores."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from sklearn.metrics import accuracy_score

from kgpeft.evaluation.inputs import MetricInputError, as_label_list, check_pair


def multiple_choice_accuracy(
    scores: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
    labels: Iterable[int],
) -> float:
    """Fraction of questions whose highest-scoring option is the gold option.

    The prediction for each question is the argmax of its row of ``scores`` (typically the
    option's summed or length-normalised log-likelihood under the model). Ties go to the
    lowest option index, as :func:`numpy.argmax` breaks them, so a model that scores every
    option alike always picks option 0; it is right only where the gold option is 0.
    ``-inf`` is a valid score (an impossible option); NaN is refused.

    Args:
        scores (Tensor, ndarray or nested list): option scores, higher is better.
        labels (Iterable[int]): the gold option index of each question, in ``[0, C)``.

    Returns:
        float: accuracy in ``[0, 1]``.

    Shapes:
        - **scores** (N, C): N questions, C options each.
        - **labels** (N,).
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().float().cpu().numpy()
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise MetricInputError(f"`scores` must have shape (N, C), got shape {scores.shape}.")
    labels = as_label_list(labels, "labels")
    check_pair(scores, labels, ("scores", "labels"))
    if np.isnan(scores).any():
        raise MetricInputError(f"`scores` contains NaN in row(s) {np.flatnonzero(np.isnan(scores).any(1)).tolist()}.")
    num_choices = scores.shape[1]
    for i, label in enumerate(labels):
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool) or not 0 <= label < num_choices:
            raise MetricInputError(f"`labels[{i}]` must be an option index in [0, {num_choices}), got {label!r}.")
    return float(accuracy_score(labels, scores.argmax(axis=1)))
