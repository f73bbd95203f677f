"""The :class:`EntityLinker`: text to entity mentions with an Aho-Corasick automaton over the KG's names.

Its parts: :mod:`~kgpeft.linking.folding` (how names and text are compared),
:mod:`~kgpeft.linking.alias_tables` and :mod:`~kgpeft.linking.scoring` (the tables built from
the KG), :mod:`~kgpeft.linking.matcher` (the automaton and the search) and
:mod:`~kgpeft.linking.storage` (the saved folder and the cache key).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from itertools import repeat
from pathlib import Path
from typing import Any

from kgpeft.errors import LinkerFileError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.io import cache_dir as default_cache_dir
from kgpeft.linking.alias_tables import build_tables
from kgpeft.linking.folding import fold, fold_batch, normalize
from kgpeft.linking.matcher import AliasMatcher, Mention
from kgpeft.linking.stopwords import ENGLISH_STOPWORDS
from kgpeft.linking.storage import (
    META_FILE,
    cache_folder,
    read_checked_meta,
    read_tables,
    settings_meta,
    write_linker,
)
from kgpeft.utils import paused_gc

# The most texts :meth:`EntityLinker.link_batch` searches in one pass: more would gain no
# speed, and this bounds the strings it builds at a time.
_SEARCH_TEXTS = 256
_DEFAULT_SETTINGS: dict[str, Any] = {"max_candidates": 8, "min_alias_length": 2, "stopwords": ENGLISH_STOPWORDS}


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
    up to ``2**17`` of them, in a list with a slot per pattern; see
    :class:`~kgpeft.linking.matcher.AliasMatcher`). Most of the memory is the automaton's
    (about 0.4 GB per million aliases, see ``benchmarks/scale.py``). :meth:`save` writes the
    tables, and :meth:`load` (or :meth:`cached`) reads them back and rebuilds only the
    automaton, about twice as fast as building the linker.

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
        self._set_tables(build_tables(kg, max_candidates, min_alias_length, self.stopwords))

    def _configure(self, kg: KnowledgeGraph, max_candidates: int, min_alias_length: int, stopwords: frozenset) -> None:
        _check_settings(max_candidates, min_alias_length)
        self.max_candidates = max_candidates
        self.min_alias_length = min_alias_length
        self.stopwords = stopwords
        self.num_entities = kg.num_entities
        self._fingerprint = kg.fingerprint

    def _set_tables(self, tables: dict[str, Any]) -> None:
        """Take the alias tables (see :func:`~kgpeft.linking.alias_tables.build_tables`) and build the automaton."""
        self._matcher = AliasMatcher(tables)
        self.num_aliases = self._matcher.num_aliases

    def link(self, text: str) -> list[Mention]:
        """The mentions in ``text``, in order, not overlapping.

        Args:
            text (str): any text.

        Returns:
            list[Mention]: the mentions, with offsets into ``text``.
        """
        if not isinstance(text, str):
            raise TypeError(f"`text` should be a str, got {type(text).__name__}.")
        normal, padded, cum = fold(text)
        return self._matcher.search(padded, f" {normal} ", [(text, cum, 1, 1 + len(normal))])[0]

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
                results += self._matcher.search(*fold_batch(texts[i : i + _SEARCH_TEXTS]))
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_entities={self.num_entities}, num_aliases={self.num_aliases}, "
            f"max_candidates={self.max_candidates})"
        )

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
        about = {
            "fingerprint": self._fingerprint,
            "num_entities": self.num_entities,
            "num_aliases": self.num_aliases,
            "num_patterns": self._matcher.num_patterns,
            "settings": settings_meta(self.max_candidates, self.min_alias_length, self.stopwords),
            "stopwords": sorted(self.stopwords),
        }
        write_linker(Path(path), self._matcher.tables, about, overwrite, force)

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
        meta = read_checked_meta(path, kg.fingerprint, max_candidates, min_alias_length, stopwords)
        saved = meta["settings"]
        linker = cls.__new__(cls)
        linker._configure(kg, saved["max_candidates"], saved["min_alias_length"], frozenset(meta["stopwords"]))
        tables = read_tables(path, meta)
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
        folder = cache_folder(cache_dir, kg.fingerprint, settings_meta(max_candidates, min_alias_length, stopwords))
        if (folder / META_FILE).is_file():
            try:
                return cls._load(folder, kg, max_candidates, min_alias_length, stopwords)
            except LinkerFileError as e:
                warnings.warn(f"Building the entity linker again: the cached one cannot be used. {e}", stacklevel=2)
        linker = cls.__new__(cls)
        linker._configure(kg, max_candidates, min_alias_length, stopwords)
        linker._set_tables(build_tables(kg, max_candidates, min_alias_length, stopwords))
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
