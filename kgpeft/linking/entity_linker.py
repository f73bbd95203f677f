"""The :class:`EntityLinker`: text to entity mentions with an Aho-Corasick automaton over the KG's names."""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
import warnings
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate, pairwise, repeat
from pathlib import Path
from typing import Any, NamedTuple

import ahocorasick
import numpy as np

from kgpeft.errors import LinkerFileError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.io import cache_dir as default_cache_dir
from kgpeft.io import file_sha256
from kgpeft.linking.stopwords import ENGLISH_STOPWORDS
from kgpeft.utils import atomic_folder, foreign_entries_or_refuse, paused_gc


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


def _is_word_char(c: str) -> bool:
    # Combining marks count as word characters, so that "e" does not match inside a
    # decomposed "é" (e + U+0301), nor "i" inside "İ".casefold() == "i̇".
    return c.isalnum() or unicodedata.category(c)[0] == "M"


class _FoldTable(dict):
    """A :meth:`str.translate` table that casefolds and turns whitespace and ``_`` into ``" "``.

    It is filled on first use of each character, so that all of Unicode works without
    building a table for all of it. Casefolding (rather than :meth:`str.lower`) has no
    context rules (``lower`` turns a final ``Σ`` into ``ς``), so a span folds the same
    alone as inside its text, and it is Unicode's recommended caseless match.
    """

    def __missing__(self, o: int) -> str:
        c = chr(o)
        self[o] = folded = " " if c.isspace() or c == "_" else c.casefold()
        return folded


class _BoundaryTable(dict):
    """A :meth:`str.translate` table that keeps word characters and turns every other character into ``" "``."""

    def __missing__(self, o: int) -> str:
        c = chr(o)
        self[o] = kept = c if _is_word_char(c) else " "
        return kept


_FOLD = _FoldTable()
_BOUNDARY = _BoundaryTable()
# The same two tables as bytes, for ASCII text: bytes.translate is several times faster than
# str.translate, which looks every character up in a dict.
_ASCII_FOLD = bytes(ord(_FOLD[o]) for o in range(128)) + bytes(range(128, 256))
_ASCII_BOUNDARY = bytes(ord(_BOUNDARY[ord(_FOLD[o])]) for o in range(128)) + bytes(range(128, 256))
_SPACE_RUN = re.compile(r"[\s_]{2,}")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
#: The Unicode normal form in which names and text are compared.
NORMAL_FORM = "NFKC"


def normalize(text: str) -> str:
    """The form in which :class:`EntityLinker` compares names and text.

    Unicode NFKC-normalised (``"e"`` + U+0301 is ``"é"``, ``"ﬁ"`` is ``"fi"``, a no-break space
    is a space), casefolded (a stronger :meth:`str.lower`), ``_`` read as a space, runs of
    whitespace collapsed to one space, leading and trailing whitespace removed. Punctuation is kept.

    Example:
        >>> normalize("  New_York\\n  Cafe\\u0301 ")
        'new york café'
    """
    if text.isascii():  # ASCII is NFKC-normalised already, and bytes.translate is faster
        return " ".join(text.encode().translate(_ASCII_FOLD).decode().split())
    return " ".join(unicodedata.normalize(NORMAL_FORM, text).translate(_FOLD).split())


def _pattern(alias: str) -> str:
    """The normalised ``alias`` with every non-word character turned into a space (``alias`` itself if none)."""
    # A normalised alias is folded already, so the ASCII table (fold, then boundary) keeps it as is.
    pattern = alias.encode().translate(_ASCII_BOUNDARY).decode() if alias.isascii() else alias.translate(_BOUNDARY)
    return alias if pattern == alias else pattern


def _normalized_pieces(text: str) -> list[str]:
    """Per character of ``text``, the folded NFKC form of the piece of ``text`` it ends, or ``""``.

    ``text`` is cut before each character that is not a combining mark and does not compose with
    the piece before it (as Hangul jamo do), so each piece normalises alone as it does in context;
    a piece's form is kept at its last character so that both of its ends map back to ``text``.
    """
    pieces = [""] * len(text)
    start, form = 0, ""
    for i, c in enumerate(text):
        if i > start:
            if not c.isascii():  # an ASCII character neither combines nor composes
                joined = unicodedata.normalize(NORMAL_FORM, text[start : i + 1])
                if unicodedata.combining(c) or joined != form + unicodedata.normalize(NORMAL_FORM, c):
                    form = joined
                    continue
            pieces[i - 1] = form.translate(_FOLD)
            start = i
        form = unicodedata.normalize(NORMAL_FORM, c)
    if text:
        pieces[-1] = form.translate(_FOLD)
    return pieces


