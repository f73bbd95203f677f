"""The names of :func:`~kgpeft.datasets.synthetic_graph.synthetic`'s entities: labels, aliases and descriptions.

Labels are one to three words (mostly two, e.g. ``"amber falcon"``) from the WordNet word list
shipped in ``data/synthetic_words.txt``, drawn by a seeded popularity order; aliases are
variants of the label (words reordered, a word dropped, a word added) or a new name, and
descriptions short phrases (``"wooden bridge near the river"``).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np

from kgpeft.datasets.synthetic_triples import CHUNK, zipf

# Zipf-like offset of the words' popularity: p(rank) ∝ 1 / (rank + offset).
_WORD_OFFSET = 20.0
# Label lengths 1, 2 and 3 words; the chance that a modifier is an adjective (else a noun).
_LABEL_WORDS = (0.2, 0.6, 0.2)
_ADJECTIVE_MODIFIER = 0.75
_PREPOSITIONS = ("of", "in", "from", "with", "near", "for", "on", "under", "beyond", "without", "about", "over")


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
        return self.nouns[zipf(self.rng, self.nouns.size, size, _WORD_OFFSET)]

    def adjective(self, size: int) -> np.ndarray:
        return self.adjectives[zipf(self.rng, self.adjectives.size, size, _WORD_OFFSET)]

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


def write_entities(file: Path, rng: np.random.Generator, n: int, aliases: int) -> None:
    words = _Words(rng)
    with open(file, "w", encoding="utf-8", newline="\n") as f:
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            labels, joined, descriptions = _names(words, size, aliases)
            keys = range(start + 1, start + size + 1)
            f.write("".join(map("Q{}\t{}\t{}\t{}\n".format, keys, labels, joined, descriptions)))
