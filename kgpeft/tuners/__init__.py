"""Knowledge-conditioned LoRA (KG-LoRA): config, layers, knowledge inputs and modes, target modules, the tuner."""

from kgpeft.tuners.config import KGLoraConfig
from kgpeft.tuners.cross import CrossFusion, CrossMode, CrossState
from kgpeft.tuners.knowledge import FactCandidates, KnowledgeBatch
from kgpeft.tuners.layer import KnowledgeContext, KnowledgeError, KnowledgeState
from kgpeft.tuners.memory import MemoryMode, MemoryState
from kgpeft.tuners.mode import FusionMode, KnowledgeMode
from kgpeft.tuners.model import KGLoraModel
from kgpeft.tuners.modes import KNOWLEDGE_MODES
from kgpeft.tuners.prefix import PrefixError, PrefixMode, PrefixState
from kgpeft.tuners.sites import ATTENTION_TARGET_MODULES, FAMILIES, AttentionSite
from kgpeft.tuners.targets import TargetModulesError, resolve_target_modules
from kgpeft.tuners.token import TokenFusion, TokenMode, TokenState

__all__ = [
    "ATTENTION_TARGET_MODULES",
    "FAMILIES",
    "KNOWLEDGE_MODES",
    "AttentionSite",
    "CrossFusion",
    "CrossMode",
    "CrossState",
    "FactCandidates",
    "FusionMode",
    "KGLoraConfig",
    "KGLoraModel",
    "KnowledgeBatch",
    "KnowledgeContext",
    "KnowledgeError",
    "KnowledgeMode",
    "KnowledgeState",
    "MemoryMode",
    "MemoryState",
    "PrefixError",
    "PrefixMode",
    "PrefixState",
    "TargetModulesError",
    "TokenFusion",
    "TokenMode",
    "TokenState",
    "resolve_target_modules",
]
