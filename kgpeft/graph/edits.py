"""Triple edits of :meth:`KnowledgeGraph.edit <kgpeft.graph.KnowledgeGraph.edit>`: resolving triples given by
ids or keys, and removing and adding them with every mistake named (a triple removed that is not there, one
added that already is)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from kgpeft.errors import KGPeftError

if TYPE_CHECKING:  # annotations only: the KG's module imports this one
    from kgpeft.graph.knowledge_graph import KnowledgeGraph

# Triples given as a (3, E) id tensor or array, or as (head, relation, tail) rows of ids or keys.
TripleSpec = torch.Tensor | np.ndarray | Sequence[Sequence[int | str]]


class KGEditError(KGPeftError, ValueError):
    """An edit of a knowledge graph cannot be applied: it names an unknown entity or relation, removes a
    triple that is not there, adds one that already is, or adds an entity whose key is taken.

    ``what`` (``"add"``, ``"remove"`` or ``"entities"``) and ``index`` locate the faulty item in the
    arguments of :meth:`~kgpeft.graph.KnowledgeGraph.edit` where there is one, so that a caller reading
    edits from a file can name its line; ``reason`` is the message without that location.
    """

    def __init__(self, reason: str, what: str | None = None, index: int | None = None) -> None:
        self.reason, self.what, self.index = reason, what, index
        super().__init__(reason if index is None else f"`{what}[{index}]`: {reason}")


def triple_ids(
    triples: TripleSpec | None,
    what: str,
    entity_id: Callable[[str], int],
    relation_id: Callable[[str], int],
    num_entities: int,
    num_relations: int,
) -> np.ndarray:
    """``triples`` as a ``(3, E)`` int64 array of ids: a tensor or array as given, rows of ids or keys resolved.

    ``what`` names the argument in errors (``"add"``, ``"remove"``).
    """
    if triples is None:
        return np.zeros((3, 0), dtype=np.int64)
    if isinstance(triples, torch.Tensor | np.ndarray):
        ids = np.asarray(triples.cpu() if isinstance(triples, torch.Tensor) else triples)
        if ids.ndim != 2 or ids.shape[0] != 3 or (ids.size and ids.dtype.kind not in "iu"):
            raise KGEditError(f"`{what}` should be a (3, E) integer array of ids, got {ids.dtype} {ids.shape}.")
        ids = ids.astype(np.int64)
    else:
        rows, lookups = [], (entity_id, relation_id, entity_id)
        for i, row in enumerate(triples):
            if isinstance(row, str) or len(row) != 3:
                raise KGEditError(f"should be a (head, relation, tail) triple, got {row!r}.", what, i)
            try:
                rows.append(
                    [lookup(x) if isinstance(x, str) else int(x) for x, lookup in zip(row, lookups, strict=True)]
                )
            except KeyError as e:
                raise KGEditError(f"{e.args[0].rstrip('.')} in {tuple(row)!r}.", what, i) from None
            except (TypeError, ValueError):
                raise KGEditError(f"should hold ids or keys, got {tuple(row)!r}.", what, i) from None
        ids = np.array(rows, dtype=np.int64).reshape(-1, 3).T
    for row, name, bound in ((0, "head", num_entities), (1, "relation", num_relations), (2, "tail", num_entities)):
        bad = (ids[row] < 0) | (ids[row] >= bound)
        if bad.any():
            i = int(bad.argmax())
            raise KGEditError(f"{name} id {ids[row, i]} is out of range: there are {bound} {name}s.", what, i)
    return ids


def edited_triples(
    triples: torch.Tensor,
    add: np.ndarray,
    remove: np.ndarray,
    num_entities: int,
    num_relations: int,
    describe: Callable[[np.ndarray], str],
) -> torch.Tensor:
    """``triples`` without every copy of the ``remove`` triples, then the ``add`` triples appended.

    The kept triples keep their order, so an edit moves no other triple's column but past a removed one.
    ``describe`` names a ``(3,)`` id triple in errors.

    Raises:
        KGEditError: a triple to remove is not in ``triples``, a triple to add already is (after the
            removals), or one is given twice; located at the first such item.
    """
    shape = (num_entities, num_relations, num_entities)
    old = triples.numpy()
    old_key, add_key, remove_key = (np.ravel_multi_index(tuple(t), shape) for t in (old, add, remove))
    for what, ids, key in (("remove", remove, remove_key), ("add", add, add_key)):
        order = np.argsort(key, kind="stable")
        repeat = order[1:][key[order][1:] == key[order][:-1]]
        if repeat.size:
            i = int(repeat.min())
            raise KGEditError(f"the triple {describe(ids[:, i])} is given twice.", what, i)
    missing = ~np.isin(remove_key, old_key)
    if missing.any():
        i = int(missing.argmax())
        raise KGEditError(f"Cannot remove the triple {describe(remove[:, i])}: it is not in the graph.", "remove", i)
    keep = ~np.isin(old_key, remove_key)
    present = np.isin(add_key, old_key[keep])
    if present.any():
        i = int(present.argmax())
        raise KGEditError(f"Cannot add the triple {describe(add[:, i])}: it is already in the graph.", "add", i)
    return torch.from_numpy(np.concatenate([old[:, keep], add], axis=1))


def checked_inverses(inverses: Mapping[str, str], relation_index: Mapping[str, int]) -> dict[str, str]:
    """``inverses`` (relation key to the key of the relation stating the same link reversed) checked: every key
    names a relation, and each pair is given both ways (``inverses[inverses[r]] == r``; a symmetric relation
    is its own inverse).

    Raises:
        ValueError: a key that names no relation, or a pair given one way only; the message names it.
    """
    inverses = dict(inverses)
    for key, inverse in inverses.items():
        for name in (key, inverse):
            if name not in relation_index:
                raise ValueError(f"`inverse_relations` names {name!r}, which is not a relation key.")
        if inverses.get(inverse) != key:
            raise ValueError(
                f"`inverse_relations` maps {key!r} to {inverse!r} but {inverse!r} to {inverses.get(inverse)!r}; "
                f"give each pair both ways ({inverse!r}: {key!r})."
            )
    return inverses


def with_inverse_triples(kg: KnowledgeGraph, add: np.ndarray, remove: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``add`` and ``remove`` (``(3, E)`` ids) with the inverse triples ``kg`` states beside them: ``(h, r, t)``
    stated as ``(t, r', h)`` too, ``r'`` its inverse in ``kg.inverse_relations``. A removed triple's inverse is
    removed where ``kg`` holds it, an added one's added where ``kg`` does not hold it after the removals; each
    follows those given, once."""
    inverse = np.full(kg.num_relations, -1, dtype=np.int64)
    for key, other in kg.inverse_relations.items():
        inverse[kg.relation_id(key)] = kg.relation_id(other)
    shape = (kg.num_entities, kg.num_relations, kg.num_entities)
    old_key = np.ravel_multi_index(tuple(kg.triples.numpy()), shape)

    def inverses(ids: np.ndarray) -> np.ndarray:
        has = inverse[ids[1]] >= 0
        mirrored = np.stack([ids[2, has], inverse[ids[1, has]], ids[0, has]])
        key = np.ravel_multi_index(tuple(mirrored), shape)
        given = np.ravel_multi_index(tuple(ids), shape)
        return mirrored[:, ~np.isin(key, given)]

    remove_more = inverses(remove)
    remove_more = remove_more[:, np.isin(np.ravel_multi_index(tuple(remove_more), shape), old_key)]
    remove = np.concatenate([remove, remove_more], axis=1)
    kept = old_key[~np.isin(old_key, np.ravel_multi_index(tuple(remove), shape))]
    add_more = inverses(add)
    add_more = add_more[:, ~np.isin(np.ravel_multi_index(tuple(add_more), shape), kept)]
    return np.concatenate([add, add_more], axis=1), remove