def _fold(text: str) -> tuple[str, str, list[int] | None]:
    """``text`` in the two forms that :meth:`EntityLinker.link` searches, and the map back to its offsets.

    Returns the text as :func:`normalize` has it but not stripped; that text with every
    non-word character turned into a space and a space added at both ends; and ``cum``,
    where ``cum[i]`` is the position in the first form at which the piece holding original
    character ``i`` starts (every character of a piece but the last folds to ``""``), or
    ``None`` when the two align one to one.
    """
    if text.isascii():  # ASCII is NFKC-normalised already
        raw = text.encode()
        folded = raw.translate(_ASCII_FOLD).decode()
        if "  " not in folded:
            return (folded, f" {raw.translate(_ASCII_BOUNDARY).decode()} ", None)
        pieces = list(folded)
    elif unicodedata.is_normalized(NORMAL_FORM, text):
        folded = text.translate(_FOLD)
        if len(folded) == len(text) and "  " not in folded:
            return (folded, f" {folded.translate(_BOUNDARY)} ", None)
        pieces = list(map(_FOLD.__getitem__, map(ord, text)))
    else:
        # Normalise only around non-ASCII runs: an ASCII character always starts a piece, but
        # may be the base of a mark that follows it.
        pieces = list(map(_FOLD.__getitem__, map(ord, text)))
        for run in _NON_ASCII_RUN.finditer(text):
            lo, hi = max(run.start() - 1, 0), run.end()
            if not unicodedata.is_normalized(NORMAL_FORM, text[lo:hi]):
                pieces[lo:hi] = _normalized_pieces(text[lo:hi])
    # Only when normalising or casefolding changed the length ("e" + U+0301 -> "é", "ß" -> "ss",
    # "İ" -> "i̇") or whitespace needs collapsing: keep one piece per original character (a run
    # of whitespace keeps its last), so offsets map back.
    for run in _SPACE_RUN.finditer(text):
        pieces[run.start() : run.end() - 1] = [""] * (run.end() - run.start() - 1)
    folded = "".join(pieces)
    return (folded, f" {folded.translate(_BOUNDARY)} ", [0, *accumulate(map(len, pieces))])


def _fold_batch(texts: list[str]) -> tuple[str, str, list[tuple[str, list[int] | None, int, int]]]:
    """``texts`` one after the other, in the forms that :meth:`EntityLinker.link` searches, and the maps back.

    Returns the padded forms of :func:`_fold` in one string, which one pass of the automaton
    searches; the normalised forms, each character at its position in the first string (so
    the pads are spaces there too); and per text ``(text, cum, base, limit)``: the text, the
    ``cum`` of :func:`_fold`, the position of its first character in both strings, and that
    of the pad after its last one, so that a match whose ``pad`` is past ``limit`` is in a
    later text. A match that starts before the first character of the text it ends in spans
    two texts (through the pads between them), and is dropped.
    """
    joined = "\0".join(texts)
    if joined.isascii():  # _fold's fast path, for all the texts at once
        raw = joined.encode()
        folded = raw.translate(_ASCII_FOLD).decode()
        # "\0" is neither a word character nor whitespace: it becomes the one pad between two
        # texts, and neither makes nor hides a run of whitespace.
        if "  " not in folded:
            segments, base = [], 1
            for text in texts:
                segments.append((text, None, base, base + len(text)))
                base += len(text) + 1
            return (f" {raw.translate(_ASCII_BOUNDARY).decode()} ", f" {folded} ", segments)
    segments, paddeds, normals, base = [], [], [], 1
    for text in texts:
        normal, padded, cum = _fold(text)
        segments.append((text, cum, base, base + len(normal)))
        paddeds.append(padded)
        normals.append(normal)
        base += len(padded)  # each text has both its pads here
    return ("".join(paddeds), f" {'  '.join(normals)} ", segments)


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


FORMAT_NAME = "kgpeft.entity_linker"
FORMAT_VERSION = 1
META_FILE = "linker.json"
# The arrays EntityLinker.save writes, one ``<name>.npy`` each (see ``EntityLinker._tables``).
_ARRAY_NAMES = ("patterns", "pattern_lengths", "groups", "check_aliases", "cand_ptr", "candidates", "scores")
# Of them, the UTF-8 blobs, kept in memory as ``bytes``.
_BLOBS = frozenset({"patterns", "check_aliases"})
# How many patterns' (candidates, scores) :meth:`EntityLinker.link` keeps built; it starts over when full.
_MEMO_SIZE = 1 << 17
# The most texts :meth:`EntityLinker.link_batch` searches in one pass: more would gain no
# speed, and this bounds the strings it builds at a time.
_SEARCH_TEXTS = 256
# Bytes of a blob decoded at a time, and strings encoded at a time, so that no pass over all
# patterns holds a Python string per pattern.
_DECODE_CHUNK = 1 << 22
_ENCODE_CHUNK = 1 << 16
_DEFAULT_SETTINGS: dict[str, Any] = {"max_candidates": 8, "min_alias_length": 2, "stopwords": ENGLISH_STOPWORDS}
_new_tuple = tuple.__new__


