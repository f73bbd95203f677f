"""KG-grounded tasks: a task is one place (:class:`Task`: builder, task type, metric), looked up by name.

- :mod:`kgpeft.tasks.base`: :class:`TaskExample` and the split by entity shared by every
  task (:func:`split_by_entity`, :func:`entity_split`).
- one module per task over WordNet 3.0: :func:`hypernym_qa` (*What kind of thing is a dog?* →
  *canine*), :func:`relation_qa` (*Name a part of a car.* → *accelerator*, nine relations),
  :func:`supersense_classification` (a sentence's target word → one of the 45
  :data:`SUPERSENSES`) and :func:`gloss_generation` (*Define the noun "dog":* → its gloss).
- :func:`graph_qa`: questions from any KG with labels, one per subject and :class:`RelationQuestion`
  (every tail accepted, split by subject); :func:`relation_qa` is its WordNet instance, and
  ``kgpeft task build`` writes its rows as a task file.
- :func:`planted_facts`: a toy KG and questions only one fact answers, with a tiny model to
  train on them in seconds (tests, notebooks, explanations).
- :data:`TASKS` and :func:`get_task`: the registry the pipeline reads.
- :mod:`kgpeft.tasks.types`: :data:`TASK_TYPES` of :class:`TaskType` (model class, rows, evaluation,
  headline metrics) and :func:`get_task_type`.
"""

from kgpeft.tasks.base import (
    SPLITS,
    MissingKGDataError,
    Task,
    TaskExample,
    entity_split,
    split_by_entity,
)
from kgpeft.tasks.gloss_generation import gloss_generation
from kgpeft.tasks.graph_qa import RelationQuestion, TaskTemplateError, graph_qa
from kgpeft.tasks.hypernym_qa import hypernym_qa
from kgpeft.tasks.planted import PlantedFacts, planted_facts
from kgpeft.tasks.registry import TASKS, UnknownTaskError, get_task
from kgpeft.tasks.relation_qa import relation_qa
from kgpeft.tasks.supersense import SUPERSENSE_IDS, SUPERSENSES, supersense_classification, supersense_qa
from kgpeft.tasks.types import TASK_TYPES, TaskType, UnknownTaskTypeError, get_task_type

__all__ = [
    "SPLITS",
    "SUPERSENSES",
    "SUPERSENSE_IDS",
    "TASKS",
    "TASK_TYPES",
    "MissingKGDataError",
    "PlantedFacts",
    "RelationQuestion",
    "Task",
    "TaskExample",
    "TaskTemplateError",
    "TaskType",
    "UnknownTaskError",
    "UnknownTaskTypeError",
    "entity_split",
    "get_task",
    "get_task_type",
    "gloss_generation",
    "graph_qa",
    "hypernym_qa",
    "planted_facts",
    "relation_qa",
    "split_by_entity",
    "supersense_classification",
    "supersense_qa",
]
