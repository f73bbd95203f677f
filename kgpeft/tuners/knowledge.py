"""`KnowledgeBatch`: what a forward call gets from the knowledge graph."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Batch

from kgpeft.tuners.layer import KnowledgeError


@dataclass
class FactCandidates:
    """Every fact a batch's subgraphs hold, tokenised once, for a fact scorer to choose the memory facts from.

    A model with a fact scorer attached (:meth:`~kgpeft.KGPeftModel.attach_fact_scorer`, trained
    jointly with a ``memory`` adapter) scores the subgraph's edges, picks each sample's ``limit``
    best facts and reads them as memory slots, each slot biased by its fact's log-probability:
    picking is indexing into this table, nothing is tokenised per step.

    Args:
        token_ids (Tensor): ``(B, P, C, L)`` token ids of each sample's ``C`` candidate facts (its
            subgraph's distinct triples, in edge order) as written at each of ``P`` places: ``P = 1`` for facts
            written alone, else the ``k``-th picked fact is written as place ``k``'s piece of the facts block.
        token_mask (Tensor): ``(B, P, C, L)``, ``True`` for real tokens; a candidate of none is none.
        triples (Tensor): ``(B, C)`` the triple id of each candidate, ``-1`` for padding.
        edge_candidate (Tensor): ``(E,)`` each edge of the batch's graph: its triple's candidate column.
        seed_mask (Tensor): ``(N,)`` the graph's nodes the text is linked to.
        question_ids (Tensor): ``(B, Q)`` the question's token ids; ``question_mask (B, Q)`` the real ones.
        limit (int): facts read per sample (``RetrievalConfig.memory_facts``).
    """

    token_ids: torch.Tensor
    token_mask: torch.Tensor
    triples: torch.Tensor
    edge_candidate: torch.Tensor
    seed_mask: torch.Tensor
    question_ids: torch.Tensor
    question_mask: torch.Tensor
    limit: int

    def to(self, device: torch.device | str) -> FactCandidates:
        tensors = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return FactCandidates(**tensors, limit=self.limit)


@dataclass
class KnowledgeBatch:
    """The retrieved subgraphs of a batch and where its tokens are linked to.

    Args:
        graph (Batch): one subgraph per sample, as built by
            :class:`~kgpeft.retrieval.SubgraphRetriever` (``n_id``, ``edge_index``,
            ``edge_type``, ``batch``).
        token_node_index (Tensor): ``(B, T)``, for each input token the row of ``graph``'s
            nodes it is linked to, ``-1`` where none (see
            :func:`~kgpeft.retrieval.batch_node_index`).
        fact_ids (Tensor, optional): ``(B, F, L)`` token ids of up to ``F`` selected facts per
            sample, ``L`` tokens each, for ``knowledge_mode="memory"``. (default: none)
        fact_mask (Tensor, optional): ``(B, F, L)``, ``True`` for real fact tokens. (default: none)
        fact_bias (Tensor, optional): ``(B, F)`` an additive attention bias on every memory slot of
            each fact: the fact scorer's log-probability of it. (default: none)
        candidates (FactCandidates, optional): the facts a model's fact scorer chooses ``fact_ids``
            from, in place of ``fact_ids``. (default: none)
    """

    graph: Batch
    token_node_index: torch.Tensor
    fact_ids: torch.Tensor | None = None
    fact_mask: torch.Tensor | None = None
    fact_bias: torch.Tensor | None = None
    candidates: FactCandidates | None = None

    @classmethod
    def empty(cls, batch_size: int, seq_len: int, device: torch.device | str | None = None) -> KnowledgeBatch:
        """Knowledge with no nodes and no linked token: the model then computes plain LoRA."""
        graph = Batch(
            n_id=torch.zeros(0, dtype=torch.long, device=device),
            edge_index=torch.zeros(2, 0, dtype=torch.long, device=device),
            edge_type=torch.zeros(0, dtype=torch.long, device=device),
            batch=torch.zeros(0, dtype=torch.long, device=device),
            ptr=torch.zeros(batch_size + 1, dtype=torch.long, device=device),
        )
        graph._num_graphs = batch_size
        return cls(graph, torch.full((batch_size, seq_len), -1, dtype=torch.long, device=device))

    @property
    def batch_size(self) -> int:
        return self.token_node_index.size(0)

    def to(self, device: torch.device | str) -> KnowledgeBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return KnowledgeBatch(
            self.graph.to(device),
            self.token_node_index.to(device),
            move(self.fact_ids),
            move(self.fact_mask),
            move(self.fact_bias),
            None if self.candidates is None else self.candidates.to(device),
        )

    def validate(self, num_entities: int, batch_size: int | None = None, seq_len: int | None = None) -> None:
        """Raise :class:`~kgpeft.tuners.layer.KnowledgeError` naming what does not fit."""
        index, graph = self.token_node_index, self.graph
        if index.dim() != 2:
            raise KnowledgeError(f"`token_node_index` should have shape (B, T), got {tuple(index.shape)}.")
        if graph.num_graphs != index.size(0):
            raise KnowledgeError(
                f"The knowledge graph batch holds {graph.num_graphs} subgraphs but `token_node_index` has "
                f"{index.size(0)} rows; they must match, one per sample."
            )
        if batch_size is not None and index.size(0) != batch_size:
            raise KnowledgeError(f"The inputs have batch size {batch_size} but the knowledge has {index.size(0)}.")
        if seq_len is not None and index.size(1) != seq_len:
            raise KnowledgeError(
                f"The inputs have {seq_len} tokens per row but `token_node_index` has {index.size(1)}."
            )
        if (self.fact_ids is None) != (self.fact_mask is None):
            raise KnowledgeError("Pass `fact_ids` and `fact_mask` together.")
        if self.fact_ids is not None and (
            self.fact_ids.dim() != 3
            or self.fact_ids.shape != self.fact_mask.shape
            or self.fact_ids.size(0) != index.size(0)
        ):
            raise KnowledgeError(
                f"`fact_ids` and `fact_mask` should both have shape (B, F, L) with B = {index.size(0)}, got "
                f"{tuple(self.fact_ids.shape)} and {tuple(self.fact_mask.shape)}."
            )
        if self.fact_bias is not None and (self.fact_ids is None or self.fact_bias.shape != self.fact_ids.shape[:2]):
            want = "(B, F) of `fact_ids`" if self.fact_ids is None else str(tuple(self.fact_ids.shape[:2]))
            raise KnowledgeError(
                f"`fact_bias` should have one bias per fact of `fact_ids`, shape {want}, got "
                f"{tuple(self.fact_bias.shape)}."
            )
        num_nodes = graph.n_id.numel()
        if index.numel() and (int(index.min()) < -1 or int(index.max()) >= num_nodes):
            raise KnowledgeError(
                f"`token_node_index` values should lie in [-1, {num_nodes}) (the graph batch has {num_nodes} nodes), "
                f"got [{int(index.min())}, {int(index.max())}]."
            )
        linked = index >= 0
        rows = torch.arange(index.size(0), device=index.device)[:, None].expand_as(index)
        if bool((graph.batch[index[linked]] != rows[linked]).any()):
            raise KnowledgeError("`token_node_index` links a token to a node of another sample's subgraph.")
        if num_nodes and (int(graph.n_id.min()) < 0 or int(graph.n_id.max()) >= num_entities):
            raise KnowledgeError(
                f"The graph's `n_id` should be entity ids in [0, {num_entities}), "
                f"got [{int(graph.n_id.min())}, {int(graph.n_id.max())}]."
            )
