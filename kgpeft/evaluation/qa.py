"""SQuAD-style answer metrics: normalised exact match and token-overlap F1."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from kgpeft.evaluation.inputs import MetricInputError, as_text_list, check_pair

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Normalise an answer as the official SQuAD evaluation script does.

    Lowercase, remove ASCII punctuation, remove the articles *a*, *an* and *the* (as whole
    words), and collapse runs of whitespace to single spaces.

    Args:
        text (str): an answer.

    Returns:
        str: the normalised answer, e.g. ``"The Eiffel  Tower!"`` → ``"eiffel tower"``.
    """
    if not isinstance(text, str):
        raise MetricInputError(f"`text` must be a string, got {type(text).__name__}.")
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def _reference_list(references: str | Sequence[str], name: str) -> list[str]:
    if isinstance(references, str):
        return [references]
    answers = as_text_list(references, name)
    if not answers:
        raise MetricInputError(f"`{name}` holds no acceptable answer; give at least one string.")
    return answers


def _exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def _token_f1(prediction: str, reference: str) -> float:
    prediction_tokens = normalize_answer(prediction).split()
    reference_tokens = normalize_answer(reference).split()
    if not prediction_tokens or not reference_tokens:
        # SQuAD 2.0: an empty (unanswerable) answer scores 1 only against another empty answer.
        return float(prediction_tokens == reference_tokens)
    overlap = sum((Counter(prediction_tokens) & Counter(reference_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def _best(
    score: Callable[[str, str], float],
    prediction: str,
    references: str | Sequence[str],
    names: tuple[str, str] = ("prediction", "references"),
) -> float:
    if not isinstance(prediction, str):
        raise MetricInputError(f"`{names[0]}` must be a string, got {type(prediction).__name__}.")
    return max(score(prediction, reference) for reference in _reference_list(references, names[1]))


def exact_match(prediction: str, references: str | Sequence[str]) -> float:
    """Whether a predicted answer equals a reference answer after :func:`normalize_answer`.

    Args:
        prediction (str): the predicted answer.
        references (str or Sequence[str]): one gold answer or several acceptable ones; the
            best match counts.

    Returns:
        float: 1.0 on a match, else 0.0.
    """
    return _best(_exact_match, prediction, references)


def token_f1(prediction: str, references: str | Sequence[str]) -> float:
    """SQuAD token F1: harmonic mean of precision and recall of the normalised answer's tokens.

    Tokens are the whitespace-separated words of :func:`normalize_answer`, counted as a
    multiset. If either answer normalises to nothing, the score is 1.0 when both do and 0.0
    otherwise (the SQuAD 2.0 rule for unanswerable questions).

    Args:
        prediction (str): the predicted answer.
        references (str or Sequence[str]): one gold answer or several acceptable ones; the
            maximum F1 over them counts.

    Returns:
        float: F1 in ``[0, 1]``; e.g. ``"a big dog"`` vs ``"dog"`` gives 2 · (1/2 · 1) / (1/2 + 1) = 2/3.
    """
    return _best(_token_f1, prediction, references)


def _corpus_mean(
    score: Callable[[str, str], float],
    predictions: Iterable[str],
    references: Iterable[str | Sequence[str]],
) -> float:
    predictions = as_text_list(predictions, "predictions")
    if isinstance(references, str):
        raise MetricInputError("`references` must hold one entry per prediction, got a single string.")
    references = list(references)
    check_pair(predictions, references, ("predictions", "references"))
    total = sum(
        _best(score, prediction, answers, (f"predictions[{i}]", f"references[{i}]"))
        for i, (prediction, answers) in enumerate(zip(predictions, references, strict=True))
    )
    return total / len(predictions)


def exact_match_score(predictions: Iterable[str], references: Iterable[str | Sequence[str]]) -> float:
    """Mean :func:`exact_match` over a corpus.

    Args:
        predictions (Iterable[str]): one predicted answer per example.
        references (Iterable): per example, one gold answer or a list of acceptable answers.

    Returns:
        float: exact match in ``[0, 1]`` (the SQuAD script reports it ×100).
    """
    return _corpus_mean(_exact_match, predictions, references)


def token_f1_score(predictions: Iterable[str], references: Iterable[str | Sequence[str]]) -> float:
    """Mean :func:`token_f1` over a corpus.

    Args:
        predictions (Iterable[str]): one predicted answer per example.
        references (Iterable): per example, one gold answer or a list of acceptable answers.

    Returns:
        float: token F1 in ``[0, 1]`` (the SQuAD script reports it ×100).
    """
    return _corpus_mean(_token_f1, predictions, references)
