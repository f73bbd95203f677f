import pytest
from rouge_score.rouge_scorer import RougeScorer

from kgpeft.evaluation import MetricInputError, rouge

PREDICTIONS = ["the cat sat on the mat", "police killed the gunman", "running dogs were barking loudly"]
REFERENCES = ["the cat was sitting on the mat", "the gunman was shot dead by police", "the dog runs and barks"]


@pytest.mark.parametrize("use_stemmer", [True, False])
def test_matches_rouge_score(use_stemmer):
    types = ("rouge1", "rouge2", "rougeL")
    scorer = RougeScorer(list(types), use_stemmer=use_stemmer)
    direct = [scorer.score(ref, pred) for pred, ref in zip(PREDICTIONS, REFERENCES, strict=True)]
    scores = rouge(PREDICTIONS, REFERENCES, use_stemmer=use_stemmer, return_precision_recall=True)
    for kind in types:
        assert scores[kind] == pytest.approx(sum(s[kind].fmeasure for s in direct) / 3)
        assert scores[f"{kind}_precision"] == pytest.approx(sum(s[kind].precision for s in direct) / 3)
        assert scores[f"{kind}_recall"] == pytest.approx(sum(s[kind].recall for s in direct) / 3)
    assert len(scores) == 9


def test_by_hand():
    # Unigrams: all 3 predicted words in the 6-word reference → P 1, R 1/2, F 2/3; bigrams: P 2/2, R 2/5.
    scores = rouge(["the cat sat"], ["the cat sat on the mat"])
    assert scores == pytest.approx({"rouge1": 2 / 3, "rouge2": 2 * (2 / 5) / (1 + 2 / 5), "rougeL": 2 / 3})
    assert rouge(["dogs"], ["dog"], types=["rouge1"]) == {"rouge1": 1.0}  # stemmed
    assert rouge(["dogs"], ["dog"], types=["rouge1"], use_stemmer=False) == {"rouge1": 0.0}


def test_several_references_take_the_best():
    references = [["a completely different text", REFERENCES[0]], REFERENCES[1], [REFERENCES[2]]]
    scorer = RougeScorer(["rougeLsum"], use_stemmer=True)
    expected = sum(
        scorer.score_multi(refs if isinstance(refs, list) else [refs], pred)["rougeLsum"].fmeasure
        for pred, refs in zip(PREDICTIONS, references, strict=True)
    )
    assert rouge(PREDICTIONS, references, types=["rougeLsum"]) == pytest.approx({"rougeLsum": expected / 3})
    assert rouge(PREDICTIONS, references) == pytest.approx(rouge(PREDICTIONS, REFERENCES))


def test_errors_name_arguments():
    with pytest.raises(MetricInputError, match="`types` must name ROUGE variants"):
        rouge(PREDICTIONS, REFERENCES, types=["rougeX"])
    with pytest.raises(MetricInputError, match="`types` must name ROUGE variants"):
        rouge(PREDICTIONS, REFERENCES, types=[])
    with pytest.raises(MetricInputError, match="`predictions` and `references` must have the same length, got 3 and 2"):
        rouge(PREDICTIONS, REFERENCES[:2])
    with pytest.raises(MetricInputError, match=r"`references\[0\]` holds no reference summary"):
        rouge(["a"], [[]])
    with pytest.raises(MetricInputError, match="are empty"):
        rouge([], [])
