"""kgpeft: knowledge-graph-conditioned LoRA adapters for Hugging Face models."""

from importlib import import_module
from typing import Any

from kgpeft.errors import KGFileNotFoundError, KGFormatError, KGPeftError, UnknownDatasetError
from kgpeft.graph import KnowledgeGraph

__version__ = "0.1.0.dev0"

# Heavier parts (transformers, peft) load on first use, so `import kgpeft` stays quick.
_LAZY = {
    "EntityLinker": "kgpeft.linking",
    "Mention": "kgpeft.linking",
    "SubgraphRetriever": "kgpeft.retrieval",
    "RGCNEncoder": "kgpeft.nn",
    "KGLoraConfig": "kgpeft.tuners",
    "KnowledgeBatch": "kgpeft.tuners",
    "KGPeftModel": "kgpeft.model",
    "get_kg_peft_model": "kgpeft.model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kgpeft' has no attribute {name!r}")


__all__ = [
    "EntityLinker",
    "KGFileNotFoundError",
    "KGFormatError",
    "KGLoraConfig",
    "KGPeftError",
    "KGPeftModel",
    "KnowledgeBatch",
    "KnowledgeGraph",
    "Mention",
    "RGCNEncoder",
    "SubgraphRetriever",
    "UnknownDatasetError",
    "__version__",
    "get_kg_peft_model",
]
