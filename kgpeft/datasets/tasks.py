"""Where the WordNet task builders used to live; they are in :mod:`kgpeft.tasks` now.

Kept so that ``from kgpeft.datasets.tasks import TaskExample`` (and the builders) still work.
"""

from kgpeft.tasks.base import SPLITS, MissingKGDataError, TaskExample, entity_split, split_by_entity
from kgpeft.tasks.gloss_generation import gloss_generation
from kgpeft.tasks.hypernym_qa import hypernym_qa
from kgpeft.tasks.supersense import SUPERSENSE_IDS, SUPERSENSES, supersense_classification

__all__ = [
    "SPLITS",
    "SUPERSENSES",
    "SUPERSENSE_IDS",
    "MissingKGDataError",
    "TaskExample",
    "entity_split",
    "gloss_generation",
    "hypernym_qa",
    "split_by_entity",
    "supersense_classification",
]