class EntityLinker:
    r"""Finds the KG's entity names in text, with an Aho-Corasick automaton.

    Every label and alias of ``kg`` becomes a pattern, in the form given by
    :func:`normalize` (NFKC-normalised, casefolded, ``_`` as space, whitespace runs as one
    space), and text is matched in that same form, so ``"New  York"``, ``"new york"`` and
    ``"NEW_YORK"`` all match the alias ``"New York"``, and ``"cafe"`` + U+0301 matches
    ``"café"``; mention offsets are always into the original text. A match must not be
    preceded or followed by a letter, digit or combining mark: ``"cat"`` does not match inside
    ``"category"``, but ``"dog"`` does match in ``"dog."`` and ``"(dog)"``. Punctuation inside
    a name must match exactly (``"t-shirt"`` does not match ``"t shirt"``). Of overlapping
    matches, the leftmost wins, then the longest, so ``"new york city"`` beats ``"new york"``
    and ``"york city"``.

    A name shared by several entities (WordNet's *bank* names 18 synsets) keeps its
    ``max_candidates`` most likely entities, ranked by a prior: ``kg.name_priors`` if the KG
    has them (how likely this name means this entity; when several names of one entity
    normalise to the same form, the highest of their priors), else ``kg.entity_prior``, else
    the degree. Ties are broken by the degree, then the entity id. The score of a candidate
    is its share of the prior among all the entities with that name, or a uniform share when
    their priors are all zero.

    Names that are stopwords or shorter than ``min_alias_length`` characters are not linked,
    since short and function-word lemmas (WordNet has *a*, *i*, *in*, *it*, *be*) would
    otherwise link almost every word of running text. Names without a letter or digit are
    never linked.

    The automaton matches patterns padded with a space against the text with every
    non-word character turned into a space, so that every match it reports already lies on
    word boundaries and the Python work per text is proportional to the number of names in
    it, not to its length. Overlaps are resolved as the matches come, in order of their end,
    without sorting them, and :meth:`link_batch` searches all its texts in one pass: close to
    200,000 sentences per second on one core against all of WordNet (see
    ``benchmarks/linking.py``).

    The alias tables are flat arrays, not a Python object per alias: the patterns as one
    UTF-8 blob, and the candidates and scores of every alias as one CSR table, from which
    :meth:`link` builds the tuples of a :class:`Mention` on an alias's first match (and keeps
    up to :data:`_MEMO_SIZE` of them, in a list with a slot per pattern). Most of the memory
    is the automaton's (about 0.4 GB per million aliases, see ``benchmarks/scale.py``).
    :meth:`save` writes the tables, and :meth:`load` (or :meth:`cached`) reads them back and
    rebuilds only the automaton, about twice as fast as building the linker.

    Args:
        kg (KnowledgeGraph): the knowledge graph whose ``labels`` and ``aliases`` are linked.
        max_candidates (int, optional): the most candidates a mention keeps. (default: :obj:`8`)
        min_alias_length (int, optional): names shorter than this, in characters after
            normalisation, are not linked. (default: :obj:`2`)
        stopwords (Iterable[str], optional): names never linked, compared after
            normalisation; pass ``()`` to link every name. (default:
            :data:`~kgpeft.linking.ENGLISH_STOPWORDS`, NLTK's English list)

    Example:
        >>> kg = load_wordnet()
        >>> linker = EntityLinker(kg, max_candidates=2)
        >>> [(m.surface, [kg.entity_keys[e] for e in m.candidates]) for m in linker.link("The bank of New York City.")]
        [('bank', ['09213565-n', '08420278-n']), ('New York City', ['09119277-n'])]
    """

    def __init__(
        self,
        kg: KnowledgeGraph,
        *,
        max_candidates: int = 8,
        min_alias_length: int = 2,
        stopwords: Iterable[str] = ENGLISH_STOPWORDS,
    ) -> None:
        self._configure(kg, max_candidates, min_alias_length, _normalized_stopwords(stopwords))
        self._set_tables(_build_tables(kg, max_candidates, min_alias_length, self.stopwords))

    def _configure(self, kg: KnowledgeGraph, max_candidates: int, min_alias_length: int, stopwords: frozenset) -> None:
        _check_settings(max_candidates, min_alias_length)
        self.max_candidates = max_candidates
        self.min_alias_length = min_alias_length
        self.stopwords = stopwords
        self.num_entities = kg.num_entities
        self._fingerprint = kg.fingerprint

    def _set_tables(self, tables: dict[str, Any]) -> None:
        """Take the alias tables (see :func:`_build_tables`) and build the automaton from the patterns."""
        self._patterns: bytes = tables["patterns"]
        self._pattern_lengths: np.ndarray = tables["pattern_lengths"]
        self._groups: np.ndarray = tables["groups"]
        self._check_aliases: bytes = tables["check_aliases"]
        self._check_ends = _line_ends(self._check_aliases)
        self._cand_ptr: np.ndarray = tables["cand_ptr"]
        self._candidates: np.ndarray = tables["candidates"]
        self._scores: np.ndarray = tables["scores"]
        self.num_aliases = self._cand_ptr.size - 1
        self._num_plain = self._pattern_lengths.size - (self._groups.size - 1)
        self._automaton = _make_automaton(self._patterns, self._pattern_lengths.size)
        # A slot per pattern for what _entry builds: a list, as indexing it is faster than a dict lookup.
        self._memo: list[tuple[int, Any, Any] | None] = [None] * self._pattern_lengths.size
        self._memo_size = 0
        self._make_views()

    @property
    def _tables(self) -> dict[str, np.ndarray]:
        return {
            name: np.frombuffer(getattr(self, f"_{name}"), dtype=np.uint8)
            if name in _BLOBS
            else getattr(self, f"_{name}")
            for name in _ARRAY_NAMES
        }

    def link(self, text: str) -> list[Mention]:
        """The mentions in ``text``, in order, not overlapping.

        Args:
            text (str): any text.

        Returns:
            list[Mention]: the mentions, with offsets into ``text``.
        """
        if not isinstance(text, str):
            raise TypeError(f"`text` should be a str, got {type(text).__name__}.")
        normal, padded, cum = _fold(text)
        return self._search(padded, f" {normal} ", [(text, cum, 1, 1 + len(normal))])[0]

    def _search(
        self, padded: str, normal: str, segments: list[tuple[str, list[int] | None, int, int]]
    ) -> list[list[Mention]]:
        """The mentions in each text that ``padded`` holds, found in one pass of the automaton.

        ``padded``, ``normal`` and ``segments`` are as :func:`_fold_batch` returns them.
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
        """What :meth:`link` needs of a matched pattern, built from the tables and memoised.

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
            self._memo[:] = repeat(None, len(self._memo))  # in place, as _search holds the list
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

    def link_batch(self, texts: Iterable[str]) -> list[list[Mention]]:
        """:meth:`link` for each of ``texts``, faster than one at a time.

        The texts are searched in one pass of the automaton (:data:`_SEARCH_TEXTS` at a time)
        and, when all of them are ASCII, folded in one go. Python's cyclic garbage collector is
        paused meanwhile: mentions hold no cycles, and the collections their allocations
        trigger would scan the whole heap again and again (which halves the throughput of a
        large batch next to a large KG).
        """
        if isinstance(texts, str):
            raise TypeError("`texts` should be an iterable of str, got a single str; use `link` for one text.")
        texts = list(texts)
        if not all(map(isinstance, texts, repeat(str))):
            bad = next(text for text in texts if not isinstance(text, str))
            raise TypeError(f"`text` should be a str, got {type(bad).__name__}.")
        results: list[list[Mention]] = []
        with paused_gc():
            for i in range(0, len(texts), _SEARCH_TEXTS):
                results += self._search(*_fold_batch(texts[i : i + _SEARCH_TEXTS]))
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_entities={self.num_entities}, num_aliases={self.num_aliases}, "
            f"max_candidates={self.max_candidates})"
        )

    # The automaton is rebuilt from the patterns when unpickled (DataLoader workers with the
    # spawn start method): faster than pickling it, and half the bytes.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_automaton"], state["_memo"], state["_memo_size"], state["_views"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._automaton = _make_automaton(self._patterns, self._pattern_lengths.size)
        self._memo = [None] * self._pattern_lengths.size
        self._memo_size = 0
        self._make_views()

    # -------------------------------------------------------------- save/load
    def save(self, path: str | os.PathLike, overwrite: bool = False, force: bool = False) -> None:
        """Write the linker's alias tables to the folder ``path``, for :meth:`load`.

        The tables are ``.npy`` files (no pickles) and ``linker.json`` names the format and
        its version, the KG's :attr:`~kgpeft.graph.KnowledgeGraph.fingerprint`, the settings and
        the SHA-256 digest of each file. The folder is written to a temporary sibling and
        renamed into place, so an interrupted save never leaves a half-written linker.

        Args:
            path (str or PathLike): the folder to write.
            overwrite (bool): replace an empty folder or a saved linker already there. (default: ``False``)
            force (bool): also write into a folder holding other files: the linker's files
                replace those of the same names, the others are kept. (default: ``False``)

        Raises:
            OutputPathError: ``path`` is a file, or a folder holding files that are not a saved
                linker's (without ``force``); the message names up to 5 of them.
            FileExistsError: ``path`` exists and ``overwrite`` is ``False``.
        """
        target = Path(path)
        others = foreign_entries_or_refuse(
            target,
            _foreign_entries,
            force,
            writer="EntityLinker.save",
            owner="a saved EntityLinker's",
            thing="the linker",
        )
        with atomic_folder(target, overwrite, keep=others) as tmp:
            files = {}
            for name, table in self._tables.items():
                np.save(tmp / f"{name}.npy", table, allow_pickle=False)
                files[name] = {
                    "sha256": file_sha256(tmp / f"{name}.npy"),
                    "dtype": table.dtype.str,
                    "size": table.size,
                }
            meta = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "fingerprint": self._fingerprint,
                "num_entities": self.num_entities,
                "num_aliases": self.num_aliases,
                "num_patterns": int(self._pattern_lengths.size),
                "settings": _settings_meta(self.max_candidates, self.min_alias_length, self.stopwords),
                "stopwords": sorted(self.stopwords),
                "arrays": files,
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        kg: KnowledgeGraph,
        *,
        max_candidates: int | None = None,
        min_alias_length: int | None = None,
        stopwords: Iterable[str] | None = None,
    ) -> EntityLinker:
        """Read a linker written by :meth:`save`, for ``kg``, without building its alias tables again.

        Only the automaton is rebuilt, from the saved patterns (no normalisation, no grouping
        of names). Each file is checked against its digest first.

        Args:
            path (str or PathLike): the folder :meth:`save` wrote.
            kg (KnowledgeGraph): the KG the linker was built for (the same
                :attr:`~kgpeft.graph.KnowledgeGraph.fingerprint`).
            max_candidates, min_alias_length, stopwords (optional): the settings the linker
                must have been built with, as for :class:`EntityLinker`; each one not given is
                taken as saved. (default: as saved)

        Raises:
            LinkerFileError: a file is missing, malformed or does not match its digest, the
                folder was written by a newer kgpeft, or the linker was built for another KG
                or with other settings than those given; the message names the file.
        """
        stop = None if stopwords is None else _normalized_stopwords(stopwords)
        return cls._load(Path(path), kg, max_candidates, min_alias_length, stop)

    @classmethod
    def _load(
        cls,
        path: Path,
        kg: KnowledgeGraph,
        max_candidates: int | None,
        min_alias_length: int | None,
        stopwords: frozenset[str] | None,
    ) -> EntityLinker:
        meta_path = path / META_FILE
        meta = _read_meta(meta_path)
        if meta["fingerprint"] != kg.fingerprint:
            raise LinkerFileError(
                f"the linker was built for another KG (fingerprint {meta['fingerprint'][:12]}..., "
                f"this KG's is {kg.fingerprint[:12]}...); build one for this KG",
                meta_path,
            )
        saved = meta["settings"]
        wanted = {"max_candidates": max_candidates, "min_alias_length": min_alias_length}
        for key, value in wanted.items():
            if value is not None and value != saved[key]:
                raise LinkerFileError(f"the linker was built with {key}={saved[key]}, not {value}", meta_path)
        if stopwords is not None and _stopwords_digest(stopwords) != saved["stopwords_digest"]:
            raise LinkerFileError("the linker was built with other stopwords", meta_path)
        linker = cls.__new__(cls)
        linker._configure(kg, saved["max_candidates"], saved["min_alias_length"], frozenset(meta["stopwords"]))
        tables = {name: _read_table(path / f"{name}.npy", meta["arrays"][name]) for name in _ARRAY_NAMES}
        _check_tables(tables, meta, path)
        try:
            linker._set_tables(tables)
        except (ValueError, UnicodeDecodeError) as e:  # only if the files were written inconsistently
            raise LinkerFileError(f"the patterns do not match the other tables ({e})", path / "patterns.npy") from None
        return linker

    @classmethod
    def cached(cls, kg: KnowledgeGraph, cache_dir: str | os.PathLike | None = None, **settings: Any) -> EntityLinker:
        """The linker for ``kg`` with these settings, loaded from the cache, or built and saved there.

        It lives in ``cache_dir / <key>``, where the key is a digest of the KG's fingerprint, the
        settings and the format version, so each KG and setting has its own. A cached linker that
        cannot be used (a changed file) is rebuilt, with a warning; one that cannot be written
        only warns.

        Note that :attr:`~kgpeft.graph.KnowledgeGraph.fingerprint` covers the KG's keys, not its
        names and priors: after changing those of a KG (same keys), build the linker anew.

        Args:
            kg (KnowledgeGraph): the knowledge graph.
            cache_dir (str or PathLike, optional): the folder of cached linkers. (default:
                ``kgpeft.datasets.cache_dir() / "linkers"``)
            **settings: ``max_candidates``, ``min_alias_length``, ``stopwords``, as for
                :class:`EntityLinker`.
        """
        unknown = sorted(set(settings) - set(_DEFAULT_SETTINGS))
        if unknown:
            raise TypeError(f"EntityLinker.cached() got unexpected keyword arguments: {', '.join(unknown)}.")
        settings = {**_DEFAULT_SETTINGS, **settings}
        max_candidates, min_alias_length = settings["max_candidates"], settings["min_alias_length"]
        _check_settings(max_candidates, min_alias_length)
        stopwords = _normalized_stopwords(settings["stopwords"])
        if cache_dir is None:
            cache_dir = default_cache_dir() / "linkers"
        key = [FORMAT_NAME, FORMAT_VERSION, kg.fingerprint, _settings_meta(max_candidates, min_alias_length, stopwords)]
        folder = Path(cache_dir) / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        if (folder / META_FILE).is_file():
            try:
                return cls._load(folder, kg, max_candidates, min_alias_length, stopwords)
            except LinkerFileError as e:
                warnings.warn(f"Building the entity linker again: the cached one cannot be used. {e}", stacklevel=2)
        linker = cls.__new__(cls)
        linker._configure(kg, max_candidates, min_alias_length, stopwords)
        linker._set_tables(_build_tables(kg, max_candidates, min_alias_length, stopwords))
        try:
            linker.save(folder, overwrite=True)
        except OSError as e:
            warnings.warn(f"The entity linker could not be cached in {folder}: {e}", stacklevel=2)
        return linker


