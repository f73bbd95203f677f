"""Real knowledge graphs that work offline.

``load(name)`` returns a :class:`~kgpeft.graph.KnowledgeGraph`:

- ``"nations"``, ``"kinships"``, ``"umls"``: the standard link-prediction benchmarks,
  shipped inside kgpeft as train/valid/test splits (copied from PyKEEN, MIT licence).
- :func:`synthetic` writes a synthetic KG of any size (power-law degrees, WordNet-word
  labels and aliases) for scale benchmarks; see :mod:`kgpeft.datasets.synthetic_kg`.
- ``"wordnet"``: WordNet 3.0 read from the system database (Debian packages
  ``wordnet-base`` and ``wordnet-sense-index``). The first load parses the database and
  saves a compact copy in the cache folder; later loads read that copy.

The task builders over WordNet live in :mod:`kgpeft.tasks`; ``kgpeft.datasets.hypernym_qa``,
``relation_qa``, ``supersense_classification``, ``gloss_generation``, ``TaskExample``, ``split_by_entity``,
``SUPERSENSES`` and ``MissingKGDataError`` still resolve here, to those.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from kgpeft.errors import UnknownDatasetError
from kgpeft.graph import KnowledgeGraph
from kgpeft.graph.readers import read_pykeen_folder
from kgpeft.io import cache_dir

SHIPPED = ("nations", "kinships", "umls")
# Names that moved to kgpeft.tasks. They are resolved on first use: kgpeft.tasks reads
# kgpeft.datasets.wordnet, so importing it while this package loads would be circular.
_MOVED_TO_TASKS = (
    "SUPERSENSES",
    "MissingKGDataError",
    "TaskExample",
    "gloss_generation",
    "hypernym_qa",
    "relation_qa",
    "split_by_entity",
    "supersense_classification",
)
DATASETS = (*SHIPPED, "wordnet")
WORDNET_READER_VERSION = 2  # bump when the WordNet reader changes what it builds


def __getattr__(name: str):
    if name == "synthetic":  # resolved on first use, so that `python -m kgpeft.datasets.synthetic_kg` runs cleanly
        from kgpeft.datasets.synthetic_kg import synthetic

        return synthetic
    if name in _MOVED_TO_TASKS:
        import kgpeft.tasks

        return getattr(kgpeft.tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def shipped_path(name: str) -> Path:
    """The folder holding a shipped dataset's ``train.txt``/``valid.txt``/``test.txt``."""
    return Path(str(resources.files("kgpeft.datasets") / "data" / name))


def load(name: str, *, cache: bool = True) -> KnowledgeGraph:
    """Load a real KG by name (one of :data:`DATASETS`).

    Args:
        name: ``"nations"``, ``"kinships"``, ``"umls"`` or ``"wordnet"``.
        cache: for WordNet, read and write the parsed copy in :func:`cache_dir`.
            (default: ``True``)
    """
    key = name.lower()
    if key in SHIPPED:
        kg = read_pykeen_folder(shipped_path(key), unknown="error")
        kg.info["name"] = key
        return kg
    if key == "wordnet":
        return _load_wordnet(cache)
    raise UnknownDatasetError(f"Unknown dataset {name!r}; available: {', '.join(DATASETS)}.")


def _load_wordnet(cache: bool) -> KnowledgeGraph:
    from kgpeft.datasets.wordnet import WORDNET_FILES, load_wordnet, wordnet_dir

    source = wordnet_dir()
    if not cache:
        return load_wordnet(source)
    # The cached copy is keyed by the database files' sizes and times, so an upgraded
    # database (or a newer reader) is parsed afresh.
    files = [source / f for f in WORDNET_FILES]
    stamp = [
        str(source),
        WORDNET_READER_VERSION,
        *((f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists()),
    ]
    digest = hashlib.sha256(repr(stamp).encode()).hexdigest()[:16]
    target = cache_dir() / f"wordnet-{digest}"
    if (target / "kg.json").is_file():
        return KnowledgeGraph.load(target)
    kg = load_wordnet(source)
    kg.save(target, overwrite=True)
    return kg


__all__ = [
    "DATASETS",
    "SUPERSENSES",
    "MissingKGDataError",
    "TaskExample",
    "cache_dir",
    "gloss_generation",
    "hypernym_qa",
    "load",
    "relation_qa",
    "shipped_path",
    "split_by_entity",
    "supersense_classification",
    "synthetic",
]
