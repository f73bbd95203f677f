"""The alias tables of an :class:`~kgpeft.linking.EntityLinker`: flat arrays, not a Python object per alias.

Aliases (normalised names) are numbered plain ones first, those whose pattern has an inner
space after them, grouped by pattern. The tables (:data:`ARRAY_NAMES`) are:

- ``patterns``: the patterns, padded with a space on each side, one line each (see
  :func:`lines_blob`): first the plain aliases, each its own pattern with its alias's id,
  then one per group; a pattern's id is its line, and its automaton value;
- ``pattern_lengths``: each pattern's length in characters, without the padding;
- ``groups``: the aliases of the ``g``-th inner-space pattern are ``num_plain + k`` for ``k``
  in ``groups[g]:groups[g + 1]``;
- ``check_aliases``: those aliases, in id order, one line each;
- ``cand_ptr``, ``candidates``, ``scores``: alias ``a``'s candidates, best first, and their
  scores are ``candidates[cand_ptr[a]:cand_ptr[a + 1]]`` and the same slice of ``scores``
  (see :mod:`kgpeft.linking.scoring`).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.linking.folding import alias_pattern, normalize
from kgpeft.linking.scoring import name_priors, rank_candidates, tie_ranks
from kgpeft.utils import paused_gc

# The tables, one ``<name>.npy`` each when saved.
ARRAY_NAMES = ("patterns", "pattern_lengths", "groups", "check_aliases", "cand_ptr", "candidates", "scores")
# Of them, the UTF-8 blobs, kept in memory as ``bytes``.
BLOBS = frozenset({"patterns", "check_aliases"})
# Bytes of a blob decoded at a time, and strings encoded at a time, so that no pass over all
# patterns holds a Python string per pattern.
_DECODE_CHUNK = 1 << 22
_ENCODE_CHUNK = 1 << 16


def build_tables(
    kg: KnowledgeGraph, max_candidates: int, min_alias_length: int, stopwords: frozenset[str]
) -> dict[str, Any]:
    """The alias tables of an :class:`~kgpeft.linking.EntityLinker` for ``kg`` (see the module's docstring)."""
    degree = kg.degree.numpy().astype(np.float64)
    tie_rank = tie_ranks(degree)
    priors = name_priors(kg, degree)
    with paused_gc():
        aliases, patterns, (rows_alias, rows_entity, rows_prior) = _alias_rows(kg, priors, min_alias_length, stopwords)
        num_aliases = len(aliases)
        plain, checked, groups, group_patterns = _group_patterns(patterns)
        del patterns
        pattern_lengths, pattern_blob, check_blob = _pattern_blobs(aliases, plain, checked, group_patterns)
        del aliases, group_patterns

    order = np.concatenate([plain, checked])
    new_id = np.empty(num_aliases, dtype=np.int64)
    new_id[order] = np.arange(num_aliases)
    del order, plain, checked
    alias = new_id[np.frombuffer(rows_alias, dtype=np.int64)]
    del new_id, rows_alias
    entity = np.frombuffer(rows_entity, dtype=np.int64)
    prior = np.frombuffer(rows_prior, dtype=np.float64)
    kept, candidates, scores = rank_candidates(alias, entity, prior, tie_rank, num_aliases, max_candidates)
    return {
        "patterns": pattern_blob,
        "pattern_lengths": pattern_lengths,
        "groups": groups,
        "check_aliases": check_blob,
        "cand_ptr": _offsets(kept),
        "candidates": candidates.astype(_index_dtype(kg.num_entities)),
        "scores": scores,
    }


def _alias_rows(
    kg: KnowledgeGraph, priors: Iterable[Iterable[float]], min_alias_length: int, stopwords: frozenset[str]
) -> tuple[list[str], list[str], tuple[array, array, array]]:
    """Every name of ``kg``, normalised once, as an alias id and a row ``(alias, entity, prior)``.

    Returns the aliases in order of first appearance, their patterns (the same string as the
    alias where they are equal) and the rows, as three flat arrays. A name that is too short,
    a stopword or without a word character gets no alias and no row.
    """
    alias_ids: dict[str, int] = {}
    aliases: list[str] = []
    patterns: list[str] = []
    rows_alias, rows_entity, rows_prior = array("q"), array("q"), array("d")
    add_alias, add_entity, add_prior = rows_alias.append, rows_entity.append, rows_prior.append
    for entity, (label, others, entity_priors) in enumerate(zip(kg.labels, kg.aliases, priors, strict=True)):
        # The KG checks that an entity has one name prior per name; an entity prior repeats.
        for name, prior in zip((label, *others), entity_priors, strict=False):
            alias = normalize(name)
            a = alias_ids.get(alias)
            if a is None:
                pattern = alias_pattern(alias)
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
    return aliases, patterns, (rows_alias, rows_entity, rows_prior)


def _group_patterns(patterns: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """The plain aliases, the grouped ones, the ``groups`` table and the group patterns in group order.

    Patterns are names with non-word characters turned into spaces. Names that differ only in
    punctuation ("t-shirt", "t shirt") share a pattern, and a match of a pattern with an inner
    space is checked against the normalised text to tell which name, if any, it is: such
    aliases are grouped by pattern, in id order within a group.
    """
    checked = np.fromiter((" " in p for p in patterns), dtype=bool, count=len(patterns))
    plain, checked = np.flatnonzero(~checked), np.flatnonzero(checked)
    group_of: dict[str, int] = {}
    group = np.fromiter(
        (group_of.setdefault(patterns[i], len(group_of)) for i in checked.tolist()),
        dtype=np.int64,
        count=checked.size,
    )
    checked = checked[np.argsort(group, kind="stable")]
    groups = _offsets(np.bincount(group, minlength=len(group_of)))
    return plain, checked, groups, group_of


def _pattern_blobs(
    aliases: list[str], plain: np.ndarray, checked: np.ndarray, group_patterns: dict[str, int]
) -> tuple[np.ndarray, bytes, bytes]:
    """The ``pattern_lengths``, ``patterns`` and ``check_aliases`` tables."""
    pattern_list = [aliases[i] for i in plain.tolist()]
    pattern_list.extend(group_patterns)
    if len(pattern_list) >= 2**31:
        raise ValueError(f"An EntityLinker holds at most 2**31 - 1 patterns, got {len(pattern_list)}.")
    pattern_lengths = np.fromiter(map(len, pattern_list), dtype=np.int32, count=len(pattern_list))
    pattern_blob = lines_blob(pattern_list, pad=" ")
    del pattern_list
    return pattern_lengths, pattern_blob, lines_blob([aliases[i] for i in checked.tolist()])


def _index_dtype(bound: int) -> type:
    """The smaller integer type that holds every value below ``bound``."""
    return np.int32 if bound < 2**31 else np.int64


def _offsets(counts: np.ndarray) -> np.ndarray:
    """``[0, *cumsum(counts)]``, in the smaller integer type that holds them."""
    out = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out.astype(_index_dtype(int(out[-1]) + 1), copy=False)


def lines_blob(strings: list[str], pad: str = "") -> bytes:
    """``strings`` as UTF-8, each padded with ``pad`` on both sides and ended by ``"\\n"``.

    Neither normalised aliases nor patterns hold a ``"\\n"`` (:func:`normalize` turns every
    run of whitespace into one space), so the lines are the strings.
    """
    sep = f"{pad}\n{pad}"
    return b"".join(
        f"{pad}{sep.join(strings[i : i + _ENCODE_CHUNK])}{pad}\n".encode()
        for i in range(0, len(strings), _ENCODE_CHUNK)
    )


def iter_lines(blob: bytes) -> Iterator[list[str]]:
    """The lines of a :func:`lines_blob`, a list of them at a time."""
    pos, n = 0, len(blob)
    while pos < n:
        end = blob.find(b"\n", min(pos + _DECODE_CHUNK, n) - 1)
        if end < 0:
            raise ValueError("the last line has no newline")
        yield blob[pos:end].decode().split("\n")
        pos = end + 1


def line_ends(blob: bytes) -> np.ndarray:
    """The position of each line's ``"\\n"`` in a :func:`lines_blob`."""
    ends = np.flatnonzero(np.frombuffer(blob, dtype=np.uint8) == ord("\n"))
    return ends.astype(_index_dtype(len(blob)), copy=False)
