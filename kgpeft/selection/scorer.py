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
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from kgpeft.graph import KnowledgeGraph
from kgpeft.nn.features import NodeFeatures, TextNodeFeatures
from kgpeft.nn.rgcn_encoder import RGCNEncoder
from kgpeft.selection.config import FactScorerConfig


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
    higher of its two scores in :func:`~kgpeft.selection.top_facts`.

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


def build_fact_scorer(kg: KnowledgeGraph, tokenizer, embedding: nn.Embedding, config: FactScorerConfig) -> FactScorer:
    """A fresh scorer reading entity labels through ``embedding`` (the base model's, frozen); its ``config``
    attribute is ``config``."""
    torch.manual_seed(config.seed)
    features = TextNodeFeatures(kg, tokenizer, embedding, config.hidden_channels)
    scorer = FactScorer(
        features,
        num_relations=2 * kg.num_relations,
        question_channels=embedding.embedding_dim,
        hidden_channels=config.hidden_channels,
        num_layers=config.num_layers,
    )
    scorer.config = config  # what an adapter that holds it saves beside its weights
    return scorer


def question_token_ids(tokenizer, text: str) -> list[int]:
    """The tokens a question vector pools: ``text``'s, without special tokens (one token 0 for none)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"] or [0]


def pooled_questions(scorer: FactScorer, ids: list[Tensor]) -> Tensor:
    """``(B, d_model)``: the mean frozen input embedding of each question's token ids ``ids[b]`` (non-empty)."""
    weight = scorer.features.embedding.weight.detach()
    offsets = torch.tensor([0, *[len(i) for i in ids[:-1]]]).cumsum(0)
    return nn.functional.embedding_bag(torch.cat(ids).to(weight.device), weight, offsets.to(weight.device))


def question_vectors(scorer: FactScorer, tokenizer, texts: list[str]) -> Tensor:
    """``(B, d_model)``: the mean frozen input embedding of each question's tokens."""
    return pooled_questions(scorer, [torch.tensor(question_token_ids(tokenizer, t)) for t in texts])


def fact_batch(dataset, indices: list[int], kg: KnowledgeGraph) -> tuple[Batch, Tensor, Tensor]:
    """``(graph, seed_mask (N,), positive (E,))`` for some examples of a :class:`~kgpeft.data.KnowledgeDataset`."""
    graph = Batch.from_data_list([dataset.graphs[i] for i in indices])
    seeds, answers = set(), set()
    for b, i in enumerate(indices):
        seeds.update((b, m.entity) for m in dataset.mentions[i])
        answers.update((b, kg.entity_id(k)) for k in dataset.examples[i].answer_entities or ())
    keys = list(zip(graph.batch.tolist(), graph.n_id.tolist(), strict=True))
    seed_mask = torch.tensor([k in seeds for k in keys], dtype=torch.bool)
    answer_mask = torch.tensor([k in answers for k in keys], dtype=torch.bool)
    src, dst = graph.edge_index
    positive = (seed_mask[src] & answer_mask[dst]) | (seed_mask[dst] & answer_mask[src])  # (E,)
    return graph, seed_mask, positive
