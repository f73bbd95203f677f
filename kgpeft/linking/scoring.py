"""How :class:`~kgpeft.linking.EntityLinker` ranks and scores the entities a name may mean.

A name shared by several entities keeps its ``max_candidates`` most likely ones, ranked by a
prior (the KG's name priors, else its entity prior, else the degree); ties go to the higher
degree, then the lower id. A candidate's score is its share of the prior among all the
entities with that name, or a uniform share when their priors are all zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import accumulate, pairwise, repeat

import numpy as np

from kgpeft.graph.knowledge_graph import KnowledgeGraph


def tie_ranks(degree: np.ndarray) -> np.ndarray:
    """Each entity's place when ties of prior are broken: the higher degree first, then the lower id."""
    n = degree.size
    tie_rank = np.empty(n, dtype=np.int64)
    tie_rank[np.lexsort((np.arange(n), -degree))] = np.arange(n)
    return tie_rank


def name_priors(kg: KnowledgeGraph, degree: np.ndarray) -> Iterable[Iterable[float]]:
    """Per entity, the prior of each of its names: ``kg.name_priors``, else its entity prior (or degree) repeated."""
    priors: Iterable[Iterable[float]] | None = kg.name_priors
    if priors is None:
        entity_prior = degree if kg.entity_prior is None else kg.entity_prior.numpy().astype(np.float64)
        priors = map(repeat, entity_prior.tolist())
    return priors


def rank_candidates(
    alias: np.ndarray,
    entity: np.ndarray,
    prior: np.ndarray,
    tie_rank: np.ndarray,
    num_aliases: int,
    max_candidates: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates of every alias, best first, from rows ``(alias, entity, prior)`` (one per name).

    Returns how many candidates each alias keeps, then their entities and scores, alias after
    alias. An alias keeps at most ``max_candidates``, but the scores are shares of the total over
    all its entities.
    """
    alias, entity, prior = _best_prior_rows(alias, entity, prior)
    count = np.bincount(alias, minlength=num_aliases)
    start = np.zeros(num_aliases + 1, dtype=np.int64)
    np.cumsum(count, out=start[1:])
    total = _alias_totals(alias, prior, count, start, num_aliases)

    # Most likely first, ties to the higher degree, then the lower id; the score is the share of
    # the total, or uniform where it is 0, also over the entities cut off by max_candidates.
    order = np.lexsort((tie_rank[entity], -prior, alias))
    entity, prior = entity[order], prior[order]
    del order
    kept = np.arange(alias.size) - start[alias] < max_candidates
    with np.errstate(divide="ignore", invalid="ignore"):
        alias_total = total[alias]
        scores = np.where(alias_total > 0, prior / alias_total, 1.0 / np.maximum(count[alias], 1))
    return np.minimum(count, max_candidates), entity[kept], scores[kept]


def _best_prior_rows(
    alias: np.ndarray, entity: np.ndarray, prior: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per (alias, entity), in entity order: several names of one entity may normalise
    to the same alias, which then keeps the highest of their priors."""
    order = np.lexsort((-prior, entity, alias))
    alias, entity, prior = alias[order], entity[order], prior[order]
    del order
    first = np.ones(alias.size, dtype=bool)
    first[1:] = (alias[1:] != alias[:-1]) | (entity[1:] != entity[:-1])
    return alias[first], entity[first], prior[first]


def _alias_totals(
    alias: np.ndarray, prior: np.ndarray, count: np.ndarray, start: np.ndarray, num_aliases: int
) -> np.ndarray:
    """The total prior of each alias, summed by Python's sum() in entity order as it always was,
    so that every score is the same to the last bit."""
    total = prior[start[:-1]] if num_aliases else np.zeros(0)
    shared = np.flatnonzero(count > 1)
    if shared.size:
        values = prior[(count > 1)[alias]].tolist()
        bounds = accumulate(count[shared].tolist(), initial=0)
        total[shared] = [sum(values[lo:hi]) for lo, hi in pairwise(bounds)]
    return total
