"""KG embeddings: TransE, DistMult, ComplEx and RotatE, their training and filtered rank evaluation.

>>> from kgpeft.datasets import load
>>> from kgpeft.kge import KGEConfig, train_kge
>>> kg = load("umls")
>>> result = train_kge(kg, KGEConfig(model="complex", hidden_channels=200, reciprocal=True))
>>> result.embeddings.evaluate(kg, "test").metrics().mrr  # filtered, both directions
>>> result.embeddings.save("umls-complex.safetensors")
"""

from kgpeft.kge.config import KGEConfig, KGEConfigError
from kgpeft.kge.embeddings import EmbeddingFileError, KGEmbeddings
from kgpeft.kge.evaluation import AnswerIndex, RankMetrics, RankResult, evaluate_ranks, filtered_ranks
from kgpeft.kge.models import MODELS, ComplEx, DistMult, KGEModel, RotatE, TransE, build_model
from kgpeft.kge.training import KGETrainResult, head_probabilities, train_kge

__all__ = [
    "MODELS",
    "AnswerIndex",
    "ComplEx",
    "DistMult",
    "EmbeddingFileError",
    "KGEConfig",
    "KGEConfigError",
    "KGEModel",
    "KGETrainResult",
    "KGEmbeddings",
    "RankMetrics",
    "RankResult",
    "RotatE",
    "TransE",
    "build_model",
    "evaluate_ranks",
    "filtered_ranks",
    "head_probabilities",
    "train_kge",
]
