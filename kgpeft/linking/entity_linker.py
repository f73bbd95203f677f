"""The :class:`EntityLinker`: text to entity mentions with an Aho-Corasick automaton over the KG's names."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate
from typing import NamedTuple

import ahocorasick
import numpy as np

from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.linking.stopwords import ENGLISH_STOPWORDS


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
    return " ".join(unicodedata.normalize(NORMAL_FORM, text).translate(_FOLD).split())


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
    it, not to its length: about 100,000 sentences per second on one core against all of
    WordNet (see ``benchmarks/linking.py``).

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
        if max_candidates < 1:
            raise ValueError(f"`max_candidates` should be at least 1, got {max_candidates}.")
        if min_alias_length < 1:
            raise ValueError(f"`min_alias_length` should be at least 1, got {min_alias_length}.")
        self.max_candidates = max_candidates
        self.min_alias_length = min_alias_length
        self.stopwords = frozenset(normalize(w) for w in stopwords)
        self.num_entities = kg.num_entities

        degree = kg.degree.numpy().astype(np.float64)
        tie_rank = np.empty(kg.num_entities, dtype=np.int64)
        tie_rank[np.lexsort((np.arange(kg.num_entities), -degree))] = np.arange(kg.num_entities)
        tie_rank_of = tie_rank.tolist()
        name_priors = kg.name_priors
        if name_priors is None:
            entity_prior = degree if kg.entity_prior is None else kg.entity_prior.numpy().astype(np.float64)
            name_priors = [(p,) * (1 + len(a)) for p, a in zip(entity_prior.tolist(), kg.aliases, strict=True)]

        # prior_of[alias][entity]: how likely the alias means the entity. Several names of one
        # entity may normalise to the same alias, which then keeps the highest of their priors.
        prior_of: dict[str, dict[int, float]] = {}
        for entity, priors in enumerate(name_priors):
            for name, prior in zip((kg.labels[entity], *kg.aliases[entity]), priors, strict=True):
                alias = normalize(name)
                if (
                    len(alias) < self.min_alias_length
                    or alias in self.stopwords
                    or not alias.translate(_BOUNDARY).strip()
                ):
                    continue
                entities = prior_of.setdefault(alias, {})
                entities[entity] = max(prior, entities.get(entity, prior))
        self.num_aliases = len(prior_of)

        # Patterns are names with non-word characters turned into spaces, padded with a space
        # on each side. Names that differ only in punctuation ("t-shirt", "t shirt") share a
        # pattern, and a match of a pattern with an inner space is checked against the
        # normalised text to tell which name, if any, it is.
        names_of: dict[str, dict[str, tuple[tuple[int, ...], tuple[float, ...]]]] = {}
        for alias, priors in prior_of.items():
            entities = sorted(priors, key=lambda e: (-priors[e], tie_rank_of[e]))
            total = sum(priors.values())
            kept = entities[: self.max_candidates]
            scores = [priors[e] / total for e in kept] if total > 0 else [1 / len(entities)] * len(kept)
            names_of.setdefault(alias.translate(_BOUNDARY), {})[alias] = (tuple(kept), tuple(scores))
        self._automaton = ahocorasick.Automaton()
        for pattern, names in names_of.items():
            if " " in pattern:
                self._automaton.add_word(f" {pattern} ", (len(pattern), None, names))
            else:
                self._automaton.add_word(f" {pattern} ", (len(pattern), names[pattern], None))
        self._automaton.make_automaton()

    def link(self, text: str) -> list[Mention]:
        """The mentions in ``text``, in order, not overlapping.

        Args:
            text (str): any text.

        Returns:
            list[Mention]: the mentions, with offsets into ``text``.
        """
        if not isinstance(text, str):
            raise TypeError(f"`text` should be a str, got {type(text).__name__}.")
        if self.num_aliases == 0:  # an automaton without patterns cannot search
            return []
        normal, padded_words, cum = _fold(text)
        hits = []
        for pad, (length, payload, names) in self._automaton.iter(padded_words):
            # `pad` is the index of the space after the match in `padded_words`, which is one
            # character longer at the front than `normal`.
            end = pad - 1
            start = end - length
            if names is not None:
                payload = names.get(normal[start:end])
                if payload is None:
                    continue
            hits.append((start, -end, payload))
        hits.sort()  # leftmost, then longest; (start, end) never repeats, so payloads are never compared

        mentions = []
        free = 0  # where the text after the last kept mention begins
        for start, neg_end, (candidates, scores) in hits:
            end = -neg_end
            if start < free:
                continue
            if cum is None:
                begin, stop = start, end
            else:
                # Map back to the original text; a match that starts or ends inside the
                # folding of one piece ("s" of "ß" -> "ss") is not a match.
                begin, stop = bisect_left(cum, start), bisect_left(cum, end)
                if cum[begin] != start or cum[stop] != end:
                    continue
            free = end
            mentions.append(Mention(begin, stop, text[begin:stop], candidates, scores))
        return mentions

    def link_batch(self, texts: Iterable[str]) -> list[list[Mention]]:
        """:meth:`link` for each of ``texts``."""
        if isinstance(texts, str):
            raise TypeError("`texts` should be an iterable of str, got a single str; use `link` for one text.")
        return [self.link(text) for text in texts]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_entities={self.num_entities}, num_aliases={self.num_aliases}, "
            f"max_candidates={self.max_candidates})"
        )
