r"""Joint training of the fact scorer with a ``memory`` adapter: the scorer picks and weighs each batch's facts.

Staged, the scorer ranks each example's facts once, before the adapter trains, and never
learns from the task loss. Jointly, a model holding a scorer
(:meth:`~kgpeft.KGPeftModel.attach_fact_scorer`) scores the batch's subgraphs at every call,
reads each sample's ``limit`` best facts as memory slots (:class:`~kgpeft.tuners.FactCandidates`
holds them tokenised, so picking is indexing) and biases every slot of fact :math:`f` by
:math:`\beta_f = \log p(f \mid q)`, the scorer's log-probability of the fact among the sample's
facts. The memory's softmax then weighs fact :math:`f`'s slots by :math:`p(f \mid q)` against
the other selected facts', so the task loss reaches the R-GCN through the attention.

Facts are ranked as :func:`~kgpeft.selection.top_facts` ranks them (a triple by the better of
its two directed edges), so :func:`~kgpeft.selection.select_facts` and
:func:`~kgpeft.selection.answer_fact_recall` read a jointly trained scorer as a staged one; a
fact's probability sums its edges' (:func:`~kgpeft.selection.fact_probabilities`).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from kgpeft.selection.scorer import FactScorer, pooled_questions, segment_log_softmax
from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import KnowledgeError

#: The rank key of a padding candidate (no edge): after every fact.
_NO_FACT = torch.iinfo(torch.long).max


def candidate_scores(scorer: FactScorer, knowledge: KnowledgeBatch) -> tuple[Tensor, Tensor]:
    """``(rank, log_prob)``, both ``(B, C)`` over ``knowledge.candidates``: each candidate fact's place in the
    batch's edges sorted by score (its best edge's; lower is better, :data:`_NO_FACT` for padding), so ties
    fall as in :func:`~kgpeft.selection.top_facts`; and its log-probability (its edges' probabilities summed)."""
    candidates, graph = knowledge.candidates, knowledge.graph
    b, c = candidates.triples.shape
    if candidates.edge_candidate.numel() != graph.edge_index.size(1) or candidates.seed_mask.numel() != graph.num_nodes:
        raise KnowledgeError(
            f"`candidates` describe {candidates.edge_candidate.numel()} edges and {candidates.seed_mask.numel()} "
            f"nodes, but the graph has {graph.edge_index.size(1)} and {graph.num_nodes}: build both with one "
            "KnowledgeCollator call."
        )
    questions = zip(candidates.question_ids, candidates.question_mask, strict=True)
    scores = scorer(graph, candidates.seed_mask, pooled_questions(scorer, [ids[mask] for ids, mask in questions]))
    edge_batch = graph.batch[graph.edge_index[0]]  # (E,)
    log_p = segment_log_softmax(scores, edge_batch, b)  # (E,)
    slot = edge_batch * c + candidates.edge_candidate  # (E,) the row of each edge's candidate in (B * C)
    order = torch.argsort(scores.detach(), descending=True, stable=True)
    place = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))
    rank = torch.full((b * c,), _NO_FACT, dtype=torch.long, device=slot.device).scatter_reduce(0, slot, place, "amin")
    top = scatter(log_p.detach(), slot, dim_size=b * c, reduce="max")  # (B * C,), 0 where no edge
    total = scatter((log_p - top[slot]).exp(), slot, dim_size=b * c, reduce="sum")
    # clamped: a candidate without edges (padding) must not send NaN back through log(0)
    log_prob = total.clamp_min(torch.finfo(total.dtype).tiny).log() + top
    return rank.view(b, c), log_prob.view(b, c)


def pick_candidates(rank: Tensor, limit: int) -> tuple[Tensor, Tensor]:
    """``(columns, real)``, both ``(B, k)`` with ``k = min(limit, C)``: each sample's best-ranked candidate
    columns, best first, and which of them are facts (not padding)."""
    columns = torch.argsort(rank, dim=1, stable=True)[:, : min(limit, rank.size(1))]
    return columns, rank.gather(1, columns) != _NO_FACT


def select_memory_facts(scorer: FactScorer, knowledge: KnowledgeBatch) -> KnowledgeBatch:
    """``knowledge`` with ``fact_ids``, ``fact_mask`` and ``fact_bias`` of the scorer's best candidates.

    Each sample reads its ``candidates.limit`` best facts, best first; a sample with fewer reads
    fewer (none: plain LoRA). ``fact_bias`` is each fact's log-probability, with the gradient
    that trains the scorer.
    """
    candidates = knowledge.candidates
    rank, log_prob = candidate_scores(scorer, knowledge)
    columns, real = pick_candidates(rank, candidates.limit)
    b, places = candidates.token_ids.shape[:2]
    k = columns.size(1)
    # the k-th pick as written at place k (a block's piece), or every pick at the one place (facts alone)
    at = torch.arange(k, device=columns.device).clamp(max=places - 1).expand(b, -1)  # (B, k)
    rows = torch.arange(b, device=columns.device)[:, None].expand(-1, k)
    fact_ids = candidates.token_ids[rows, at, columns]  # (B, k, L)
    fact_mask = candidates.token_mask[rows, at, columns] & real[..., None]
    fact_bias = torch.where(real, log_prob.gather(1, columns), torch.zeros((), dtype=log_prob.dtype))
    return dataclasses.replace(knowledge, fact_ids=fact_ids, fact_mask=fact_mask, fact_bias=fact_bias)


@torch.no_grad()
def selected_triples(scorer: FactScorer, knowledge: KnowledgeBatch) -> list[list[int]]:
    """Per sample, the triple ids :func:`select_memory_facts` reads, best first."""
    rank, _ = candidate_scores(scorer, knowledge)
    columns, real = pick_candidates(rank, knowledge.candidates.limit)
    triples = knowledge.candidates.triples.gather(1, columns)
    return [row[keep].tolist() for row, keep in zip(triples, real, strict=True)]
