"""Real knowledge graphs that work offline.

``load(name)`` returns a :class:`~kgpeft.graph.KnowledgeGraph`:

- ``"nations"``, ``"kinships"``, ``"umls"``: the standard link-prediction benchmarks,
  shipped inside kgpeft as train/valid/test splits (copied from PyKEEN, MIT licence).
- :func:`synthetic` writes a synthetic KG of any size (power-law degrees, WordNet-word
  labels and aliases) for scale benchmarks; see :mod:`kgpeft.datasets.synthetic_graph`.
- ``"wordnet"``: WordNet 3.0 read from the system database (Debian packages
  ``wordnet-base`` and ``wordnet-sense-index``). The first load parses the database and
  saves a compact copy in the cache folder; later loads read that copy.

:func:`load_kg` reads what a job config's ``kg`` may say: a dataset name, a saved KG folder, a split
folder or a triples file, or a :class:`KGSource` mapping (triples, labels, format; see
:mod:`kgpeft.datasets.source`). The task builders over WordNet live in :mod:`kgpeft.tasks`.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from kgpeft.datasets.source import KGSource, KGSourceError, as_kg_source, load_source
from kgpeft.datasets.synthetic_graph import synthetic
from kgpeft.datasets.wordnet import WORDNET_FILES, load_wordnet, wordnet_dir
from kgpeft.errors import KGFileNotFoundError, UnknownDatasetError
from kgpeft.graph import KnowledgeGraph, read_pykeen_folder
from kgpeft.io import cache_dir

SHIPPED = ("nations", "kinships", "umls")
DATASETS = (*SHIPPED, "wordnet")
WORDNET_READER_VERSION = 3  # bump when the WordNet reader changes what it builds


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


def load_kg(source: str | Mapping[str, Any] | KGSource) -> KnowledgeGraph:
    """A KG from what a job config's ``kg`` may say.

    ``source`` is a dataset name (:data:`DATASETS`), a saved KG folder, a PyKEEN-style split folder
    (``train.txt``, ``valid.txt``, ``test.txt``, labels from its ``entities.tsv`` if it has one) or a
    triples file, its format guessed from its suffix (``.nt``: N-Triples, ``.csv``: CSV, else TSV;
    ``.gz``, ``.bz2`` and ``.xz`` files are decompressed as they are read); or a :class:`KGSource`
    (or a mapping of its keys, or such a mapping written as a YAML string, ``{triples: t.tsv, labels:
    l.tsv}``) that names the triples, the labels and how to read them.

    Raises:
        KGFileNotFoundError: ``source`` is neither a dataset nor a file or folder; the message lists the datasets
            and the closest one.
        KGFormatError: a file is malformed (the message names it and the line), or its format has no reader.
        KGSourceError: a mapping holds an unknown key or a value that does not fit its files.
    """
    source = as_kg_source(source)
    if isinstance(source, KGSource):
        return load_source(source)
    if source.lower() in DATASETS:
        return load(source)
    if not Path(source).exists():
        close = difflib.get_close_matches(source.lower(), DATASETS, n=1)
        raise KGFileNotFoundError(
            f"KG {source!r} is neither a file nor a dataset (datasets: {', '.join(DATASETS)})"
            + (f"; did you mean {close[0]!r}?" if close else ".")
        )
    return load_source(KGSource(triples=source, header=False))


def _load_wordnet(cache: bool) -> KnowledgeGraph:
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
    "KGSource",
    "KGSourceError",
    "cache_dir",
    "load",
    "load_kg",
    "shipped_path",
    "synthetic",
]
