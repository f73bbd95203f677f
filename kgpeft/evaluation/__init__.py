"""Task metrics on scikit-learn and rouge-score: accuracy, F1, IE F1, SQuAD exact match and F1, ROUGE."""

from kgpeft.evaluation.classification import accuracy, f1
from kgpeft.evaluation.ie import ie_f1
from kgpeft.evaluation.inputs import MetricInputError
from kgpeft.evaluation.metrics import METRICS, compute_metrics
from kgpeft.evaluation.multiple_choice import multiple_choice_accuracy
from kgpeft.evaluation.qa import exact_match, exact_match_score, normalize_answer, token_f1, token_f1_score
from kgpeft.evaluation.summarization import rouge

__all__ = [
    "METRICS",
    "MetricInputError",
    "accuracy",
    "compute_metrics",
    "exact_match",
    "exact_match_score",
    "f1",
    "ie_f1",
    "multiple_choice_accuracy",
    "normalize_answer",
    "rouge",
    "token_f1",
    "token_f1_score",
]
