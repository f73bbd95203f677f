import pytest

from kgpeft.evaluation import (
    MetricInputError,
    exact_match,
    exact_match_score,
    normalize_answer,
    token_f1,
    token_f1_score,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Eiffel  Tower!", "eiffel tower"),
        ("an apple, a pear and THE plum.", "apple pear and plum"),
        ("Theatre anthem", "theatre anthem"),  # articles only as whole words
        ("U.S.A.", "usa"),
        ("  ", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_by_hand():
    assert exact_match("the Eiffel tower", "Eiffel Tower") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0
    assert exact_match("Paris", ["Lyon", "paris."]) == 1.0


def test_token_f1_by_hand():
    assert token_f1("a big dog", "dog") == pytest.approx(2 * (1 / 2 * 1) / (1 / 2 + 1))
    assert token_f1("a big dog", "dog") == pytest.approx(0.667, abs=1e-3)
    assert token_f1("cat", "dog") == 0.0
    # Tokens are a multiset: "dog dog" shares one "dog" with "dog house" → P 1/2, R 1/2.
    assert token_f1("dog dog", "dog house") == pytest.approx(0.5)
    # The best of several references counts.
    assert token_f1("a big dog", ["cat", "big dog", "dog"]) == 1.0


def test_empty_answers_follow_squad2():
    assert token_f1("", "the") == 1.0  # both normalise to nothing
    assert token_f1("", "dog") == 0.0
    assert exact_match("", "") == 1.0


def test_corpus_means():
    predictions = ["the Eiffel tower", "a big dog", "blue"]
    references = ["Eiffel Tower", ["cat", "dog"], "red"]
    assert exact_match_score(predictions, references) == pytest.approx(1 / 3)
    assert token_f1_score(predictions, references) == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_errors_name_arguments():
    with pytest.raises(MetricInputError, match="`predictions` and `references` must have the same length, got 1 and 2"):
        exact_match_score(["a"], ["a", "b"])
    with pytest.raises(MetricInputError, match="are empty"):
        token_f1_score([], [])
    with pytest.raises(MetricInputError, match=r"`references\[1\]` holds no acceptable answer"):
        token_f1_score(["a", "b"], ["a", []])
    with pytest.raises(MetricInputError, match=r"`predictions\[0\]` must be a string, got int"):
        exact_match_score([3], ["3"])
    with pytest.raises(MetricInputError, match="got a single string"):
        exact_match_score(["a"], "a")
    with pytest.raises(MetricInputError, match="`prediction` must be a string"):
        exact_match(None, "a")
