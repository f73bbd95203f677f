"""kgpeft: knowledge-graph-conditioned LoRA adapters for Hugging Face models."""

from kgpeft.errors import KGFileNotFoundError, KGFormatError, KGPeftError, UnknownDatasetError
from kgpeft.graph import KnowledgeGraph

__version__ = "0.1.0.dev0"

__all__ = [
    "KGFileNotFoundError",
    "KGFormatError",
    "KGPeftError",
    "KnowledgeGraph",
    "UnknownDatasetError",
    "__version__",
]
