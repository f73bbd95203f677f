"""Knowledge-conditioned LoRA (KG-LoRA): config, layers, knowledge inputs, target modules."""

from kgpeft.tuners.config import KGLoraConfig
from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import CrossFusion, KnowledgeContext, KnowledgeError, KnowledgeState, TokenFusion
from kgpeft.tuners.targets import ATTENTION_TARGET_MODULES, TargetModulesError, resolve_target_modules

__all__ = [
    "ATTENTION_TARGET_MODULES",
    "CrossFusion",
    "KGLoraConfig",
    "KnowledgeBatch",
    "KnowledgeContext",
    "KnowledgeError",
    "KnowledgeState",
    "TargetModulesError",
    "TokenFusion",
    "resolve_target_modules",
]
