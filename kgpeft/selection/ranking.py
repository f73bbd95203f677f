"""Which of an example's facts come first: the prior order, or the fact scorer's.

:func:`rank_facts` is the order without a scorer (facts touching a linked entity first);
:func:`select_facts` ranks with a trained :class:`~kgpeft.selection.FactScorer`;
:func:`fact_recall` says how often a ranking puts a fact reaching the answer first.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from kgpeft.selection.scorer import FactScorer, fact_batch, question_vectors, segment_log_softmax


def rank_facts(graph: Data, seeds: Collection[int]) -> list[int]:
    """A sample's triples, those touching a seed (linked) entity first, each once, one per entity pair first.

    A KG often states a link both ways (WordNet: ``dog hypernym canine`` and ``canine hyponym
    dog``), and retrieval lists the two side by side; so within each group a triple joining an
    entity pair already listed moves to the end, and the first ``k`` facts say ``k`` different
    things (on the main job, the answer is among the first 2 facts for 94% of the questions
    instead of 80%).

    Args:
        graph (Data): one sample's subgraph with ``n_id``, ``edge_index`` and ``edge_id``
            (the KG triple of each edge), as :class:`~kgpeft.retrieval.SubgraphRetriever` gives it.
        seeds (Collection[int]): the linked entity ids.

    Returns:
        Triple ids (columns of ``kg.triples``): those touching a seed, then the others, each
        group in edge order with repeated entity pairs last; every triple once.
    """
    n_id, seeds = graph.n_id.tolist(), set(seeds)
    edges = [
        (n_id[s], n_id[d], e) for (s, d), e in zip(graph.edge_index.t().tolist(), graph.edge_id.tolist(), strict=True)
    ]
    touching = [e for e in edges if e[0] in seeds or e[1] in seeds]
    others = [e for e in edges if not (e[0] in seeds or e[1] in seeds)]
    listed: set[int] = set()
    pairs: set[frozenset[int]] = set()
    order: list[int] = []
    for group in (touching, others):
        repeats = []
        for head, tail, triple in group:
            if triple in listed:
                continue
            listed.add(triple)
            pair = frozenset((head, tail))
            (repeats if pair in pairs else order).append(triple)
            pairs.add(pair)
        order.extend(repeats)
    return order


def top_facts(scores: Tensor, graph, limit: int | None = None) -> list[list[int]]:
    """Per sample, its triple ids (``graph.edge_id``) from the best-scored down, each triple once."""
    edge_batch = graph.batch[graph.edge_index[0]].tolist()
    order = torch.argsort(scores.detach().float(), descending=True, stable=True).tolist()
    edge_id = graph.edge_id.tolist()
    ranked: list[dict[int, None]] = [{} for _ in range(graph.num_graphs)]
    for e in order:
        ranked[edge_batch[e]].setdefault(edge_id[e])
    return [list(r)[:limit] for r in ranked]


@torch.no_grad()
def select_facts(scorer: FactScorer, dataset, tokenizer, limit: int, batch_size: int = 64) -> list[list[int]]:
    """Per example of ``dataset``, the triple ids of its ``limit`` best-scored facts."""
    scorer.eval()
    out: list[list[int]] = []
    for lo in range(0, len(dataset.examples), batch_size):
        indices = list(range(lo, min(lo + batch_size, len(dataset.examples))))
        graph, seed_mask, _ = fact_batch(dataset, indices, dataset.kg)
        question = question_vectors(scorer, tokenizer, [dataset.examples[i].text for i in indices])
        out.extend(top_facts(scorer(graph, seed_mask, question), graph, limit))
    return out


@torch.no_grad()
def fact_probabilities(scorer: FactScorer, dataset, tokenizer, indices: Sequence[int]) -> list[dict[int, float]]:
    """Per example ``indices[i]`` of ``dataset``, the scorer's probability of each subgraph triple.

    The softmax of the scores over the example's edges, a triple's two directions summed: the
    chance that a fact drawn from the scorer's distribution is that triple.
    """
    scorer.eval()
    out: list[dict[int, float]] = [{} for _ in indices]
    if not indices:
        return out
    graph, seed_mask, _ = fact_batch(dataset, list(indices), dataset.kg)
    question = question_vectors(scorer, tokenizer, [dataset.examples[i].text for i in indices])
    edge_batch = graph.batch[graph.edge_index[0]]
    probs = segment_log_softmax(scorer(graph, seed_mask, question), edge_batch, len(indices)).exp()
    for b, triple, p in zip(edge_batch.tolist(), graph.edge_id.tolist(), probs.tolist(), strict=True):
        out[b][triple] = out[b].get(triple, 0.0) + p
    return out


@torch.no_grad()
def answer_fact_recall(scorer: FactScorer, dataset, tokenizer, k: int) -> float:
    """Share of examples naming answers whose top-``k`` facts by ``scorer`` join a seed and an answer."""
    return fact_recall(dataset, select_facts(scorer, dataset, tokenizer, k), k)


def fact_recall(dataset, rankings, k: int) -> float:
    """Share of ``dataset``'s examples naming answers whose first ``k`` facts of ``rankings`` (triple
    ids per example, best first) include one joining a linked entity and a gold answer entity."""
    hits = total = 0
    for i, triples in enumerate(rankings):
        example = dataset.examples[i]
        if not example.answer_entities:
            continue
        seeds = {m.entity for m in dataset.mentions[i]}
        answers = {dataset.kg.entity_id(a) for a in example.answer_entities}
        total += 1
        for t in triples[:k]:
            h, _, tail = dataset.kg.triples[:, t].tolist()
            if (h in seeds and tail in answers) or (tail in seeds and h in answers):
                hits += 1
                break
    return hits / max(total, 1)
