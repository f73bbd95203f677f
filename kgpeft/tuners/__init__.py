"""Knowledge-conditioned LoRA (KG-LoRA): config, layers, knowledge inputs, target modules, the tuner model."""

from kgpeft.tuners.config import KGLoraConfig
from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import CrossFusion, KnowledgeContext, KnowledgeError, KnowledgeState, TokenFusion
from kgpeft.tuners.model import KGLoraModel
from kgpeft.tuners.prefix import PrefixError
from kgpeft.tuners.targets import ATTENTION_TARGET_MODULES, TargetModulesError, resolve_target_modules

__all__ = [
    "ATTENTION_TARGET_MODULES",
    "CrossFusion",
    "KGLoraConfig",
    "KGLoraModel",
    "KnowledgeBatch",
    "KnowledgeContext",
    "KnowledgeError",
    "KnowledgeState",
    "PrefixError",
    "TargetModulesError",
    "TokenFusion",
    "resolve_target_modules",
]
