"""Triple edits of :meth:`KnowledgeGraph.edit <kgpeft.graph.KnowledgeGraph.edit>`: resolving triples given by
ids or keys, and removing and adding them with every mistake named (a triple removed that is not there, one
added that already is)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from kgpeft.errors import KGPeftError

# Triples given as a (3, E) id tensor or array, or as (head, relation, tail) rows of ids or keys.
TripleSpec = torch.Tensor | np.ndarray | Sequence[Sequence[int | str]]


class KGEditError(KGPeftError, ValueError):
    """An edit of a knowledge graph cannot be applied: it names an unknown entity or relation, removes a
    triple that is not there, adds one that already is, or adds an entity whose key is taken."""


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
                raise KGEditError(f"`{what}[{i}]` should be a (head, relation, tail) triple, got {row!r}.")
            try:
                rows.append(
                    [lookup(x) if isinstance(x, str) else int(x) for x, lookup in zip(row, lookups, strict=True)]
                )
            except KeyError as e:
                raise KGEditError(f"`{what}[{i}]` {tuple(row)!r}: {e.args[0]}") from None
            except (TypeError, ValueError):
                raise KGEditError(f"`{what}[{i}]` should hold ids or keys, got {tuple(row)!r}.") from None
        ids = np.array(rows, dtype=np.int64).reshape(-1, 3).T
    for row, name, bound in ((0, "head", num_entities), (1, "relation", num_relations), (2, "tail", num_entities)):
        bad = (ids[row] < 0) | (ids[row] >= bound)
        if bad.any():
            i = int(bad.argmax())
            raise KGEditError(f"`{what}` triple {i} has {name} id {ids[row, i]}, but there are {bound} {name}s.")
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
            removals), or one is given twice.
    """
    shape = (num_entities, num_relations, num_entities)
    old = triples.numpy()
    old_key, add_key, remove_key = (np.ravel_multi_index(tuple(t), shape) for t in (old, add, remove))
    for what, ids, key in (("remove", remove, remove_key), ("add", add, add_key)):
        _, first, count = np.unique(key, return_index=True, return_counts=True)
        if (count > 1).any():
            i = int(first[count > 1].min())
            raise KGEditError(f"`{what}` holds the triple {describe(ids[:, i])} more than once.")
    missing = ~np.isin(remove_key, old_key)
    if missing.any():
        i = int(missing.argmax())
        raise KGEditError(
            f"Cannot remove the triple {describe(remove[:, i])}: it is not in the graph"
            + (f" (nor are {int(missing.sum()) - 1} other triples of `remove`)." if missing.sum() > 1 else ".")
        )
    keep = ~np.isin(old_key, remove_key)
    present = np.isin(add_key, old_key[keep])
    if present.any():
        i = int(present.argmax())
        raise KGEditError(
            f"Cannot add the triple {describe(add[:, i])}: it is already in the graph"
            + (f" (as are {int(present.sum()) - 1} other triples of `add`)." if present.sum() > 1 else ".")
        )
    return torch.from_numpy(np.concatenate([old[:, keep], add], axis=1))
