"""The triples of :func:`~kgpeft.datasets.synthetic_graph.synthetic`: power-law degrees, no self-loops, no repeats.

Heads, tails and relations are drawn from Zipf-like distributions over random orders of the
entities and relations, first so that every entity and relation has a training triple, then
until there are enough distinct triples; valid and test triples use only what training has.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

# Rows generated and written at a time.
CHUNK = 1 << 20
# Candidate triples drawn at a time (their random numbers live only per chunk) and at most per round.
_DRAW_CHUNK = 1 << 22
_MAX_DRAW = 1 << 25
# Key spaces up to this size are listed outright once random draws stop finding new triples.
_ENUMERATE = 1 << 24
# Zipf-like offsets: p(rank) ∝ 1 / (rank + offset).
_ENTITY_OFFSET = 10.0
_RELATION_OFFSET = 1.0
# A triple (h, r, t) of ids is one int64 key, (h * R + r) * N + t; sorted key arrays make
# membership and deduplication numpy searches.


def zipf(rng: np.random.Generator, n: int, size: int, offset: float) -> np.ndarray:
    """``size`` ranks in ``[0, n)`` with density ∝ ``1 / (rank + offset)`` (inverse CDF of the continuous law)."""
    x = rng.random(size)
    x *= math.log1p(n / offset)
    np.expm1(x, out=x)
    x *= offset
    return np.minimum(x.astype(np.int64), n - 1)


def _decode(keys: np.ndarray, n: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    head, rest = np.divmod(keys, n * r)
    rel, tail = np.divmod(rest, n)
    return head, rel, tail


def _isin_sorted(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(values.shape, dtype=bool)
    at = np.searchsorted(sorted_keys, values)
    at[at == sorted_keys.size] = 0
    return sorted_keys[at] == values


def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The union of two sorted key arrays, sorted (a stable sort merges the two runs in linear time)."""
    return np.sort(np.concatenate([a, b]), kind="stable")


