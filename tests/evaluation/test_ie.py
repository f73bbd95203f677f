import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from kgpeft.evaluation import ie_f1

NONE = "no_relation"
GOLD = ["born_in", "born_in", "works_for", NONE, NONE, "works_for"]
PRED = ["born_in", NONE, "works_for", "born_in", NONE, "spouse"]


def test_ignore_label_by_hand():
    scores = ie_f1(PRED, GOLD, ignore_label=NONE)
    # 4 positive guesses, 4 positive gold, 2 correct; agreeing on no_relation (index 4) counts for nothing.
    assert scores["micro_precision"] == pytest.approx(2 / 4)
    assert scores["micro_recall"] == pytest.approx(2 / 4)
    assert scores["micro_f1"] == pytest.approx(1 / 2)
    # born_in: P 1/2 R 1/2; works_for: P 1 R 1/2; spouse: only a false positive.
    assert scores["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)


def test_ignore_label_matches_sklearn():
    labels = ["born_in", "works_for", "spouse"]
    p, r, f, _ = precision_recall_fscore_support(GOLD, PRED, labels=labels, average="micro", zero_division=0)
    scores = ie_f1(PRED, GOLD, ignore_label=NONE)
    assert (scores["micro_precision"], scores["micro_recall"], scores["micro_f1"]) == pytest.approx((p, r, f))
    assert scores["macro_f1"] == pytest.approx(f1_score(GOLD, PRED, labels=labels, average="macro", zero_division=0))


def test_without_ignore_label_every_class_counts():
    scores = ie_f1(PRED, GOLD)
    assert scores["micro_f1"] == pytest.approx(3 / 6)
    assert scores["macro_f1"] == pytest.approx(f1_score(GOLD, PRED, average="macro", zero_division=0))
    assert scores["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0 + 1 / 2) / 4)


def test_int_labels_and_only_negatives():
    assert ie_f1([1, 0, 2], [1, 2, 2], ignore_label=0)["micro_f1"] == pytest.approx(2 * (1 * 2 / 3) / (1 + 2 / 3))
    assert ie_f1([0, 0], [0, 0], ignore_label=0) == dict.fromkeys(
        ["micro_precision", "micro_recall", "micro_f1", "macro_f1"], 0.0
    )
