"""Rows of a dataset: a :class:`~kgpeft.tasks.TaskExample` from a JSON row, each field checked.

:func:`as_example` takes a dict (a JSON row) or an example and refuses a bad one with its row
number; :func:`check_example` adds what a task type needs of a row (a class label, an answer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kgpeft.configuration import check_field_types
from kgpeft.errors import KGPeftError
from kgpeft.tasks.base import TaskExample
from kgpeft.tasks.types import TaskType
from kgpeft.utils import short_repr, surrogate_at


class DataError(KGPeftError, ValueError):
    """A dataset row lacks what its task needs, or holds a value of the wrong kind."""


def as_example(row: TaskExample | Mapping[str, Any], index: int) -> TaskExample:
    """A :class:`~kgpeft.tasks.TaskExample` from itself or a dict (a JSON row), naming bad rows."""
    if isinstance(row, TaskExample):
        return row
    if not isinstance(row, Mapping):
        raise DataError(f"Row {index}: expected a TaskExample or a mapping, got {type(row).__name__}.")
    known = set(TaskExample.__dataclass_fields__)
    unknown = sorted(set(row) - known)
    if unknown:
        raise DataError(f"Row {index}: unknown keys {short_repr(unknown)}; known keys: {sorted(known)}.")
    if not isinstance(row.get("text"), str) or not row["text"].strip():
        raise DataError(f"Row {index}: `text` should be a non-empty string, got {short_repr(row.get('text'))}.")
    example = TaskExample(**{k: tuple(v) if isinstance(v, list) else v for k, v in row.items()})
    _check_fields(example, index)
    return example


def _check_fields(example: TaskExample, index: int) -> None:
    """Each field of the annotated type (``target_start: "0"`` is refused), and a gold link inside ``text``."""
    if not isinstance(example.text, str) or not example.text.strip():
        raise DataError(f"Row {index}: `text` should be a non-empty string, got {short_repr(example.text)}.")
    try:
        check_field_types(example, DataError)
    except DataError as e:
        raise DataError(f"Row {index}: {e}") from None
    for f in dataclasses.fields(example):
        value = getattr(example, f.name)
        for text in value if isinstance(value, tuple) else (value,):
            if isinstance(text, str) and (at := surrogate_at(text)) is not None:
                raise DataError(
                    f"Row {index}: `{f.name}` holds {text[at]!r} at character {at + 1}, half of a UTF-16 surrogate "
                    'pair, which is not text; write the character itself or its whole pair ("\\ud83d\\ude00").'
                )
    if (example.target_start is None) != (example.target_end is None):
        raise DataError(f"Row {index}: a subject span needs `target_start` and `target_end` together.")
    if example.target_start is not None and not 0 <= example.target_start < example.target_end <= len(example.text):
        raise DataError(
            f"Row {index}: the span [`target_start`, `target_end`) = [{example.target_start}, "
            f"{example.target_end}) should be a non-empty span of `text` ({len(example.text)} characters)."
        )


def check_example(example: TaskExample, index: int, task: TaskType, with_target: bool) -> None:
    """:func:`as_example`'s checks, and what a ``task`` row needs: a class label, or a string answer."""
    _check_fields(example, index)
    if task.classifier and (not isinstance(example.label, int) or example.label < 0):
        raise DataError(
            f"Row {index}: a classification row needs an integer `label` >= 0, got {short_repr(example.label)}."
        )
    if not task.classifier and with_target and not isinstance(example.answer, str):
        raise DataError(f"Row {index}: a {task.name} row needs a string `answer`, got {short_repr(example.answer)}.")