def draw_triples(
    rng: np.random.Generator, n: int, r: int, n_train: int, n_eval: int, n_valid: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Train, valid and test keys (train shuffled) and the numbers of entities and relations in train."""
    # Popularity orders: the entity at head rank i is heads[i]; heads and tails have their own.
    heads, tails, relations = rng.permutation(n), rng.permutation(n), rng.permutation(r)
    cover = _coverage(rng, n, r, n_train, heads, tails, relations)
    rest = _draw_distinct(
        rng, cover, n_train - cover.size, (heads, relations, tails), n, r, n * (n - 1) * r - cover.size
    )
    train_sorted = _merge(cover, rest)
    del cover, rest
    # Valid and test triples draw from the entities and relations of the training split, in the same orders.
    seen_entities, seen_relations = np.zeros(n, dtype=bool), np.zeros(r, dtype=bool)
    for start in range(0, train_sorted.size, CHUNK):
        h, rel, t = _decode(train_sorted[start : start + CHUNK], n, r)
        seen_entities[h] = seen_entities[t] = True
        seen_relations[rel] = True
    ne, nr = int(seen_entities.sum()), int(seen_relations.sum())
    pools = (heads[seen_entities[heads]], relations[seen_relations[relations]], tails[seen_entities[tails]])
    free = ne * (ne - 1) * nr - train_sorted.size
    if n_eval > free:
        raise ValueError(
            f"Cannot draw {n_eval} valid and test triples over the {ne} entities and {nr} relations of the "
            f"{train_sorted.size} training triples without repeating one; raise num_triples or lower "
            f"valid_fraction/test_fraction."
        )
    held_out = _draw_distinct(rng, train_sorted, n_eval, pools, n, r, free)
    rng.shuffle(held_out)
    train = train_sorted  # shuffled in place: the sorted copy is no longer needed
    rng.shuffle(train)
    return train, held_out[:n_valid], held_out[n_valid:], ne, nr


def _coverage(
    rng: np.random.Generator, n: int, r: int, budget: int, heads: np.ndarray, tails: np.ndarray, relations: np.ndarray
) -> np.ndarray:
    """Sorted distinct training keys that give every entity (and relation) a triple, within ``budget``.

    With ``budget >= n`` each entity anchors one triple, as head or tail, whose other end is
    drawn by popularity (new entities attach to hubs). With less, some triples join two
    entities that need one (covering both), as many as it takes, or as the budget allows.
    """
    order = rng.permutation(n)
    if budget >= n:
        pairs, anchors = 0, n
    elif 2 * budget >= n:
        pairs, anchors = n - budget, 2 * budget - n
    else:
        pairs, anchors = budget, 0
    anchor = order[2 * pairs : 2 * pairs + anchors]
    as_head = rng.random(anchors) < 0.5
    ranks = zipf(rng, n, anchors, _ENTITY_OFFSET)
    partner = np.where(as_head, tails[ranks], heads[ranks])
    loops = np.flatnonzero(partner == anchor)
    while loops.size:
        ranks = zipf(rng, n, loops.size, _ENTITY_OFFSET)
        partner[loops] = np.where(as_head[loops], tails[ranks], heads[ranks])
        loops = loops[partner[loops] == anchor[loops]]
    h = np.concatenate([order[0 : 2 * pairs : 2], np.where(as_head, anchor, partner)])
    t = np.concatenate([order[1 : 2 * pairs : 2], np.where(as_head, partner, anchor)])
    del order, anchor, partner, as_head, ranks
    rel = relations[zipf(rng, r, h.size, _RELATION_OFFSET)]
    if h.size >= r:
        rel[rng.choice(h.size, r, replace=False)] = np.arange(r)
    else:
        rel[:] = rng.choice(r, h.size, replace=False)
    # Repeats carry the same entities and relation, so dropping them uncovers nothing.
    return np.unique((h * r + rel) * n + t)


def _draw_distinct(
    rng: np.random.Generator,
    taken: np.ndarray,
    need: int,
    pools: tuple[np.ndarray, np.ndarray, np.ndarray],
    n: int,
    r: int,
    free: int,
) -> np.ndarray:
    """``need`` sorted keys not in the sorted ``taken``, heads, relations and tails drawn by rank from ``pools``.

    Draws extra candidates, drops self-loops, repeats and taken keys, and keeps a random
    ``need`` of what is left; when popularity draws stop finding new triples (the space is
    nearly full) they become uniform, and a small space is listed outright.
    """
    if need > free:
        raise ValueError(f"Cannot draw {need} more distinct triples: only {free} remain.")
    out = np.empty(0, dtype=np.int64)
    space = math.prod(p.size for p in pools)
    accept, rounds = 0.9, 0
    while out.size < need:
        left = need - out.size
        if rounds >= 3 and space <= _ENUMERATE:
            rest = _enumerate(pools, n, r)
            rest = rest[~_isin_sorted(rest, taken)]
            rest = rest[~_isin_sorted(rest, out)]
            pick = np.sort(rng.choice(rest.size, left, replace=False))
            return _merge(out, rest[pick])
        m = min(int(left / max(accept, 1e-3) * 1.1) + 1024, _MAX_DRAW)
        found = np.unique(_candidates(rng, m, pools, n, r, uniform=rounds >= 6))
        found = found[~_isin_sorted(found, taken)]
        found = found[~_isin_sorted(found, out)]
        accept = max(found.size / m, 1e-6)
        if found.size > left:
            found = np.delete(found, rng.choice(found.size, found.size - left, replace=False))
        out = _merge(out, found)
        rounds += 1
    return out


def _candidates(
    rng: np.random.Generator, m: int, pools: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, r: int, uniform: bool
) -> np.ndarray:
    """Keys of ``m`` drawn triples, self-loops left out."""
    head_pool, relation_pool, tail_pool = pools
    parts = []
    for start in range(0, m, _DRAW_CHUNK):
        size = min(_DRAW_CHUNK, m - start)
        if uniform:
            hi, ri, ti = (rng.integers(p.size, size=size) for p in pools)
        else:
            hi = zipf(rng, head_pool.size, size, _ENTITY_OFFSET)
            ri = zipf(rng, relation_pool.size, size, _RELATION_OFFSET)
            ti = zipf(rng, tail_pool.size, size, _ENTITY_OFFSET)
        h, t = head_pool[hi], tail_pool[ti]
        keep = h != t
        parts.append((h[keep] * r + relation_pool[ri[keep]]) * n + t[keep])
    return np.concatenate(parts)


def _enumerate(pools: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, r: int) -> np.ndarray:
    """All sorted keys of the (small) space ``pools`` spans, self-loops left out."""
    h, rel, t = (np.sort(p) for p in pools)
    keys = (h[:, None, None] * r + rel[None, :, None]) * n + t[None, None, :]
    return keys[np.broadcast_to(h[:, None, None] != t[None, None, :], keys.shape)]


def write_triples(file: Path, keys: np.ndarray, n: int, r: int) -> None:
    line = "Q{}\tP{}\tQ{}\n".format
    with open(file, "w", encoding="utf-8", newline="\n") as f:
        for start in range(0, keys.size, CHUNK):
            h, rel, t = _decode(keys[start : start + CHUNK], n, r)
            f.write("".join(map(line, (h + 1).tolist(), (rel + 1).tolist(), (t + 1).tolist())))
