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


def test_the_task_builders_live_in_tasks_only():
    """`kgpeft.datasets` redirected the task names to `kgpeft.tasks` (a module `__getattr__` and a
    `kgpeft.datasets.tasks` module, compatibility shims in a version never released)."""
    import importlib

    import kgpeft.datasets

    assert not hasattr(kgpeft.datasets, "TaskExample") and not hasattr(kgpeft.datasets, "hypernym_qa")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("kgpeft.datasets.tasks")


@pytest.mark.parametrize(
    ("name", "text", "subject"),
    [
        ("hypernym_qa", "What kind of thing is a violin?", "violin"),
        ("hypernym_qa", "  what kind of thing is Colombo? ", "Colombo"),
        ("hypernym_qa", "What kind of thing is an ice cream cone?", "ice cream cone"),
        ("relation_qa", "What is an oak a kind of?", "oak"),
        ("relation_qa", "Name a part of a car.", "car"),
        ("relation_qa", 'Name a word derived from the verb "run".', "run"),
        ("gloss_generation", 'Define the noun "dog":', "dog"),
        ("hypernym_qa", "Tell me about dogs.", None),
        ("supersense_classification", "The dog barked.", None),
    ],
)
def test_free_text_reads_through_the_task_templates(name, text, subject):
    example = get_task(name).example(text, answer="")
    assert example.text == text and example.answer == "" and example.entity is None
    found = None if example.target_start is None else text[example.target_start : example.target_end]
    assert found == subject


def test_a_template_names_its_subject_once():
    with pytest.raises(ValueError, match="name the subject once"):
        Task("t", hypernym_qa, task_type="causal_lm", metric="qa", templates=("What is it?",))
