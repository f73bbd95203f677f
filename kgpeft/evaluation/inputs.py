"""Validation shared by the metrics: one error type, 1-D label sequences, paired lengths."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from kgpeft.errors import KGPeftError


class MetricInputError(KGPeftError, ValueError):
    """A metric got inputs it cannot score: empty, of different lengths, of the wrong shape or type.

    The message names the offending argument and what it got.
    """


def as_label_list(values: Iterable[Any], name: str) -> list[Any]:
    """Turn a 1-D list, tuple, tensor or array of labels into a plain Python list.

    Args:
        values (Iterable): class labels (ints or strings). A bare string is refused, since it
            is almost always a single label passed where a sequence was meant.
        name (str): the argument's name, used in error messages.

    Returns:
        list: the labels as Python scalars.
    """
    if isinstance(values, str):
        raise MetricInputError(f"`{name}` must be a sequence of labels, got the string {values!r}.")
    if isinstance(values, (torch.Tensor, np.ndarray)):
        if values.ndim != 1:
            raise MetricInputError(f"`{name}` must be 1-D, got shape {tuple(values.shape)}.")
        return values.tolist()
    return list(values)


def as_text_list(values: Iterable[str], name: str) -> list[str]:
    """Turn a sequence of strings into a list, checking that every item is a string.

    Args:
        values (Iterable[str]): texts, one per example.
        name (str): the argument's name, used in error messages.

    Returns:
        list[str]: the texts.
    """
    if isinstance(values, str):
        raise MetricInputError(f"`{name}` must be a sequence of strings, got the single string {values!r}.")
    texts = list(values)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise MetricInputError(f"`{name}[{i}]` must be a string, got {type(text).__name__}.")
    return texts


def check_pair(first: Sequence[Any], second: Sequence[Any], names: tuple[str, str]) -> None:
    """Check that two per-example sequences are non-empty and equally long.

    Args:
        first (Sequence): e.g. the predictions.
        second (Sequence): e.g. the references.
        names (tuple[str, str]): the two arguments' names, used in error messages.
    """
    if len(first) != len(second):
        raise MetricInputError(
            f"`{names[0]}` and `{names[1]}` must have the same length, got {len(first)} and {len(second)}."
        )
    if len(first) == 0:
        raise MetricInputError(f"`{names[0]}` and `{names[1]}` are empty; there is nothing to score.")


def as_label_pair(predictions: Iterable[Any], references: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    """Validate predicted and gold labels together (see :func:`as_label_list` and :func:`check_pair`).

    Args:
        predictions (Iterable): predicted labels, shape ``(N,)``.
        references (Iterable): gold labels, shape ``(N,)``.

    Returns:
        tuple[list, list]: ``(predictions, references)`` as Python lists.
    """
    predictions = as_label_list(predictions, "predictions")
    references = as_label_list(references, "references")
    check_pair(predictions, references, ("predictions", "references"))
    return predictions, references
