"""The tasks kgpeft knows by name: what a job config's ``task`` may say."""

from __future__ import annotations

from kgpeft.errors import KGPeftError
from kgpeft.tasks.base import Task
from kgpeft.tasks.gloss_generation import GLOSS_GENERATION
from kgpeft.tasks.hypernym_qa import HYPERNYM_QA
from kgpeft.tasks.relation_qa import RELATION_QA
from kgpeft.tasks.supersense import SUPERSENSE_CLASSIFICATION, SUPERSENSE_QA

#: Every registered task by name, in the order they are listed to users.
TASKS: dict[str, Task] = {
    task.name: task for task in (HYPERNYM_QA, RELATION_QA, SUPERSENSE_CLASSIFICATION, SUPERSENSE_QA, GLOSS_GENERATION)
}


class UnknownTaskError(KGPeftError, ValueError):
    """A task name that is not in :data:`TASKS`."""


def get_task(name: str) -> Task:
    """The registered task called ``name``.

    Raises:
        UnknownTaskError: naming the known tasks.

    Example:
        >>> get_task("hypernym_qa").metric
        'qa'
    """
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"Unknown task {name!r}; known tasks: {', '.join(TASKS)}.") from None
