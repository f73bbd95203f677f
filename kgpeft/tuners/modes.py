"""The registry of knowledge modes: ``KGLoraConfig.knowledge_mode`` names one of these."""

from __future__ import annotations

from kgpeft.tuners.cross import CrossMode
from kgpeft.tuners.memory import MemoryMode
from kgpeft.tuners.mode import KnowledgeMode
from kgpeft.tuners.prefix import PrefixMode
from kgpeft.tuners.token import TokenMode

KNOWLEDGE_MODES: dict[str, type[KnowledgeMode]] = {
    mode.name: mode for mode in (TokenMode, CrossMode, PrefixMode, MemoryMode)
}
