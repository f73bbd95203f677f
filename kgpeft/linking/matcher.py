"""The search: an Aho-Corasick automaton over the alias patterns, and the mentions it finds.

:class:`AliasMatcher` holds the alias tables (:mod:`kgpeft.linking.alias_tables`) and the
automaton built from their patterns (pyahocorasick), and turns the matches in folded text
(:mod:`kgpeft.linking.folding`) into :class:`Mention` records, overlaps resolved.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import repeat
from typing import Any, NamedTuple

import ahocorasick
import numpy as np

from kgpeft.linking.alias_tables import ARRAY_NAMES, BLOBS, iter_lines, line_ends

# How many patterns' (candidates, scores) :meth:`AliasMatcher.search` keeps built; it starts over when full.
_MEMO_SIZE = 1 << 17
_new_tuple = tuple.__new__


class Mention(NamedTuple):
    """A span of text linked to candidate entities.

    Args:
        start (int): the offset of the span's first character in the original text.
        end (int): the offset just past its last character, so ``text[start:end] == surface``.
        surface (str): the span as written.
        candidates (tuple[int, ...]): entity ids whose label or alias the span is, most
            likely first.
        scores (tuple[float, ...]): one score per candidate, its share of the prior among
            all the entities that have this alias (so they sum to at most 1).
    """

    start: int
    end: int
    surface: str
    candidates: tuple[int, ...]
    scores: tuple[float, ...]

    @property
    def entity(self) -> int:
        """The top candidate."""
        return self.candidates[0]


def _displaces(mentions: list[Mention], start: int) -> bool:
    """Whether a match at ``start`` that overlaps the last of ``mentions`` takes the place of those it overlaps.

    Of overlapping matches, the leftmost wins, then the longest. The automaton reports
    matches in order of their end, so a match ends no earlier than any mention kept before
    it: it contains every one that starts no earlier than it (those it then replaces, as
    they are removed here), and loses to a kept one that starts before it and overlaps it.
    Only matches that overlap the last mention come here, which is rare in running text.
    """
    i = len(mentions)
    while i and mentions[i - 1].start >= start:
        i -= 1
    if i and mentions[i - 1].end > start:
        return False
    del mentions[i:]
    return True


def _make_automaton(patterns: bytes, num_patterns: int) -> ahocorasick.Automaton:
    """An automaton whose value for the ``p``-th line of ``patterns`` is ``p``.

    ``STORE_INTS`` keeps a C int per pattern instead of a Python object, so the automaton is
    only its trie; its values are 32-bit, which bounds the patterns to ``2**31 - 1``.
    """
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    added = 0
    for lines in iter_lines(patterns):
        # add_word is False for a pattern already there; map calls it without a Python loop.
        if not all(map(automaton.add_word, lines, range(added, added + len(lines)))):
            raise ValueError("a pattern repeats")
        added += len(lines)
    if added != num_patterns:
        raise ValueError(f"{added} patterns, expected {num_patterns}")
    if added:
        automaton.make_automaton()
    return automaton


class AliasMatcher:
    """The alias tables and the automaton over their patterns (see :mod:`kgpeft.linking.alias_tables`).

    :meth:`search` builds the tuples of a :class:`Mention` from the tables on an alias's first
    match, and keeps up to :data:`_MEMO_SIZE` of them, in a list with a slot per pattern.

    Raises:
        ValueError: the patterns repeat, or do not match ``pattern_lengths`` in number.
        UnicodeDecodeError: the patterns are not UTF-8.
    """

    def __init__(self, tables: dict[str, Any]) -> None:
        self._patterns: bytes = tables["patterns"]
        self._pattern_lengths: np.ndarray = tables["pattern_lengths"]
        self._groups: np.ndarray = tables["groups"]
        self._check_aliases: bytes = tables["check_aliases"]
        self._check_ends = line_ends(self._check_aliases)
        self._cand_ptr: np.ndarray = tables["cand_ptr"]
        self._candidates: np.ndarray = tables["candidates"]
        self._scores: np.ndarray = tables["scores"]
        self.num_aliases = self._cand_ptr.size - 1
        self.num_patterns = self._pattern_lengths.size
        self._num_plain = self.num_patterns - (self._groups.size - 1)
        self._automaton = _make_automaton(self._patterns, self.num_patterns)
        # A slot per pattern for what _entry builds: a list, as indexing it is faster than a dict lookup.
        self._memo: list[tuple[int, Any, Any] | None] = [None] * self.num_patterns
        self._memo_size = 0
        self._make_views()

    @property
    def tables(self) -> dict[str, np.ndarray]:
        """The tables as arrays, the blobs as ``uint8`` views, for :func:`numpy.save`."""
        return {
            name: np.frombuffer(getattr(self, f"_{name}"), dtype=np.uint8)
            if name in BLOBS
            else getattr(self, f"_{name}")
            for name in ARRAY_NAMES
        }

    def search(
        self, padded: str, normal: str, segments: list[tuple[str, list[int] | None, int, int]]
    ) -> list[list[Mention]]:
        """The mentions in each text that ``padded`` holds, found in one pass of the automaton.

        ``padded``, ``normal`` and ``segments`` are as :func:`~kgpeft.linking.folding.fold_batch` returns them.
        """
        if self.num_aliases == 0 or not segments:  # an automaton without patterns cannot search
            return [[] for _ in segments]
        memo = self._memo
        results: list[list[Mention]] = []
        rest = iter(segments)
        text, cum, base, limit = next(rest)
        mentions: list[Mention] = []
        free = 0  # where the text after the last kept mention begins
        # Matches come in order of their end, so overlaps are resolved as they come, with no
        # list of matches to sort: see _displaces.
        for pad, value in self._automaton.iter(padded):
            while pad > limit:  # the match ends in a later text
                results.append(mentions)
                mentions, free = [], 0
                text, cum, base, limit = next(rest)
            length, candidates, scores = memo[value] or self._entry(value)
            # `pad` is the position of the space after the match, in `padded` and `normal`.
            if candidates is None:  # an inner-space pattern: `scores` maps its aliases to their payloads
                payload = scores.get(normal[pad - length : pad])
                if payload is None:
                    continue
                candidates, scores = payload
            end = pad - base
            start = end - length
            if cum is not None:
                # Map back to the original text; a match that starts or ends inside the
                # folding of one piece ("s" of "ß" -> "ss"), or before the text, is not a match.
                # The map keeps the order of the offsets that it maps exactly, so overlaps are
                # the same on both sides.
                begin, stop = bisect_left(cum, start), bisect_left(cum, end)
                if cum[begin] != start or cum[stop] != end:
                    continue
                start, end = begin, stop
            # A match that starts before the text (so before `free`) spans two texts.
            if start < free and (start < 0 or not _displaces(mentions, start)):
                continue
            free = end
            # Mention(...) without the keyword-argument handling of its generated __new__.
            mentions.append(_new_tuple(Mention, (start, end, text[start:end], candidates, scores)))
        results.append(mentions)
        for _ in rest:  # the texts after the last match
            results.append([])
        return results

    def _entry(self, pattern: int) -> tuple[int, Any, Any]:
        """What :meth:`search` needs of a matched pattern, built from the tables and memoised.

        The pattern's length, then, for a pattern without an inner space (its one alias), the
        alias's candidates and scores; for one with an inner space, ``None`` and a dict from
        each of its aliases to their ``(candidates, scores)``, to check the match against the text.
        """
        lengths, groups = self._views[:2]
        length = lengths[pattern]
        group = pattern - self._num_plain
        if group < 0:  # a plain pattern is its alias, with the same id
            entry = (length, *self._payload(pattern))
        else:
            aliases = range(groups[group], groups[group + 1])
            names = {self._check_alias(k): self._payload(self._num_plain + k) for k in aliases}
            entry = (length, None, names)
        if self._memo_size >= _MEMO_SIZE:
            self._memo[:] = repeat(None, len(self._memo))  # in place, as search holds the list
            self._memo_size = 0
        self._memo_size += 1
        self._memo[pattern] = entry
        return entry

    def _payload(self, alias: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
        _, _, _, cand_ptr, candidates, scores = self._views
        lo, hi = cand_ptr[alias], cand_ptr[alias + 1]
        return tuple(candidates[lo:hi]), tuple(scores[lo:hi])

    def _check_alias(self, k: int) -> str:
        """The ``k``-th alias with an inner-space pattern (alias id ``num_plain + k``)."""
        ends = self._views[2]
        start = ends[k - 1] + 1 if k else 0
        return self._check_aliases[start : ends[k]].decode()

    def _make_views(self) -> None:
        """Memory views of the tables, which index to Python numbers without numpy's per-call cost."""
        self._views = tuple(
            memoryview(np.ascontiguousarray(a))
            for a in (
                self._pattern_lengths,
                self._groups,
                self._check_ends,
                self._cand_ptr,
                self._candidates,
                self._scores,
            )
        )

    # The automaton is rebuilt from the patterns when unpickled (DataLoader workers with the
    # spawn start method): faster than pickling it, and half the bytes.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_automaton"], state["_memo"], state["_memo_size"], state["_views"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._automaton = _make_automaton(self._patterns, self.num_patterns)
        self._memo = [None] * self.num_patterns
        self._memo_size = 0
        self._make_views()
