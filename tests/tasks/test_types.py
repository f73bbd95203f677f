"""Task types as objects: one registry, and each type knows its model class, rows, evaluation and headline."""

import pytest

from kgpeft.errors import KGPeftError
from kgpeft.tasks import TASK_TYPES, TASKS, TaskType, UnknownTaskTypeError, get_task_type
from kgpeft.tasks.base import SPLITS


def test_one_registry_of_every_task_type():
    """`TASK_TYPES` existed twice: 3 types in kgpeft.tasks.base, 4 in kgpeft.pipeline.config."""
    import kgpeft.pipeline.config
    import kgpeft.tasks.base

    assert list(TASK_TYPES) == ["causal_lm", "multiple_choice", "classification", "seq2seq"]
    assert all(isinstance(t, TaskType) and t.name == name for name, t in TASK_TYPES.items())
    assert not hasattr(kgpeft.tasks.base, "TASK_TYPES")
    assert getattr(kgpeft.pipeline.config, "TASK_TYPES", TASK_TYPES) is TASK_TYPES  # the one registry, imported
    assert all(task.task_type in TASK_TYPES for task in TASKS.values())
    assert SPLITS == ("train", "valid", "test")


@pytest.mark.parametrize(
    ("name", "model_class", "target_in_input", "evaluation", "headline"),
    [
        ("causal_lm", "AutoModelForCausalLM", True, "generate", ("exact_match", "token_f1")),
        ("multiple_choice", "AutoModelForCausalLM", True, "choose", ("accuracy", "accuracy")),
        (
            "classification",
            "AutoModelForSequenceClassification",
            False,
            "classify",
            ("accuracy", "macro_f1"),
        ),
        ("seq2seq", "AutoModelForSeq2SeqLM", False, "generate", ("exact_match", "token_f1")),
    ],
)
def test_each_type_knows_its_model_rows_evaluation_and_headline(
    name, model_class, target_in_input, evaluation, headline
):
    import transformers

    t = get_task_type(name)
    assert (t.model_class, t.target_in_input, t.evaluation, t.headline_metrics("qa")) == (
        model_class,
        target_in_input,
        evaluation,
        headline,
    )
    assert hasattr(transformers, t.model_class)
    import peft

    assert hasattr(peft.TaskType, t.peft_task_type)


def test_what_the_data_code_asks():
    causal, choice, classes, seq2seq = (
        TASK_TYPES[n] for n in ("causal_lm", "multiple_choice", "classification", "seq2seq")
    )
    assert [t.classifier for t in (causal, choice, classes, seq2seq)] == [False, False, True, False]
    assert [t.allows_teacher for t in (causal, choice, classes, seq2seq)] == [True, True, False, True]
    assert [t.label_leading_space for t in (causal, choice, classes, seq2seq)] == [True, True, False, False]
    assert [t.truncation_side for t in (causal, choice, classes, seq2seq)] == ["left", "left", "right", "right"]
    assert [t.explainable for t in (causal, choice, classes, seq2seq)] == [True, False, False, False]
    assert classes.head_modules == ("classifier", "score") and not causal.head_modules


def test_generation_headlines_follow_the_task_metric():
    causal = get_task_type("causal_lm")
    assert causal.headline_metrics("summarization") == ("rougeL", "rouge1")
    assert causal.headline_metrics("classification") == ("accuracy", "macro_f1")
    assert causal.headline_metrics("unknown") == ("exact_match", "token_f1")


def test_an_unknown_type_names_the_known_ones():
    with pytest.raises(UnknownTaskTypeError, match=r"`task_type` should be one of \('causal_lm', .*got 'regression'"):
        get_task_type("regression")
    assert issubclass(UnknownTaskTypeError, KGPeftError) and issubclass(UnknownTaskTypeError, ValueError)
