"""Delimited triples: a TSV/CSV file (:func:`read_triples`) or a PyKEEN split folder (:func:`read_pykeen_folder`)."""

from __future__ import annotations

import warnings
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import numpy as np

from kgpeft.errors import KGFileNotFoundError, KGFormatError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.graph.readers.building import Vocab, finish, triple_ids
from kgpeft.graph.readers.labels import LabelRows
from kgpeft.graph.readers.lines import Header, PathLike, delimiter_for, triple_rows

UnknownPolicy = Literal["add", "drop", "error"]
SPLIT_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}
#: A split folder's labels file, read unless another is given (the layout :func:`kgpeft.datasets.synthetic` writes).
LABELS_FILE = "entities.tsv"


def read_triples(
    path: PathLike,
    *,
    delimiter: str | None = None,
    header: Header = False,
    columns: Mapping[str, str | int] | None = None,
    labels: PathLike | None = None,
) -> KnowledgeGraph:
    """Read a TSV/CSV file of ``head, relation, tail`` rows (gzip, bzip2 or xz compressed or not).

    Comma-separated files follow CSV quoting (``"New York, NY",located_in,USA`` has three
    fields, quotes removed); tab-separated lines are split at each tab, quotes kept.

    Args:
        path: the triples file.
        delimiter: the column separator. (default: ``","`` for ``.csv`` files, else tab)
        header: skip the first non-blank line (``True``), or skip it when it holds only column
            names such as ``head, relation, tail`` or ``subject, predicate, object`` (``"auto"``).
            (default: ``False``)
        columns: where the triple's parts are, ``{"head": ..., "relation": ..., "tail": ...}``: names
            in the header row, or 0-based column numbers; rows may then have more columns.
            (default: ``None``: exactly three columns, in that order)
        labels: an optional entity labels file (see :func:`read_entity_labels`). Entities
            it names that appear in no triple are kept, without edges. (default: ``None``)
    """
    path = Path(path)
    entities, relations = Vocab(), Vocab()
    ids = triple_ids(triple_rows(path, delimiter_for(path, delimiter), header, columns), entities, relations)
    label_rows = None if labels is None else LabelRows(Path(labels), entities)
    info = {"source": str(path), "reader": "read_triples"}
    return finish(entities, relations, {"train": ids}, info, label_rows)


def read_pykeen_folder(
    path: PathLike,
    *,
    unknown: UnknownPolicy = "add",
    labels: PathLike | None = None,
) -> KnowledgeGraph:
    """Read a folder with ``train.txt``, ``valid.txt`` and ``test.txt`` (tab-separated triples).

    The KG's :attr:`~KnowledgeGraph.triples` are the training split; all three are in
    :attr:`~KnowledgeGraph.splits`. Entity and relation ids follow first appearance in
    train, then valid, then test.

    Args:
        path: the folder.
        unknown: what to do with a valid/test triple whose entity or relation never
            occurs in training. ``"add"`` keeps it and adds the entity to the vocabulary
            (it has no edges in the graph; text features still describe it); ``"drop"``
            removes the triple and counts it in ``kg.info["unknown_dropped"]`` with a
            warning; ``"error"`` raises, naming file and line. (default: ``"add"``)
        labels: an entity labels file (see :func:`read_entity_labels`). (default: the folder's
            :data:`LABELS_FILE`, ``entities.tsv``, if it has one, as :func:`~kgpeft.datasets.synthetic` writes)
    """
    folder = Path(path)
    if not folder.is_dir():
        raise KGFileNotFoundError(f"KG folder not found: {folder}")
    missing = [f for f in SPLIT_FILES.values() if not (folder / f).is_file()]
    if missing:
        held = sorted(p.name for p in folder.iterdir())[:8]
        raise KGFileNotFoundError(
            f"{folder} is neither a saved KG folder (no kg.json) nor a PyKEEN split folder (no "
            f"{', '.join(missing)}); it holds {', '.join(held) or 'nothing'}. Name its files: "
            "`kg: {triples: FILE, labels: FILE}`, or write a KG folder with "
            "`kgpeft kg import FILE --labels FILE --out DIR`."
        )
    files = {split: folder / name for split, name in SPLIT_FILES.items()}
    if labels is None and (folder / LABELS_FILE).is_file():
        labels = folder / LABELS_FILE
    kg = read_split_files(files, unknown=unknown, labels=labels, delimiter="\t")
    kg.info.update(source=str(folder), reader="read_pykeen_folder")
    return kg


