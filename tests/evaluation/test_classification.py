import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from kgpeft import KGPeftError
from kgpeft.evaluation import MetricInputError, accuracy, f1

GOLD = [0, 1, 2, 2, 1, 0, 2]
PRED = [0, 2, 2, 2, 1, 1, 0]
GOLD_STR = ["cat", "dog", "bird", "bird", "dog", "cat", "bird"]
PRED_STR = ["cat", "bird", "bird", "bird", "dog", "dog", "cat"]


@pytest.mark.parametrize(
    "predictions, references",
    [
        (PRED, GOLD),
        (PRED_STR, GOLD_STR),
        (torch.tensor(PRED), torch.tensor(GOLD)),
        (np.array(PRED), GOLD),
        (tuple(PRED_STR), np.array(GOLD_STR)),
    ],
)
def test_accuracy_matches_sklearn(predictions, references):
    assert accuracy(predictions, references) == pytest.approx(accuracy_score(GOLD, PRED)) == pytest.approx(4 / 7)


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
@pytest.mark.parametrize("predictions, references", [(PRED, GOLD), (PRED_STR, GOLD_STR)])
def test_f1_matches_sklearn(predictions, references, average):
    expected = f1_score(references, predictions, average=average, zero_division=0)
    assert f1(predictions, references, average=average) == pytest.approx(expected)


def test_f1_by_hand():
    # Class 0: P 1/2 R 1/2; class 1: P 1/2 R 1/2; class 2: P 2/3 R 2/3.
    per_class = [1 / 2, 1 / 2, 2 / 3]
    assert f1(PRED, GOLD) == pytest.approx(sum(per_class) / 3)
    assert f1(PRED, GOLD, average="micro") == pytest.approx(4 / 7)  # single-label micro F1 is accuracy


def test_f1_labels_and_zero_division():
    assert f1(PRED, GOLD, labels=[1, 2]) == pytest.approx((1 / 2 + 2 / 3) / 2)
    # A class that is never predicted scores 0 instead of raising or warning.
    assert f1([0, 0], [0, 1]) == pytest.approx((2 / 3 + 0) / 2)


def test_errors_name_arguments():
    with pytest.raises(MetricInputError, match="must have the same length, got 2 and 3"):
        accuracy([0, 1], [0, 1, 1])
    with pytest.raises(MetricInputError, match="are empty"):
        f1([], [])
    with pytest.raises(MetricInputError, match=r"`predictions` must be 1-D, got shape \(2, 2\)"):
        accuracy(torch.zeros(2, 2), [0, 1])
    with pytest.raises(MetricInputError, match="`references` must be a sequence of labels"):
        accuracy(["a"], "a")
    with pytest.raises(MetricInputError, match="`average` must be one of"):
        f1(PRED, GOLD, average="binary")
    assert issubclass(MetricInputError, ValueError)
    assert issubclass(MetricInputError, KGPeftError)