def _check_settings(max_candidates: int, min_alias_length: int) -> None:
    if max_candidates < 1:
        raise ValueError(f"`max_candidates` should be at least 1, got {max_candidates}.")
    if min_alias_length < 1:
        raise ValueError(f"`min_alias_length` should be at least 1, got {min_alias_length}.")


def _normalized_stopwords(stopwords: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize(w) for w in stopwords)


def _stopwords_digest(stopwords: frozenset[str]) -> str:
    return hashlib.sha256(json.dumps(sorted(stopwords), ensure_ascii=False).encode()).hexdigest()


def _settings_meta(max_candidates: int, min_alias_length: int, stopwords: frozenset[str]) -> dict[str, Any]:
    return {
        "max_candidates": max_candidates,
        "min_alias_length": min_alias_length,
        "stopwords_digest": _stopwords_digest(stopwords),
    }


def _index_dtype(bound: int) -> type:
    """The smaller integer type that holds every value below ``bound``."""
    return np.int32 if bound < 2**31 else np.int64


def _offsets(counts: np.ndarray) -> np.ndarray:
    """``[0, *cumsum(counts)]``, in the smaller integer type that holds them."""
    out = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out.astype(_index_dtype(int(out[-1]) + 1), copy=False)


def _lines_blob(strings: list[str], pad: str = "") -> bytes:
    """``strings`` as UTF-8, each padded with ``pad`` on both sides and ended by ``"\\n"``.

    Neither normalised aliases nor patterns hold a ``"\\n"`` (:func:`normalize` turns every
    run of whitespace into one space), so the lines are the strings.
    """
    sep = f"{pad}\n{pad}"
    return b"".join(
        f"{pad}{sep.join(strings[i : i + _ENCODE_CHUNK])}{pad}\n".encode()
        for i in range(0, len(strings), _ENCODE_CHUNK)
    )


