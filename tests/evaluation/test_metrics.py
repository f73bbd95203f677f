import pytest
import torch

from kgpeft.evaluation import (
    METRICS,
    MetricInputError,
    accuracy,
    compute_metrics,
    exact_match_score,
    f1,
    ie_f1,
    multiple_choice_accuracy,
    rouge,
    token_f1_score,
)


def test_every_task_type_dispatches_to_its_metrics():
    labels_pred, labels_gold = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2])
    assert compute_metrics("classification", labels_pred, labels_gold) == {
        "accuracy": accuracy(labels_pred, labels_gold),
        "macro_f1": f1(labels_pred, labels_gold),
    }
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    assert compute_metrics("multiple_choice", scores, [1, 1]) == {"accuracy": multiple_choice_accuracy(scores, [1, 1])}
    answers, gold = ["the Eiffel tower", "a big dog"], ["Eiffel Tower", ["dog"]]
    for task_type in ("qa", "generation"):
        assert compute_metrics(task_type, answers, gold) == {
            "exact_match": exact_match_score(answers, gold),
            "token_f1": token_f1_score(answers, gold),
        }
    summaries, references = ["the cat sat"], ["the cat sat on the mat"]
    assert compute_metrics("summarization", summaries, references, types=["rouge1"]) == rouge(
        summaries, references, types=["rouge1"]
    )
    relations, gold_relations = ["a", "none", "b"], ["a", "b", "none"]
    assert compute_metrics("ie", relations, gold_relations, ignore_label="none") == ie_f1(
        relations, gold_relations, ignore_label="none"
    )
    assert set(METRICS) == {"classification", "multiple_choice", "qa", "generation", "summarization", "ie"}


def test_unknown_task_type():
    with pytest.raises(MetricInputError, match=r"`task_type` must be one of .*got 'translation'"):
        compute_metrics("translation", ["a"], ["a"])
