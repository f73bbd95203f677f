import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from kgpeft.evaluation import MetricInputError, multiple_choice_accuracy

SCORES = [[-1.0, -0.5, -3.0], [-2.0, -4.0, -0.1], [-0.2, -0.3, -9.0], [-1.0, -2.0, -0.5]]
LABELS = [1, 2, 1, 0]


@pytest.mark.parametrize(
    "scores, labels",
    [
        (SCORES, LABELS),
        (np.array(SCORES), np.array(LABELS)),
        (torch.tensor(SCORES, dtype=torch.bfloat16), torch.tensor(LABELS)),
    ],
)
def test_matches_sklearn_on_argmax(scores, labels):
    expected = accuracy_score(LABELS, np.argmax(SCORES, axis=1))
    assert multiple_choice_accuracy(scores, labels) == pytest.approx(expected) == pytest.approx(2 / 4)


def test_ties_go_to_lowest_index():
    scores = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0], [float("-inf"), 5.0, 5.0]])
    # Predictions are [0, 1, 0, 1].
    assert multiple_choice_accuracy(scores, [0, 2, 1, 1]) == pytest.approx(2 / 4)
    assert multiple_choice_accuracy(scores, [1, 1, 0, 2]) == pytest.approx(2 / 4)


def test_errors_name_arguments():
    with pytest.raises(MetricInputError, match=r"`scores` must have shape \(N, C\), got shape \(3,\)"):
        multiple_choice_accuracy([1.0, 2.0, 3.0], [0])
    with pytest.raises(MetricInputError, match="`scores` and `labels` must have the same length, got 4 and 3"):
        multiple_choice_accuracy(SCORES, [0, 1, 2])
    with pytest.raises(MetricInputError, match=r"`labels\[1\]` must be an option index in \[0, 3\), got 3"):
        multiple_choice_accuracy(SCORES, [0, 3, 1, 1])
    with pytest.raises(MetricInputError, match=r"NaN in row\(s\) \[2\]"):
        multiple_choice_accuracy([[0.0, 1.0], [1.0, 0.0], [float("nan"), 0.0]], [0, 1, 0])
    with pytest.raises(MetricInputError, match="are empty"):
        multiple_choice_accuracy(np.zeros((0, 4)), [])