def _iter_lines(blob: bytes) -> Iterator[list[str]]:
    """The lines of a :func:`_lines_blob`, a list of them at a time."""
    pos, n = 0, len(blob)
    while pos < n:
        end = blob.find(b"\n", min(pos + _DECODE_CHUNK, n) - 1)
        if end < 0:
            raise ValueError("the last line has no newline")
        yield blob[pos:end].decode().split("\n")
        pos = end + 1


def _line_ends(blob: bytes) -> np.ndarray:
    """The position of each line's ``"\\n"`` in a :func:`_lines_blob`."""
    ends = np.flatnonzero(np.frombuffer(blob, dtype=np.uint8) == ord("\n"))
    return ends.astype(_index_dtype(len(blob)), copy=False)


def _make_automaton(patterns: bytes, num_patterns: int) -> ahocorasick.Automaton:
    """An automaton whose value for the ``p``-th line of ``patterns`` is ``p``.

    ``STORE_INTS`` keeps a C int per pattern instead of a Python object, so the automaton is
    only its trie; its values are 32-bit, which bounds the patterns to ``2**31 - 1``.
    """
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    added = 0
    for lines in _iter_lines(patterns):
        # add_word is False for a pattern already there; map calls it without a Python loop.
        if not all(map(automaton.add_word, lines, range(added, added + len(lines)))):
            raise ValueError("a pattern repeats")
        added += len(lines)
    if added != num_patterns:
        raise ValueError(f"{added} patterns, expected {num_patterns}")
    if added:
        automaton.make_automaton()
    return automaton


