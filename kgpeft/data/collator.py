"""The collator: :class:`~kgpeft.data.KnowledgeDataset` features padded into one batch, subgraphs joined."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch_geometric.data import Batch

from kgpeft.kge.distillation import collate_soft_targets
from kgpeft.retrieval import batch_node_index
from kgpeft.tuners import FactCandidates, KnowledgeBatch


@dataclass
class KnowledgeCollator:
    """Pads features from :class:`~kgpeft.data.KnowledgeDataset` into a batch and joins their subgraphs.

    The batch has ``input_ids``, ``attention_mask``, ``labels`` (when the features have
    them), ``distillation`` (:class:`~kgpeft.kge.distillation.SoftTargets`, when the
    dataset has a teacher) and, with ``with_knowledge``, ``knowledge`` (a
    :class:`~kgpeft.tuners.KnowledgeBatch`); without it, a plain model gets the same tokens.

    Args:
        pad_token_id: the padding id.
        padding_side: ``"right"`` for training, ``"left"`` for batched generation.
        with_knowledge: add the ``knowledge`` entry. (default: ``True``)
    """

    pad_token_id: int
    padding_side: Literal["left", "right"] = "right"
    with_knowledge: bool = True

    def _pad(self, rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), value, dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                if self.padding_side == "right":
                    out[i, : len(r)] = torch.as_tensor(r)
                else:
                    out[i, width - len(r) :] = torch.as_tensor(r)
        return out

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        input_ids = self._pad([f["input_ids"] for f in features], self.pad_token_id)  # (B, T)
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": self._pad([[1] * len(f["input_ids"]) for f in features], 0),
        }
        if "labels" in features[0]:
            labels = [f["labels"] for f in features]
            batch["labels"] = torch.tensor(labels) if isinstance(labels[0], int) else self._pad(labels, -100)
        if "distill_tokens" in features[0]:
            batch["distillation"] = collate_soft_targets(features)
        if self.with_knowledge:
            graph = Batch.from_data_list([f["graph"] for f in features])
            token_entity = self._pad([f["token_entity"] for f in features], -1)  # (B, T) entity ids
            index = batch_node_index(graph, torch.arange(len(features))[:, None], token_entity)  # (B, T) node rows
            knowledge = KnowledgeBatch(graph, index)
            if "candidate_ids" in features[0]:
                knowledge.candidates = self._candidates(features)
            elif "fact_ids" in features[0]:
                knowledge.fact_ids, knowledge.fact_mask = self._facts([f["fact_ids"] for f in features])
            batch["knowledge"] = knowledge
        return batch

    def _candidates(self, features: Sequence[dict[str, Any]]) -> FactCandidates:
        """The batch's candidate facts, their edges, linked nodes and questions (``with_fact_candidates``)."""
        ids, mask = self._places([f["candidate_ids"] for f in features])
        triples = torch.full((ids.size(0), ids.size(2)), -1, dtype=torch.long)
        for b, f in enumerate(features):
            triples[b, : len(f["candidate_triples"])] = torch.as_tensor(f["candidate_triples"], dtype=torch.long)
        questions = [f["question_ids"] for f in features]
        return FactCandidates(
            token_ids=ids,
            token_mask=mask,
            triples=triples,
            edge_candidate=torch.tensor([c for f in features for c in f["edge_candidate"]], dtype=torch.long),
            seed_mask=torch.tensor([s for f in features for s in f["seed_nodes"]], dtype=torch.bool),
            question_ids=self._pad(questions, 0),
            question_mask=self._pad([[1] * len(q) for q in questions], 0).bool(),
            limit=features[0]["memory_facts"],
        )

    @staticmethod
    def _places(rows: Sequence[Sequence[Sequence[Sequence[int]]]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids (B, P, C, L), mask (B, P, C, L))`` of each sample's candidate facts' tokens at each place a picked
        fact can take (one for facts written alone), padded; a sample reading fewer places pads the rest."""
        places = max(len(r) for r in rows)
        num = max(1, max((len(p) for r in rows for p in r), default=1))
        length = max(1, max((len(x) for r in rows for p in r for x in p), default=1))
        ids = torch.zeros(len(rows), places, num, length, dtype=torch.long)
        mask = torch.zeros(len(rows), places, num, length, dtype=torch.bool)
        for b, sample in enumerate(rows):
            for p, facts in enumerate(sample):
                for f, tokens in enumerate(facts):
                    ids[b, p, f, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
                    mask[b, p, f, : len(tokens)] = True
        return ids, mask

    @staticmethod
    def _facts(rows: Sequence[Sequence[Sequence[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids (B, F, L), mask (B, F, L))`` of each sample's facts' tokens, padded (at least one of each)."""
        ids, mask = KnowledgeCollator._places([[facts] for facts in rows])  # one place each
        return ids[:, 0], mask[:, 0]
