"""Joint training of adapters and graph encoder: the data path and the loop."""

from kgpeft.training.config import TrainingConfig, TrainingConfigError
from kgpeft.training.data import DataError, KnowledgeCollator, KnowledgeDataset, as_example
from kgpeft.training.tracking import CSVTracker
from kgpeft.training.trainer import TrainingDivergedError, TrainResult, evaluate_model, train

__all__ = [
    "CSVTracker",
    "DataError",
    "KnowledgeCollator",
    "KnowledgeDataset",
    "TrainResult",
    "TrainingConfig",
    "TrainingConfigError",
    "TrainingDivergedError",
    "as_example",
    "evaluate_model",
    "train",
]