def _build_tables(
    kg: KnowledgeGraph, max_candidates: int, min_alias_length: int, stopwords: frozenset[str]
) -> dict[str, Any]:
    """The alias tables of an :class:`EntityLinker` for ``kg``.

    Aliases (normalised names) are numbered plain ones first, those whose pattern has an
    inner space after them, grouped by pattern. The tables are:

    - ``patterns``: the patterns, padded with a space on each side, one line each (see
      :func:`_lines_blob`): first the plain aliases, each its own pattern with its alias's
      id, then one per group; a pattern's id is its line, and its automaton value;
    - ``pattern_lengths``: each pattern's length in characters, without the padding;
    - ``groups``: the aliases of the ``g``-th inner-space pattern are ``num_plain + k`` for
      ``k`` in ``groups[g]:groups[g + 1]``;
    - ``check_aliases``: those aliases, in id order, one line each;
    - ``cand_ptr``, ``candidates``, ``scores``: alias ``a``'s candidates, best first, and their
      scores are ``candidates[cand_ptr[a]:cand_ptr[a + 1]]`` and the same slice of ``scores``.
    """
    n = kg.num_entities
    degree = kg.degree.numpy().astype(np.float64)
    tie_rank = np.empty(n, dtype=np.int64)
    tie_rank[np.lexsort((np.arange(n), -degree))] = np.arange(n)
    name_priors: Iterable[Iterable[float]] | None = kg.name_priors
    if name_priors is None:
        entity_prior = degree if kg.entity_prior is None else kg.entity_prior.numpy().astype(np.float64)
        name_priors = map(repeat, entity_prior.tolist())

    # Every name, normalised once, becomes an alias id (or -1 if it is not linked), and a row
    # (alias, entity, prior) of three flat arrays.
    alias_ids: dict[str, int] = {}
    aliases: list[str] = []
    patterns: list[str] = []  # the same string as the alias when they are equal
    rows_alias, rows_entity, rows_prior = array("q"), array("q"), array("d")
    add_alias, add_entity, add_prior = rows_alias.append, rows_entity.append, rows_prior.append
    with paused_gc():
        for entity, (label, others, priors) in enumerate(zip(kg.labels, kg.aliases, name_priors, strict=True)):
            # The KG checks that an entity has one name prior per name; an entity prior repeats.
            for name, prior in zip((label, *others), priors, strict=False):
                alias = normalize(name)
                a = alias_ids.get(alias)
                if a is None:
                    pattern = _pattern(alias)
                    if len(alias) < min_alias_length or alias in stopwords or not pattern.strip():
                        a = -1
                    else:
                        a = len(aliases)
                        aliases.append(alias)
                        patterns.append(pattern)
                    alias_ids[alias] = a
                if a >= 0:
                    add_alias(a)
                    add_entity(entity)
                    add_prior(prior)
        del alias_ids
        num_aliases = len(aliases)

        # Patterns are names with non-word characters turned into spaces. Names that differ only
        # in punctuation ("t-shirt", "t shirt") share a pattern, and a match of a pattern with an
        # inner space is checked against the normalised text to tell which name, if any, it is.
        checked = np.fromiter((" " in p for p in patterns), dtype=bool, count=num_aliases)
        plain, checked = np.flatnonzero(~checked), np.flatnonzero(checked)
        group_of: dict[str, int] = {}
        group = np.fromiter(
            (group_of.setdefault(patterns[i], len(group_of)) for i in checked.tolist()),
            dtype=np.int64,
            count=checked.size,
        )
        del patterns
        checked = checked[np.argsort(group, kind="stable")]
        groups = _offsets(np.bincount(group, minlength=len(group_of)))
        pattern_list = [aliases[i] for i in plain.tolist()]
        pattern_list.extend(group_of)
        del group_of, group
        if len(pattern_list) >= 2**31:
            raise ValueError(f"An EntityLinker holds at most 2**31 - 1 patterns, got {len(pattern_list)}.")
        pattern_lengths = np.fromiter(map(len, pattern_list), dtype=np.int32, count=len(pattern_list))
        pattern_blob = _lines_blob(pattern_list, pad=" ")
        del pattern_list
        check_blob = _lines_blob([aliases[i] for i in checked.tolist()])
        del aliases

    order = np.concatenate([plain, checked])
    new_id = np.empty(num_aliases, dtype=np.int64)
    new_id[order] = np.arange(num_aliases)
    del order, plain, checked
    alias = new_id[np.frombuffer(rows_alias, dtype=np.int64)]
    del new_id, rows_alias
    entity = np.frombuffer(rows_entity, dtype=np.int64)
    prior = np.frombuffer(rows_prior, dtype=np.float64)

    # One row per (alias, entity), in entity order: several names of one entity may normalise
    # to the same alias, which then keeps the highest of their priors.
    order = np.lexsort((-prior, entity, alias))
    alias, entity, prior = alias[order], entity[order], prior[order]
    del order, rows_entity, rows_prior
    first = np.ones(alias.size, dtype=bool)
    first[1:] = (alias[1:] != alias[:-1]) | (entity[1:] != entity[:-1])
    alias, entity, prior = alias[first], entity[first], prior[first]
    del first
    count = np.bincount(alias, minlength=num_aliases)
    start = np.zeros(num_aliases + 1, dtype=np.int64)
    np.cumsum(count, out=start[1:])

    # The total prior of each alias, summed by Python's sum() in entity order as it always
    # was, so that every score is the same to the last bit.
    total = prior[start[:-1]] if num_aliases else np.zeros(0)
    shared = np.flatnonzero(count > 1)
    if shared.size:
        values = prior[(count > 1)[alias]].tolist()
        bounds = accumulate(count[shared].tolist(), initial=0)
        total[shared] = [sum(values[lo:hi]) for lo, hi in pairwise(bounds)]
        del values

    # Most likely first, ties to the higher degree, then the lower id; the score is the share of
    # the total, or uniform where it is 0, also over the entities cut off by max_candidates.
    order = np.lexsort((tie_rank[entity], -prior, alias))
    entity, prior = entity[order], prior[order]
    del order
    kept = np.arange(alias.size) - start[alias] < max_candidates
    with np.errstate(divide="ignore", invalid="ignore"):
        alias_total = total[alias]
        scores = np.where(alias_total > 0, prior / alias_total, 1.0 / np.maximum(count[alias], 1))
    return {
        "patterns": pattern_blob,
        "pattern_lengths": pattern_lengths,
        "groups": groups,
        "check_aliases": check_blob,
        "cand_ptr": _offsets(np.minimum(count, max_candidates)),
        "candidates": entity[kept].astype(_index_dtype(n)),
        "scores": scores[kept],
    }


