"""ROUGE for summarisation, on Google's :mod:`rouge_score`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rouge_score.rouge_scorer import RougeScorer

from kgpeft.evaluation.inputs import MetricInputError, as_text_list, check_pair

_ROUGE_TYPE = re.compile(r"rouge[1-9]|rougeL|rougeLsum")


def rouge(
    predictions: Iterable[str],
    references: Iterable[str | Sequence[str]],
    types: Sequence[str] = ("rouge1", "rouge2", "rougeL"),
    use_stemmer: bool = True,
    return_precision_recall: bool = False,
) -> dict[str, float]:
    """Corpus-mean ROUGE F-measures (and optionally precision and recall).

    Each prediction is scored against its reference with
    :class:`rouge_score.rouge_scorer.RougeScorer` and the per-example scores are averaged
    (no bootstrap aggregation). With several references for an example, the one with the
    highest F-measure counts, as :meth:`RougeScorer.score_multi` does. rouge-score's default
    tokenizer lowercases and keeps only ``[a-z0-9]`` runs, so text in other scripts scores 0.
    ``rougeLsum`` splits summaries into sentences on newlines.

    Args:
        predictions (Iterable[str]): one generated summary per example.
        references (Iterable): per example, one reference summary or a list of references.
        types (Sequence[str]): ROUGE variants, ``"rouge1"`` … ``"rouge9"``, ``"rougeL"``, ``"rougeLsum"``.
            (default: ``("rouge1", "rouge2", "rougeL")``)
        use_stemmer (bool): apply the Porter stemmer to tokens. (default: :obj:`True`)
        return_precision_recall (bool): also return ``"<type>_precision"`` and ``"<type>_recall"``.
            (default: :obj:`False`)

    Returns:
        dict[str, float]: the mean F-measure in ``[0, 1]`` keyed by ROUGE type, e.g. ``{"rouge1": 0.42, ...}``.
    """
    types = list(dict.fromkeys(as_text_list(types, "types")))
    unknown = [kind for kind in types if not _ROUGE_TYPE.fullmatch(kind)]
    if not types or unknown:
        raise MetricInputError(
            f"`types` must name ROUGE variants 'rouge1' … 'rouge9', 'rougeL' or 'rougeLsum', got {types!r}."
        )
    scorer = RougeScorer(types, use_stemmer=use_stemmer)
    predictions = as_text_list(predictions, "predictions")
    if isinstance(references, str):
        raise MetricInputError("`references` must hold one entry per prediction, got a single string.")
    references = [
        [answer] if isinstance(answer, str) else as_text_list(answer, f"references[{i}]")
        for i, answer in enumerate(references)
    ]
    check_pair(predictions, references, ("predictions", "references"))
    totals = dict.fromkeys(types, 0.0)
    if return_precision_recall:
        totals |= {f"{kind}_{part}": 0.0 for kind in types for part in ("precision", "recall")}
    for i, (prediction, targets) in enumerate(zip(predictions, references, strict=True)):
        if not targets:
            raise MetricInputError(f"`references[{i}]` holds no reference summary.")
        for kind, score in scorer.score_multi(targets, prediction).items():
            totals[kind] += score.fmeasure
            if return_precision_recall:
                totals[f"{kind}_precision"] += score.precision
                totals[f"{kind}_recall"] += score.recall
    return {key: total / len(predictions) for key, total in totals.items()}