def read_split_files(
    files: Mapping[str, PathLike],
    *,
    unknown: UnknownPolicy = "add",
    labels: PathLike | None = None,
    delimiter: str | None = None,
    header: Header = False,
    columns: Mapping[str, str | int] | None = None,
) -> KnowledgeGraph:
    """Read triples files of named splits, ``{"train": ..., "valid": ..., "test": ...}``, as
    :func:`read_pykeen_folder` reads a folder's (``unknown``, ``labels``), each file as :func:`read_triples`
    reads one (``delimiter``, ``header``, ``columns``). The first split is the graph's triples.
    """
    if unknown not in ("add", "drop", "error"):
        raise ValueError(f"`unknown` should be one of 'add', 'drop', 'error', got {unknown!r}.")
    entities, relations = Vocab(), Vocab()
    split_ids: dict[str, np.ndarray] = {}
    unknown_added = {}
    unknown_dropped = {}
    for i, (split, name) in enumerate(files.items()):
        file = Path(name)
        rows = triple_rows(file, delimiter_for(file, delimiter), header, columns)
        if i == 0:
            split_ids[split] = triple_ids(rows, entities, relations)
            continue
        split_ids[split], added, dropped = _held_out_ids(rows, file, entities, relations, unknown)
        unknown_added[split], unknown_dropped[split] = added, dropped
    if any(unknown_dropped.values()):
        warnings.warn(
            f"Dropped triples with entities or relations unknown to training: {unknown_dropped}.", stacklevel=2
        )
    label_rows = None if labels is None else LabelRows(Path(labels), entities)
    info = {
        "source": [str(f) for f in files.values()],
        "reader": "read_split_files",
        "unknown_policy": unknown,
        "unknown_added": unknown_added,
        "unknown_dropped": unknown_dropped,
    }
    return finish(entities, relations, split_ids, info, label_rows, graph_split=next(iter(files)))


def _held_out_ids(
    rows: Iterator[tuple[int, str, str, str]], file: Path, entities: Vocab, relations: Vocab, unknown: UnknownPolicy
) -> tuple[np.ndarray, int, int]:
    """The ``(3, E)`` ids of a valid or test split's ``rows``, and how many triples with a key
    unknown to training were added and dropped (see ``unknown`` in :func:`read_pykeen_folder`)."""
    known_e, known_r = len(entities.index), len(relations.index)
    ids, added, dropped = array("q"), 0, 0
    e_index, r_index = entities.index, relations.index
    for lineno, h, r, t in rows:
        ids_h, ids_r, ids_t = e_index.get(h, known_e), r_index.get(r, known_r), e_index.get(t, known_e)
        if ids_h >= known_e or ids_r >= known_r or ids_t >= known_e:
            new = [k for k, i, bound in [(h, ids_h, known_e), (r, ids_r, known_r), (t, ids_t, known_e)] if i >= bound]
            if unknown == "error":
                raise KGFormatError(f"{', '.join(map(repr, new))} not in the training split", file, lineno)
            if unknown == "drop":
                dropped += 1
                continue
            added += 1
            ids_h, ids_r, ids_t = entities.add(h), relations.add(r), entities.add(t)
        ids.extend((ids_h, ids_r, ids_t))
    return np.frombuffer(ids, dtype=np.int64).reshape(-1, 3).T, added, dropped