# ------------------------------------------------------------------ save/load
def _is_saved_linker_file(name: str) -> bool:
    return name == META_FILE or (name.endswith(".npy") and name[: -len(".npy")] in _ARRAY_NAMES)


def _foreign_entries(folder: Path) -> list[str]:
    """The entries of ``folder`` that no :meth:`EntityLinker.save` wrote, so that saving there would lose them.

    None in a missing or empty folder, nor in a saved linker's folder (a ``linker.json`` of
    this format and the linker's arrays); every entry of any other folder.
    """
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir())
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not (isinstance(meta, dict) and meta.get("format") == FORMAT_NAME):
        return names
    return [name for name in names if not (_is_saved_linker_file(name) and (folder / name).is_file())]


def _read_meta(meta_path: Path) -> dict[str, Any]:
    """``linker.json``, checked to be of this format, of a version this kgpeft reads, and complete."""
    if not meta_path.is_file():
        raise LinkerFileError("not found; is this a folder EntityLinker.save wrote?", meta_path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LinkerFileError(f"cannot be read ({e})", meta_path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise LinkerFileError(f"is not a saved EntityLinker (no format {FORMAT_NAME!r})", meta_path)
    version = meta.get("version")
    if not isinstance(version, int) or version < 1:
        raise LinkerFileError(f"has no valid format version (got {version!r})", meta_path)
    if version > FORMAT_VERSION:
        raise LinkerFileError(
            f"was written by a newer kgpeft (format version {version}; this one reads up to {FORMAT_VERSION}); "
            "upgrade kgpeft or build the linker again",
            meta_path,
        )
    try:
        ok = (
            isinstance(meta["fingerprint"], str)
            and all(isinstance(meta[k], int) for k in ("num_entities", "num_aliases", "num_patterns"))
            and all(isinstance(meta["settings"][k], int) for k in ("max_candidates", "min_alias_length"))
            and isinstance(meta["settings"]["stopwords_digest"], str)
            and _stopwords_digest(frozenset(meta["stopwords"])) == meta["settings"]["stopwords_digest"]
            and all(
                isinstance(meta["arrays"][name][k], t)
                for name in _ARRAY_NAMES
                for k, t in (("sha256", str), ("dtype", str), ("size", int))
            )
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise LinkerFileError("is incomplete or malformed (file corrupted?)", meta_path)
    return meta


def _read_table(path: Path, info: dict[str, Any]) -> np.ndarray | bytes:
    """One saved table, checked against its digest, dtype and size; a blob as ``bytes``."""
    if not path.is_file():
        raise LinkerFileError("is missing", path)
    if file_sha256(path) != info["sha256"]:
        raise LinkerFileError("does not match its SHA-256 digest in linker.json (file corrupted or changed?)", path)
    try:
        if path.stem in _BLOBS:
            # Read the bytes straight after the .npy header: np.load, then tobytes, would copy them.
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(f)
                table: np.ndarray | bytes = f.read()
            ok = dtype == np.uint8 and shape == (len(table),)
        else:
            table = np.load(path, allow_pickle=False)
            dtype, ok = table.dtype, table.ndim == 1
    except (OSError, ValueError) as e:
        raise LinkerFileError(f"cannot be read as a .npy array ({e})", path) from None
    if not ok or dtype.str != info["dtype"] or len(table) != info["size"]:
        raise LinkerFileError(f"does not hold the 1-D {info['dtype']} array of {info['size']} linker.json names", path)
    return table


def _check_tables(tables: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    """Check that the tables fit each other and the counts in ``linker.json`` (they match their digests,
    so only a linker.json edited by hand fails here)."""
    num_aliases, num_patterns = meta["num_aliases"], meta["num_patterns"]
    cand_ptr, groups = tables["cand_ptr"], tables["groups"]
    problems = {
        "pattern_lengths": tables["pattern_lengths"].size != num_patterns
        or not np.issubdtype(tables["pattern_lengths"].dtype, np.integer),
        "groups": not np.issubdtype(groups.dtype, np.integer)
        or groups.size < 1
        or groups.size - 1 > num_patterns
        or groups[0] != 0
        or (np.diff(groups) < 1).any()
        or groups[-1] != num_aliases - (num_patterns - (groups.size - 1)),
        "check_aliases": tables["check_aliases"].count(b"\n") != groups[-1] if groups.size else True,
        "cand_ptr": not np.issubdtype(cand_ptr.dtype, np.integer)
        or cand_ptr.size != num_aliases + 1
        or cand_ptr[0] != 0
        or (np.diff(cand_ptr) < 1).any()
        or cand_ptr[-1] != tables["candidates"].size,
        "candidates": not np.issubdtype(tables["candidates"].dtype, np.integer)
        or (
            tables["candidates"].size
            and not 0 <= tables["candidates"].min() <= tables["candidates"].max() < meta["num_entities"]
        ),
        "scores": tables["scores"].dtype != np.float64 or tables["scores"].size != tables["candidates"].size,
    }
    for name, bad in problems.items():
        if bad:
            raise LinkerFileError(
                "does not fit the other tables or linker.json (file corrupted?)", path / f"{name}.npy"
            )
