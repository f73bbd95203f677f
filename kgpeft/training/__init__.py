"""Joint training of adapters and graph encoder: the data path and the loop."""

from kgpeft.training.data import DataError, KnowledgeCollator, KnowledgeDataset, as_example

__all__ = ["DataError", "KnowledgeCollator", "KnowledgeDataset", "as_example"]
