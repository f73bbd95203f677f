"""Joint training of adapters and graph encoder: the loop, its config, checkpoints and the label-positions loss.

The data it reads (:class:`~kgpeft.data.KnowledgeDataset`, :class:`~kgpeft.data.KnowledgeCollator`)
is :mod:`kgpeft.data`'s.
"""

from kgpeft.training.config import TrainingConfig, TrainingConfigError
from kgpeft.training.tracking import CSVTracker
from kgpeft.training.trainer import TrainingDivergedError, TrainResult, evaluate_model, train

__all__ = [
    "CSVTracker",
    "TrainResult",
    "TrainingConfig",
    "TrainingConfigError",
    "TrainingDivergedError",
    "evaluate_model",
    "train",
]
