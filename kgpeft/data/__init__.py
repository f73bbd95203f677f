"""The data path: rows to examples, the dataset (links, subgraphs, facts, tokens), the knowledge controls, the collator.

- :mod:`kgpeft.data.examples`: :func:`as_example` and :class:`DataError`: a JSON row as a
  :class:`~kgpeft.tasks.TaskExample`, each field checked, bad rows named.
- :mod:`kgpeft.data.dataset`: :class:`KnowledgeDataset`: each example linked, given its retrieved
  subgraph and fact ranking, and tokenised, once.
- :mod:`kgpeft.data.truncation`: :class:`Truncation`: what a dataset's token limits cut, and
  which cuts removed the question's text or an answer's name.
- :mod:`kgpeft.data.controls`: the knowledge an example gets instead of its own: the
  :data:`CONTROLS` of an evaluation (``correct``, ``shuffled``, ``none``), knowledge dropout for
  training, and the explainer's ablations.
- :mod:`kgpeft.data.collator`: :class:`KnowledgeCollator`: padded tokens and one graph batch.
"""

from kgpeft.data.collator import KnowledgeCollator
from kgpeft.data.controls import CONTROLS, Control
from kgpeft.data.dataset import CHARS_PER_TOKEN, KnowledgeDataset
from kgpeft.data.examples import DataError, as_example
from kgpeft.data.truncation import Truncation

__all__ = [
    "CHARS_PER_TOKEN",
    "CONTROLS",
    "Control",
    "DataError",
    "KnowledgeCollator",
    "KnowledgeDataset",
    "Truncation",
    "as_example",
]
