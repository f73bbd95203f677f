"""Turning what a reader read into a :class:`KnowledgeGraph`: keys to ids, repeated triples dropped, names attached."""

from __future__ import annotations

import warnings
from array import array
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch

from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.graph.strings import RaggedStrings, StringTable


class LabelColumns(Protocol):
    """Names read from a labels file, as columns by entity id (see :class:`~kgpeft.graph.readers.labels.LabelRows`)."""

    def columns(self, keys: StringTable) -> tuple[StringTable, RaggedStrings, StringTable]: ...


def triple_ids(rows: Iterator[tuple[int, str, str, str]], entities: Vocab, relations: Vocab) -> np.ndarray:
    """The ``(3, E)`` ids of ``rows``, adding new keys to the vocabularies."""
    ids = array("q")
    add_entity, add_relation, append = entities.add, relations.add, ids.append
    for _, h, r, t in rows:
        append(add_entity(h))
        append(add_relation(r))
        append(add_entity(t))
    return np.frombuffer(ids, dtype=np.int64).reshape(-1, 3).T


class Vocab:
    """Keys to ids, in order of first appearance."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self.index: dict[str, int] = {}
        for k in keys:
            self.add(k)

    def add(self, key: str) -> int:
        index = self.index
        i = index.get(key)
        if i is None:
            i = index[key] = len(index)
        return i

    @property
    def keys(self) -> list[str]:
        return list(self.index)

    def table(self) -> StringTable:
        return StringTable.from_strings(self.index)


def dedupe_triples(triples: np.ndarray, num_entities: int, num_relations: int) -> tuple[np.ndarray, int]:
    """Drop repeated columns of a ``(3, E)`` array, keeping first occurrences in order."""
    h, r, t = triples.astype(np.int64)
    key = (h * num_relations + r) * num_entities + t
    _, first = np.unique(key, return_index=True)
    first.sort()
    return triples[:, first], triples.shape[1] - first.size


def finish(
    entities: Vocab,
    relations: Vocab,
    split_ids: dict[str, np.ndarray | list[tuple[int, int, int]]],
    info: dict,
    labels: dict[str, tuple[str, tuple[str, ...], str]] | LabelColumns | None = None,
    graph_split: str = "train",
) -> KnowledgeGraph:
    """Dedupe each split, attach labels and build the KG (``triples`` is ``graph_split``)."""
    n, r = len(entities.index), len(relations.index)
    splits, dropped = {}, {}
    for name, ids in split_ids.items():
        ids = np.asarray(ids, dtype=np.int64).reshape(-1, 3).T if isinstance(ids, list) else ids
        splits[name], dropped[name] = dedupe_triples(ids, n, r)
    if any(dropped.values()):
        warnings.warn(
            f"Dropped repeated triples: {', '.join(f'{k}: {v}' for k, v in dropped.items() if v)}.", stacklevel=3
        )
    info["duplicates_dropped"] = dropped
    keys = entities.table()
    kwargs = {}
    if labels is not None and not isinstance(labels, dict):
        kwargs["labels"], kwargs["aliases"], kwargs["descriptions"] = labels.columns(keys)
    elif labels is not None:
        kwargs["labels"] = [labels[k][0] if k in labels else k for k in keys]
        kwargs["aliases"] = [labels[k][1] if k in labels else () for k in keys]
        kwargs["descriptions"] = [labels[k][2] if k in labels else "" for k in keys]
    graph = splits[graph_split]
    extra_splits = {k: torch.from_numpy(v) for k, v in splits.items()} if len(splits) > 1 else None
    kg = KnowledgeGraph(keys, relations.keys, torch.from_numpy(graph), splits=extra_splits, info=info, **kwargs)
    kg._entity_index_ = entities.index  # the reader's vocabulary is the key index, checked unique
    return kg
