"""`FactScorer`: which facts of a retrieved subgraph answer the question.

The graph chooses the knowledge, the model reads it: the scorer ranks the subgraph's
facts (edges) for the question, and the top ones are written into the prompt as text,
where the language model can copy their words. A label squeezed into a node vector and
injected through a low-rank path carries nothing the model can spell back out (measured
on the main job: the same adapter scored the same with another question's subgraph).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from kgpeft.nn.features import NodeFeatures
from kgpeft.nn.rgcn_encoder import RGCNEncoder


class FactScorer(nn.Module):
    r"""Question-conditioned fact scoring over a subgraph with an R-GCN.

    Node states come from an R-GCN over the node features, with a learned flag added to
    the nodes the text is linked to (the seeds). Each directed edge :math:`(s, r, d)` of
    sample :math:`b` is scored against the question vector :math:`q_b`:

    .. math::
        \text{score}(s, r, d) = \mathrm{MLP}\big([z_s;\ z_d;\ w_r;\ w_r \odot W q_b;\
        (z_s + z_d) \odot W q_b]\big)

    The products with :math:`W q_b` let the question pick the relation (*a kind of X*
    against *a part of X*) and the entities. A triple stored in both directions gets the
    higher of its two scores in :func:`rank_facts`.

    Args:
        features (NodeFeatures): node features, ``n_id (N,) -> (N, hidden_channels)``.
        num_relations (int): edge types of the retrieved subgraphs (inverse relations included).
        question_channels (int): width of the question vectors.
        hidden_channels (int): width of the node states. (default: ``128``)
        num_layers (int): R-GCN layers. (default: ``2``)
        num_bases (int, optional): R-GCN basis decomposition. (default: ``4``)

    Shapes:
        - graph: a PyG ``Batch`` with ``n_id (N,)``, ``edge_index (2, E)``, ``edge_type (E,)``, ``batch (N,)``
        - seed_mask: ``(N,)`` bool; question: ``(B, question_channels)``
        - output: edge scores ``(E,)``
    """

    def __init__(
        self,
        features: NodeFeatures,
        num_relations: int,
        question_channels: int,
        hidden_channels: int = 128,
        num_layers: int = 2,
        num_bases: int | None = 4,
    ) -> None:
        super().__init__()
        if features.out_channels != hidden_channels:
            raise ValueError(
                f"`features` give {features.out_channels} channels, but `hidden_channels` is {hidden_channels}."
            )
        self.features = features
        self.seed = nn.Embedding(2, hidden_channels)
        self.rgcn = RGCNEncoder(
            hidden_channels, hidden_channels, num_relations=num_relations, num_layers=num_layers, num_bases=num_bases
        )
        self.question = nn.Linear(question_channels, hidden_channels)
        self.relation = nn.Embedding(num_relations, hidden_channels)
        self.mlp = nn.Sequential(
            nn.Linear(5 * hidden_channels, hidden_channels), nn.ReLU(), nn.Linear(hidden_channels, 1)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.features.reset_parameters()
        self.rgcn.reset_parameters()
        for module in (self.seed, self.question, self.relation, *self.mlp):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, graph, seed_mask: Tensor, question: Tensor) -> Tensor:
        x = self.features(graph.n_id) + self.seed(seed_mask.long())  # (N, d)
        z = self.rgcn(x, graph.edge_index, graph.edge_type)  # (N, d)
        src, dst = graph.edge_index
        q = self.question(question.to(z.dtype))[graph.batch[src]]  # (E, d)
        w = self.relation(graph.edge_type)  # (E, d)
        h = torch.cat([z[src], z[dst], w, w * q, (z[src] + z[dst]) * q], dim=-1)  # (E, 5d)
        return self.mlp(h).squeeze(-1)  # (E,)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.question.in_features}, {self.question.out_features}, "
            f"num_relations={self.relation.num_embeddings})"
        )


def segment_log_softmax(scores: Tensor, segment: Tensor, num_segments: int) -> Tensor:
    """``log_softmax`` of ``scores (E,)`` within each segment (``segment (E,)`` in ``[0, num_segments)``)."""
    top = scatter(scores.detach(), segment, dim_size=num_segments, reduce="max")  # (S,)
    shifted = scores - top[segment]
    total = scatter(shifted.exp(), segment, dim_size=num_segments, reduce="sum")  # (S,)
    return shifted - total.log()[segment]


def answer_fact_loss(scores: Tensor, graph, positive: Tensor) -> Tensor:
    r"""Listwise loss of the facts that reach an answer: :math:`-\log \sum_{e \in P_b} p(e \mid q_b)`.

    ``positive (E,)`` marks the edges that join a seed and an answer entity; samples with
    none are left out. Zero (with a gradient path) when no sample has one.
    """
    edge_batch = graph.batch[graph.edge_index[0]]  # (E,)
    b = graph.num_graphs
    log_p = segment_log_softmax(scores, edge_batch, b)  # (E,)
    masked = log_p.masked_fill(~positive, float("-inf"))
    has = scatter(positive.long(), edge_batch, dim_size=b, reduce="sum") > 0  # (B,)
    if not bool(has.any()):
        return scores.sum() * 0.0
    top = scatter(masked.detach().masked_fill(~positive, -1e30), edge_batch, dim_size=b, reduce="max")  # (B,)
    safe_top = top.masked_fill(~has, 0.0)
    pos = scatter((masked - safe_top[edge_batch]).exp(), edge_batch, dim_size=b, reduce="sum")  # (B,)
    return -(pos[has].log() + safe_top[has]).mean()


def top_facts(scores: Tensor, graph, limit: int | None = None) -> list[list[int]]:
    """Per sample, its triple ids (``graph.edge_id``) from the best-scored down, each triple once."""
    edge_batch = graph.batch[graph.edge_index[0]].tolist()
    order = torch.argsort(scores.detach().float(), descending=True, stable=True).tolist()
    edge_id = graph.edge_id.tolist()
    ranked: list[dict[int, None]] = [{} for _ in range(graph.num_graphs)]
    for e in order:
        ranked[edge_batch[e]].setdefault(edge_id[e])
    return [list(r)[:limit] for r in ranked]
