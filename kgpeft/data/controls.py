"""The knowledge controls: the same examples with other knowledge, or with some of it removed.

A *control* is the knowledge an evaluation gives each example (:data:`CONTROLS`): its own
(``correct``), another example's (``shuffled``) or none (``none``); comparing an adapter's
scores under them says how much it reads the KG. Training can drop knowledge from some
examples (knowledge dropout), and an explanation removes one node or fact at a time
(:meth:`KnowledgeControls.ablated`). Each gives a copy of the dataset; nothing is linked or
retrieved again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch_geometric.data import Data

from kgpeft.data.examples import DataError

if TYPE_CHECKING:
    from kgpeft.data.dataset import KnowledgeDataset

Control = Literal["correct", "shuffled", "none"]
#: The knowledge an evaluation can give each example: its own, another example's, or none.
CONTROLS = ("correct", "shuffled", "none")


class KnowledgeControls:
    """The controls of :class:`~kgpeft.data.KnowledgeDataset`, which inherits them.

    They read the dataset's ``examples``, ``mentions``, ``graphs``, ``kg``, ``task`` and
    :meth:`~kgpeft.data.KnowledgeDataset.ranked_facts`, and copy it with its ``_replace``.
    """

    def with_knowledge(self, control: Control, seed: int = 0) -> KnowledgeDataset:
        """A copy under a control: each example keeps its text but gets other knowledge.

        - ``"correct"``: this dataset.
        - ``"shuffled"``: example ``i`` gets another example's subgraph, and its mentions keep
          their spans but link to that example's entities (a seeded derangement), so the
          facts, memory slots and linked node states all come from another question.
        - ``"none"``: no subgraph, no links, no facts: a KG-LoRA adapter computes plain LoRA.

        A learned fact ranking is dropped (it belongs to the old subgraphs): rank the new
        copy again to use one.
        """
        if control not in CONTROLS:
            raise DataError(f"`control` should be one of {CONTROLS}, got {control!r}.")
        if control == "correct":
            return self
        n = len(self.examples)
        if control == "none":
            return self._replace(graphs=[empty_graph()] * n, mentions=[[] for _ in range(n)], fact_ranking=None)
        if n < 2:
            raise DataError("A shuffled control needs at least two examples.")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        donor = [0] * n
        for k, i in enumerate(order):
            donor[i] = order[(k + 1) % n]  # a cycle through a random order: nobody keeps their own
        mentions = []
        for i, j in enumerate(donor):
            theirs = list(dict.fromkeys(m.entity for m in self.mentions[j]))
            mine = list(dict.fromkeys(m.entity for m in self.mentions[i]))
            swap = {e: theirs[k % len(theirs)] for k, e in enumerate(mine)} if theirs else {}
            mentions.append([m._replace(candidates=(swap[m.entity],), scores=(1.0,)) for m in self.mentions[i] if swap])
        return self._replace(graphs=[self.graphs[j] for j in donor], mentions=mentions, fact_ranking=None)

    def with_knowledge_dropout(self, rate: float, seed: int = 0) -> KnowledgeDataset:
        """A copy in which ``round(rate * len(self))`` examples, chosen by ``seed``, have no knowledge.

        Those examples read as under the ``"none"`` control (no subgraph, links, facts or
        memory slots); the others keep theirs, a learned fact ranking included. Trained on
        it, an adapter also learns to answer when the KG has nothing to say.
        """
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise DataError(f"`rate` should be a number in [0, 1), got {rate!r}.")
        n = len(self.examples)
        dropped = set(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: round(rate * n)].tolist())
        if not dropped:
            return self
        empty = empty_graph()
        ranking = self.fact_ranking
        return self._replace(
            graphs=[empty if i in dropped else g for i, g in enumerate(self.graphs)],
            mentions=[[] if i in dropped else m for i, m in enumerate(self.mentions)],
            fact_ranking=None if ranking is None else [[] if i in dropped else r for i, r in enumerate(ranking)],
        )

    def ablated(
        self,
        rows: Sequence[tuple[int, int | Collection[int] | None, Collection[int]]],
        answers: Sequence[str] | None = None,
    ) -> KnowledgeDataset:
        """A dataset of one row per ``(index, entities, triples)``: example ``index`` with knowledge removed.

        ``entities`` (an entity id, several, or ``None``) lose their nodes, every edge and link
        to them and every fact that names them; the ``triples`` (ids of ``kg.triples``) leave the subgraph and the fact
        ranking. The remaining facts keep their order, so the next-ranked fact takes a removed
        fact's place in the prompt and in memory. ``(i, None, ())`` is example ``i`` unchanged.
        Leave-one-out explanations score every row of one such dataset in batches.

        Args:
            rows: the examples and what each row removes.
            answers: one target per row, replacing the examples' answers (``causal_lm``); without
                it, the rows are prompts only, for generation. (default: none)
        """
        if answers is not None and len(answers) != len(rows):
            raise DataError(f"`answers` has {len(answers)} entries for {len(rows)} rows.")
        if not self.task.target_in_input:  # rows score an answer that continues the prompt
            raise DataError(f"`ablated` builds answer-scoring rows of a causal_lm dataset, not {self.task.name!r}.")
        examples, mentions, graphs, ranking = [], [], [], []
        for k, (index, entities, triples) in enumerate(rows):
            if not 0 <= index < len(self.examples):
                raise DataError(f"Row {k}: index {index} is outside the dataset's {len(self.examples)} examples.")
            graph, drop = self.graphs[index], set(triples)
            gone = torch.tensor(
                [] if entities is None else [entities] if isinstance(entities, int) else sorted(entities),
                dtype=torch.long,
            )
            ranked = self.ranked_facts(index)
            if gone.numel() and ranked:
                ends = self.kg.triples[[0, 2]][:, ranked]  # (2, F): the head and tail of each ranked fact
                named = torch.isin(ends, gone).any(0)
                drop.update(t for t, hit in zip(ranked, named.tolist(), strict=True) if hit)
            keep_node = ~torch.isin(graph.n_id, gone)
            keep_edge = keep_node[graph.edge_index].all(0) & ~torch.isin(
                graph.edge_id, torch.tensor(sorted(drop), dtype=torch.long)
            )
            remap = torch.cumsum(keep_node.long(), 0) - 1  # old node row -> new node row
            graphs.append(
                Data(
                    n_id=graph.n_id[keep_node],
                    edge_index=remap[graph.edge_index[:, keep_edge]],
                    edge_type=graph.edge_type[keep_edge],
                    edge_id=graph.edge_id[keep_edge],
                    num_nodes=int(keep_node.sum()),
                )
            )
            mentions.append([m for m in self.mentions[index] if m.entity not in gone.tolist()])
            ranking.append([t for t in ranked if t not in drop])
            example = self.examples[index]
            examples.append(example if answers is None else dataclasses.replace(example, answer=answers[k]))
        return self._replace(
            examples=examples,
            mentions=mentions,
            graphs=graphs,
            fact_ranking=ranking,
            with_target=answers is not None,
            teacher=None,
            soft_targets=None,
        )


def empty_graph() -> Data:
    """The subgraph of an example without knowledge: no nodes, no edges."""
    return Data(
        n_id=torch.zeros(0, dtype=torch.long),
        edge_index=torch.zeros(2, 0, dtype=torch.long),
        edge_type=torch.zeros(0, dtype=torch.long),
        edge_id=torch.zeros(0, dtype=torch.long),
        num_nodes=0,
    )
