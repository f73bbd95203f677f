"""Synthetic knowledge graphs of any size, for scale benchmarks.

:func:`synthetic` writes a folder that :func:`~kgpeft.graph.readers.read_pykeen_folder` reads::

    path = synthetic("/tmp/kg-1m", num_entities=1_000_000)
    kg = read_pykeen_folder(path, unknown="error", labels=path / "entities.tsv")

or, from the shell, ``python -m kgpeft.datasets.synthetic_kg OUT --entities N [--relations R]
[--triples T] [--aliases A] [--seed S]``.

The graph has power-law degrees: heads, tails and relations are drawn from Zipf-like
distributions (``p(rank) ∝ 1 / (rank + 10)`` for entities, ``1 / (rank + 1)`` for relations) over
random orders of the entities and relations, so a few hubs take a large share of the triples and
most entities have a handful. There are no self-loops and no repeated triples, within or across
splits. Entities are labelled with one to three words (mostly two, e.g. ``"amber falcon"``) from a
WordNet word list shipped in ``data/synthetic_words.txt``; names repeat across entities, as real
ones do. Aliases are variants of the label (words reordered, a word dropped, a word added) or a
new name, and descriptions short phrases (``"wooden bridge near the river"``).

Everything is computed on numpy arrays and written in chunks of about a million rows, so that
5 million entities and 20 million triples take well under two minutes and memory stays bounded
by the integer arrays (about 1 GB at that size), not by Python strings.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import numbers
import os
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from kgpeft.utils import atomic_folder

FORMAT_VERSION = 1
# Rows generated and written at a time.
_CHUNK = 1 << 20
# Candidate triples drawn at a time (their random numbers live only per chunk) and at most per round.
_DRAW_CHUNK = 1 << 22
_MAX_DRAW = 1 << 25
# Key spaces up to this size are listed outright once random draws stop finding new triples.
_ENUMERATE = 1 << 24
# Zipf-like offsets: p(rank) ∝ 1 / (rank + offset).
_ENTITY_OFFSET = 10.0
_RELATION_OFFSET = 1.0
_WORD_OFFSET = 20.0
# Label lengths 1, 2 and 3 words; the chance that a modifier is an adjective (else a noun).
_LABEL_WORDS = (0.2, 0.6, 0.2)
_ADJECTIVE_MODIFIER = 0.75
_PREPOSITIONS = ("of", "in", "from", "with", "near", "for", "on", "under", "beyond", "without", "about", "over")


def synthetic(
    path: str | os.PathLike,
    num_entities: int,
    num_relations: int = 100,
    num_triples: int | None = None,
    aliases_per_entity: int = 2,
    seed: int = 0,
    valid_fraction: float = 0.01,
    test_fraction: float = 0.01,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic KG folder at ``path`` and return ``path``.

    The folder holds ``train.txt``, ``valid.txt`` and ``test.txt`` (tab-separated head, relation
    and tail keys, as :func:`~kgpeft.graph.readers.read_pykeen_folder` reads them),
    ``entities.tsv`` (key, label, ``|``-separated aliases, description; see
    :func:`~kgpeft.graph.readers.read_entity_labels`) and ``synthetic.json`` (the parameters and
    counts). Entity keys are ``Q1`` ... ``QN``, relation keys ``P1`` ... ``PR``. The folder is
    written atomically (a temporary sibling renamed into place), and the same arguments give
    byte-identical files.

    The triples are distinct (also across splits) and none joins an entity to itself. Every
    entity occurs in the training split when it has at least ``num_entities`` triples, and
    every relation when it has at least ``num_relations``; with fewer, as many as possible do
    (``entities.tsv`` still lists all entities, so a KG read with it has all of them). Valid and
    test triples use only entities and relations of the training split, so
    ``unknown="error"`` reads them.

    Args:
        path: the folder to write.
        num_entities: the number of entities, at least 2.
        num_relations: the number of relations. (default: 100)
        num_triples: the number of triples over all three splits. (default: ``4 * num_entities``)
        aliases_per_entity: the aliases of each entity, all different from its label and each
            other. (default: 2)
        seed: the seed of :func:`numpy.random.default_rng`. (default: 0)
        valid_fraction: the share of the triples in ``valid.txt``, in [0, 1); a positive share
            gives at least one triple. With 0 the file is empty, which
            :func:`~kgpeft.graph.readers.read_pykeen_folder` refuses. (default: 0.01)
        test_fraction: the share of the triples in ``test.txt``, likewise. (default: 0.01)
        overwrite: replace an existing folder at ``path``. (default: ``False``)

    Raises:
        ValueError: an argument is out of range (the message names it), or the entities and
            relations cannot make that many distinct triples.
        FileExistsError: ``path`` exists and ``overwrite`` is off.
    """
    num_entities = _check_int("num_entities", num_entities, 2)
    num_relations = _check_int("num_relations", num_relations, 1)
    num_triples = 4 * num_entities if num_triples is None else _check_int("num_triples", num_triples, 1)
    aliases_per_entity = _check_int("aliases_per_entity", aliases_per_entity, 0)
    seed = _check_int("seed", seed, 0)
    valid_fraction = _check_fraction("valid_fraction", valid_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    if not isinstance(overwrite, bool):
        raise ValueError(f"`overwrite` should be True or False, got {overwrite!r}.")
    if valid_fraction + test_fraction >= 1:
        raise ValueError(
            f"`valid_fraction` + `test_fraction` should be below 1 to leave training triples, "
            f"got {valid_fraction} + {test_fraction}."
        )
    n, r = num_entities, num_relations
    if n * n * r >= 1 << 63:
        raise ValueError(f"num_entities**2 * num_relations should be below 2**63, got {n}**2 * {r}.")
    capacity = n * (n - 1) * r
    if num_triples > capacity:
        raise ValueError(
            f"num_triples={num_triples} is more than the {capacity} distinct triples without self-loops "
            f"that {n} entities and {r} relations allow."
        )
    n_valid, n_test = _split_size(num_triples, valid_fraction), _split_size(num_triples, test_fraction)
    n_train = num_triples - n_valid - n_test
    if n_train < 1:
        raise ValueError(
            f"num_triples={num_triples} leaves no training triples after {n_valid} valid and {n_test} test "
            f"triples; raise num_triples or lower valid_fraction/test_fraction."
        )
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")

    graph_rng, text_rng = np.random.default_rng(seed).spawn(2)
    train, valid, test, used_entities, used_relations = _triples(graph_rng, n, r, n_train, n_valid + n_test, n_valid)
    info = {
        "generator": "kgpeft.datasets.synthetic",
        "format_version": FORMAT_VERSION,
        "parameters": {
            "num_entities": n,
            "num_relations": r,
            "num_triples": num_triples,
            "aliases_per_entity": aliases_per_entity,
            "seed": seed,
            "valid_fraction": valid_fraction,
            "test_fraction": test_fraction,
        },
        "counts": {
            "entities": n,
            "relations": r,
            "triples": {"train": int(train.size), "valid": int(valid.size), "test": int(test.size)},
            "train_entities": used_entities,
            "train_relations": used_relations,
            "aliases": n * aliases_per_entity,
        },
        "files": {"train": "train.txt", "valid": "valid.txt", "test": "test.txt", "labels": "entities.tsv"},
    }
    with atomic_folder(target, overwrite=overwrite) as tmp:
        for name, keys in (("train", train), ("valid", valid), ("test", test)):
            _write_triples(tmp / f"{name}.txt", keys, n, r)
        del train, valid, test
        _write_entities(tmp / "entities.tsv", text_rng, n, aliases_per_entity)
        (tmp / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return target


# ---------------------------------------------------------------------------- arguments


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` should be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` should be an integer >= {minimum}, got {value}.")
    return int(value)


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`{name}` should be a number in [0, 1), got {value!r}.")
    return float(value)


def _split_size(total: int, fraction: float) -> int:
    """``total * fraction`` rounded half up, at least 1 when ``fraction`` is positive."""
    return 0 if fraction == 0 else max(1, math.floor(total * fraction + 0.5))


# ---------------------------------------------------------------------------- triples
# A triple (h, r, t) of ids is one int64 key, (h * R + r) * N + t; sorted key arrays make
# membership and deduplication numpy searches.


def _zipf(rng: np.random.Generator, n: int, size: int, offset: float) -> np.ndarray:
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


def _triples(
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
    for start in range(0, train_sorted.size, _CHUNK):
        h, rel, t = _decode(train_sorted[start : start + _CHUNK], n, r)
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
    ranks = _zipf(rng, n, anchors, _ENTITY_OFFSET)
    partner = np.where(as_head, tails[ranks], heads[ranks])
    loops = np.flatnonzero(partner == anchor)
    while loops.size:
        ranks = _zipf(rng, n, loops.size, _ENTITY_OFFSET)
        partner[loops] = np.where(as_head[loops], tails[ranks], heads[ranks])
        loops = loops[partner[loops] == anchor[loops]]
    h = np.concatenate([order[0 : 2 * pairs : 2], np.where(as_head, anchor, partner)])
    t = np.concatenate([order[1 : 2 * pairs : 2], np.where(as_head, partner, anchor)])
    del order, anchor, partner, as_head, ranks
    rel = relations[_zipf(rng, r, h.size, _RELATION_OFFSET)]
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
            hi = _zipf(rng, head_pool.size, size, _ENTITY_OFFSET)
            ri = _zipf(rng, relation_pool.size, size, _RELATION_OFFSET)
            ti = _zipf(rng, tail_pool.size, size, _ENTITY_OFFSET)
        h, t = head_pool[hi], tail_pool[ti]
        keep = h != t
        parts.append((h[keep] * r + relation_pool[ri[keep]]) * n + t[keep])
    return np.concatenate(parts)


def _enumerate(pools: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, r: int) -> np.ndarray:
    """All sorted keys of the (small) space ``pools`` spans, self-loops left out."""
    h, rel, t = (np.sort(p) for p in pools)
    keys = (h[:, None, None] * r + rel[None, :, None]) * n + t[None, None, :]
    return keys[np.broadcast_to(h[:, None, None] != t[None, None, :], keys.shape)]


def _write_triples(file: Path, keys: np.ndarray, n: int, r: int) -> None:
    line = "Q{}\tP{}\tQ{}\n".format
    with open(file, "w", encoding="utf-8", newline="\n") as f:
        for start in range(0, keys.size, _CHUNK):
            h, rel, t = _decode(keys[start : start + _CHUNK], n, r)
            f.write("".join(map(line, (h + 1).tolist(), (rel + 1).tolist(), (t + 1).tolist())))


# ---------------------------------------------------------------------------- labels


@functools.lru_cache(maxsize=1)
def _vocabulary() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The shipped words, and the ids of the nouns and of the adjectives among them."""
    text = (resources.files("kgpeft.datasets") / "data" / "synthetic_words.txt").read_text(encoding="utf-8")
    words, nouns, adjectives = [], [], []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        word, pos = line.split("\t")
        if "n" in pos:
            nouns.append(len(words))
        if "a" in pos:
            adjectives.append(len(words))
        words.append(word)
    return tuple(words), np.array(nouns, dtype=np.int64), np.array(adjectives, dtype=np.int64)


class _Words:
    """Draws word ids: nouns and adjectives by a seeded popularity order (Zipf-like)."""

    def __init__(self, rng: np.random.Generator) -> None:
        words, nouns, adjectives = _vocabulary()
        self.rng = rng
        self.empty = len(words)  # the id of "no word"
        self.nouns, self.adjectives = rng.permutation(nouns), rng.permutation(adjectives)
        # Word ids to text: followed by a space (all but a name's last word), or not (its last word).
        self.spaced = [w + " " for w in words] + [""]
        self.last = [*words, ""]

    def noun(self, size: int) -> np.ndarray:
        return self.nouns[_zipf(self.rng, self.nouns.size, size, _WORD_OFFSET)]

    def adjective(self, size: int) -> np.ndarray:
        return self.adjectives[_zipf(self.rng, self.adjectives.size, size, _WORD_OFFSET)]

    def modifier(self, size: int, avoid: tuple[np.ndarray, ...] = ()) -> np.ndarray:
        """Adjectives, or now and then nouns ("river falcon"), none equal to a word of ``avoid`` in its row."""
        out = np.where(self.rng.random(size) < _ADJECTIVE_MODIFIER, self.adjective(size), self.noun(size))
        bad = np.flatnonzero(np.logical_or.reduce([out == a for a in avoid])) if avoid else np.empty(0, np.int64)
        while bad.size:
            out[bad] = self.adjective(bad.size)
            bad = bad[np.logical_or.reduce([out[bad] == a[bad] for a in avoid])]
        return out

    def text(self, slots: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> list[str]:
        """Names of four word slots each: the first three may be empty, the last is a word."""
        spaced, last = self.spaced, self.last
        a, b, c, d = (s.tolist() for s in slots)
        return [f"{spaced[w]}{spaced[x]}{spaced[y]}{last[z]}" for w, x, y, z in zip(a, b, c, d, strict=True)]


def _names(words: _Words, size: int, aliases: int) -> tuple[list[str], list[str], list[str]]:
    """Labels, ``|``-joined aliases and descriptions of ``size`` entities."""
    rng, empty = words.rng, words.empty
    count = rng.choice(3, size=size, p=_LABEL_WORDS) + 1
    head = words.noun(size)
    m2 = np.where(count >= 2, words.modifier(size, (head,)), empty)
    m1 = np.where(count >= 3, words.modifier(size, (head, m2)), empty)
    blank = np.full(size, empty)
    label = (blank, m1, m2, head)
    # Aliases: 0 words reordered, 1 a modifier dropped, 2 a modifier added, 3 a new name. One-word labels take 2 or 3.
    alias_slots: list[tuple[np.ndarray, ...]] = []
    one, two = count == 1, count == 2
    for _ in range(aliases):
        kind = rng.integers(4, size=size)
        kind[one] = 2 + kind[one] % 2
        extra = _added(words, label, count)
        reorder = tuple(
            np.where(two, a, b) for a, b in zip((blank, blank, head, m2), (blank, m2, m1, head), strict=True)
        )
        drop = (blank, blank, np.where(two, empty, m2), head)
        new = (blank, blank, words.adjective(size), words.noun(size))
        options = (reorder, drop, extra, new)
        slots = tuple(np.choose(kind, [o[i] for o in options]) for i in range(4))
        # Replace any alias equal to the label or an earlier alias by a fresh added-word variant.
        bad = np.flatnonzero(_clashes(slots, [label, *alias_slots]))
        while bad.size:
            sub_label = tuple(s[bad] for s in label)
            for s, fresh in zip(slots, _added(words, sub_label, count[bad]), strict=True):
                s[bad] = fresh
            earlier = [tuple(s[bad] for s in name) for name in alias_slots]
            bad = bad[_clashes(tuple(s[bad] for s in slots), [sub_label, *earlier])]
        alias_slots.append(slots)
    labels = words.text(label)
    alias_texts = [words.text(s) for s in alias_slots]
    joined = ["|".join(row) for row in zip(*alias_texts, strict=True)] if alias_texts else [""] * size
    # Descriptions: "[adjective ]noun preposition [the ]noun", e.g. "wooden bridge near the river".
    adjective = np.where(rng.random(size) < 0.6, words.adjective(size), empty)
    first, second = words.noun(size), words.noun(size)
    preposition = rng.integers(len(_PREPOSITIONS), size=size).tolist()
    the = (rng.random(size) < 0.5).tolist()
    spaced, last = words.spaced, words.last
    linking = [f"{p} the " for p in _PREPOSITIONS], [f"{p} " for p in _PREPOSITIONS]
    descriptions = [
        f"{spaced[a]}{spaced[x]}{linking[0 if d else 1][p]}{last[y]}"
        for a, x, p, d, y in zip(adjective.tolist(), first.tolist(), preposition, the, second.tolist(), strict=True)
    ]
    return labels, joined, descriptions


def _added(words: _Words, label: tuple[np.ndarray, ...], count: np.ndarray) -> tuple[np.ndarray, ...]:
    """The label with a new modifier in front (in the first free slot)."""
    blank, m1, m2, head = label
    x = words.modifier(head.size, (head, m2, m1))
    return (
        np.where(count == 3, x, blank),
        np.where(count == 2, x, m1),
        np.where(count == 1, x, m2),
        head,
    )


def _clashes(name: tuple[np.ndarray, ...], others: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    """Rows where ``name`` is the same as one of ``others`` (slots are left-packed and words distinct,
    so equal text means equal slots)."""
    same = np.zeros(name[0].shape, dtype=bool)
    for other in others:
        same |= np.logical_and.reduce([x == y for x, y in zip(name, other, strict=True)])
    return same


def _write_entities(file: Path, rng: np.random.Generator, n: int, aliases: int) -> None:
    words = _Words(rng)
    with open(file, "w", encoding="utf-8", newline="\n") as f:
        for start in range(0, n, _CHUNK):
            size = min(_CHUNK, n - start)
            labels, joined, descriptions = _names(words, size, aliases)
            keys = range(start + 1, start + size + 1)
            f.write("".join(map("Q{}\t{}\t{}\t{}\n".format, keys, labels, joined, descriptions)))


# ---------------------------------------------------------------------------- command line


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kgpeft.datasets.synthetic_kg",
        description="Write a synthetic KG folder (train/valid/test.txt, entities.tsv, synthetic.json).",
    )
    parser.add_argument("out", type=Path, help="the folder to write")
    parser.add_argument("--entities", type=int, required=True, help="number of entities")
    parser.add_argument("--relations", type=int, default=100, help="number of relations (default: 100)")
    parser.add_argument("--triples", type=int, default=None, help="triples over all splits (default: 4 x entities)")
    parser.add_argument("--aliases", type=int, default=2, help="aliases per entity (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--valid-fraction", type=float, default=0.01, help="share of valid triples (default: 0.01)")
    parser.add_argument("--test-fraction", type=float, default=0.01, help="share of test triples (default: 0.01)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        folder = synthetic(
            args.out,
            args.entities,
            num_relations=args.relations,
            num_triples=args.triples,
            aliases_per_entity=args.aliases,
            seed=args.seed,
            valid_fraction=args.valid_fraction,
            test_fraction=args.test_fraction,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    counts = json.loads((folder / "synthetic.json").read_text(encoding="utf-8"))["counts"]
    splits = counts["triples"]
    print(f"Wrote {folder} in {time.perf_counter() - started:.1f} s")
    print(f"  entities:  {counts['entities']} ({counts['aliases']} aliases)")
    print(f"  relations: {counts['relations']}")
    print(f"  triples:   train {splits['train']}, valid {splits['valid']}, test {splits['test']}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
