"""Entity linking: text to KG entity mentions, and mentions to token positions."""

from kgpeft.linking.align import align, align_batch
from kgpeft.linking.entity_linker import EntityLinker
from kgpeft.linking.folding import normalize
from kgpeft.linking.matcher import Mention
from kgpeft.linking.stopwords import ENGLISH_STOPWORDS

__all__ = ["ENGLISH_STOPWORDS", "EntityLinker", "Mention", "align", "align_batch", "normalize"]
