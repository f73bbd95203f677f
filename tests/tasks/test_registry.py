import pytest

from kgpeft.errors import KGPeftError
from kgpeft.tasks import (
    TASK_TYPES,
    TASKS,
    Task,
    UnknownTaskError,
    get_task,
    gloss_generation,
    hypernym_qa,
    supersense_classification,
    supersense_qa,
)


def test_registry_lists_the_tasks():
    assert list(TASKS) == [
        "hypernym_qa",
        "relation_qa",
        "supersense_classification",
        "supersense_qa",
        "gloss_generation",
    ]
    assert all(name == task.name and task.task_type in TASK_TYPES for name, task in TASKS.items())


@pytest.mark.parametrize(
    "name, builder, task_type, metric",
    [
        ("hypernym_qa", hypernym_qa, "causal_lm", "qa"),
        ("supersense_classification", supersense_classification, "classification", "classification"),
        ("supersense_qa", supersense_qa, "causal_lm", "classification"),
        ("gloss_generation", gloss_generation, "causal_lm", "summarization"),
    ],
)
def test_get_task(name, builder, task_type, metric):
    task = get_task(name)
    assert (task.builder, task.task_type, task.metric) == (builder, task_type, metric)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(
        UnknownTaskError, match="Unknown task 'hypernym'; known tasks: hypernym_qa, relation_qa, supers"
    ) as e:
        get_task("hypernym")
    assert isinstance(e.value, KGPeftError) and isinstance(e.value, ValueError)


def test_task_checks_its_type():
    with pytest.raises(ValueError, match="`task_type` should be one of"):
        Task("t", hypernym_qa, task_type="regression", metric="qa")


def test_old_import_paths_still_work():
    from kgpeft.datasets import TaskExample as A
    from kgpeft.datasets import hypernym_qa as build
    from kgpeft.datasets.tasks import TaskExample as B
    from kgpeft.tasks import TaskExample

    assert A is B is TaskExample and build is hypernym_qa
