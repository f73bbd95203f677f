"""KG-grounded tasks: running models over task datasets, and scoring them."""

from kgpeft.tasks.inference import first_line, generate_texts, predict_classes, target_log_likelihoods

__all__ = ["first_line", "generate_texts", "predict_classes", "target_log_likelihoods"]
