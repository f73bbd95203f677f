"""Graph-selected facts: train a :class:`~kgpeft.nn.FactScorer` and rank each example's facts with it.

The scorer learns from the examples that name their answer entities
(``TaskExample.answer_entities``): the facts joining a linked entity and an answer are
the positives of a listwise loss over the subgraph's facts. No language model runs, so
this stage costs seconds; its ranking then decides which facts the prompt holds.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch_geometric.data import Batch

from kgpeft.configuration import ConfigError
from kgpeft.errors import KGFileNotFoundError, KGPeftError
from kgpeft.graph import KnowledgeGraph
from kgpeft.nn.fact_scorer import FactScorer, answer_fact_loss, top_facts
from kgpeft.nn.features import TextNodeFeatures
from kgpeft.utils import atomic_file

SCORER_FORMAT = "kgpeft.fact_scorer"


class FactScorerError(KGPeftError, ValueError):
    """A saved fact scorer is unreadable or does not fit the KG, or a task gives it nothing to learn from."""


class FactScorerConfigError(ConfigError):
    """A :class:`FactScorerConfig` value is out of range or of the wrong kind."""


@dataclass
class FactScorerConfig:
    """How the fact scorer is built and trained."""

    hidden_channels: int = field(default=128, metadata={"help": "Width of the scorer's R-GCN node states."})
    num_layers: int = field(default=2, metadata={"help": "R-GCN layers of the scorer."})
    max_steps: int = field(default=200, metadata={"help": "Training steps of the scorer (no LM runs)."})
    batch_size: int = field(default=32, metadata={"help": "Questions per scorer step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate of the scorer."})
    seed: int = field(default=0, metadata={"help": "Initialisation and batch order."})

    def __post_init__(self) -> None:
        for name in ("hidden_channels", "num_layers", "max_steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise FactScorerConfigError(f"`{name}` should be a positive integer, got {value!r}.")
        if not self.learning_rate > 0:
            raise FactScorerConfigError(f"`learning_rate` should be positive, got {self.learning_rate!r}.")


def build_fact_scorer(kg: KnowledgeGraph, tokenizer, embedding: nn.Embedding, config: FactScorerConfig) -> FactScorer:
    """A fresh scorer reading entity labels through ``embedding`` (the base model's, frozen)."""
    torch.manual_seed(config.seed)
    features = TextNodeFeatures(kg, tokenizer, embedding, config.hidden_channels)
    return FactScorer(
        features,
        num_relations=2 * kg.num_relations,
        question_channels=embedding.embedding_dim,
        hidden_channels=config.hidden_channels,
        num_layers=config.num_layers,
    )


def question_vectors(scorer: FactScorer, tokenizer, texts: list[str]) -> Tensor:
    """``(B, d_model)``: the mean frozen input embedding of each question's tokens."""
    weight = scorer.features.embedding.weight.detach()
    ids = [torch.tensor(tokenizer(t, add_special_tokens=False)["input_ids"] or [0]) for t in texts]
    offsets = torch.tensor([0, *[len(i) for i in ids[:-1]]]).cumsum(0)
    return nn.functional.embedding_bag(torch.cat(ids).to(weight.device), weight, offsets.to(weight.device))


def _fact_batch(dataset, indices: list[int], kg: KnowledgeGraph) -> tuple[Batch, Tensor, Tensor]:
    """``(graph, seed_mask (N,), positive (E,))`` for some examples of a :class:`KnowledgeDataset`."""
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


def train_fact_scorer(scorer: FactScorer, dataset, tokenizer, config: FactScorerConfig) -> dict[str, Any]:
    """Train ``scorer`` on ``dataset``'s examples that name answer entities; return a short report."""
    kg = dataset.kg
    usable = [i for i, e in enumerate(dataset.examples) if e.answer_entities]
    if not usable:
        raise FactScorerError(
            "The fact scorer learns from examples that name their answer entities (`answer_entities`); "
            "this task's training examples name none."
        )
    rng = random.Random(config.seed)
    params = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    scorer.train()
    t0, losses = time.perf_counter(), []
    for _ in range(config.max_steps):
        indices = rng.sample(usable, min(config.batch_size, len(usable)))
        graph, seed_mask, positive = _fact_batch(dataset, indices, kg)
        question = question_vectors(scorer, tokenizer, [dataset.examples[i].text for i in indices])
        loss = answer_fact_loss(scorer(graph, seed_mask, question), graph, positive)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    scorer.eval()
    return {"steps": config.max_steps, "seconds": time.perf_counter() - t0, "final_loss": sum(losses[-10:]) / 10}


@torch.no_grad()
def select_facts(scorer: FactScorer, dataset, tokenizer, limit: int, batch_size: int = 64) -> list[list[int]]:
    """Per example of ``dataset``, the triple ids of its ``limit`` best-scored facts."""
    scorer.eval()
    out: list[list[int]] = []
    for lo in range(0, len(dataset.examples), batch_size):
        indices = list(range(lo, min(lo + batch_size, len(dataset.examples))))
        graph, seed_mask, _ = _fact_batch(dataset, indices, dataset.kg)
        question = question_vectors(scorer, tokenizer, [dataset.examples[i].text for i in indices])
        out.extend(top_facts(scorer(graph, seed_mask, question), graph, limit))
    return out


@torch.no_grad()
def answer_fact_recall(scorer: FactScorer, dataset, tokenizer, k: int) -> float:
    """Share of examples naming answers whose top-``k`` facts include one joining a seed and an answer."""
    ranked = select_facts(scorer, dataset, tokenizer, k)
    hits = total = 0
    for i, triples in enumerate(ranked):
        example = dataset.examples[i]
        if not example.answer_entities:
            continue
        seeds = {m.entity for m in dataset.mentions[i]}
        answers = {dataset.kg.entity_id(a) for a in example.answer_entities}
        total += 1
        for t in triples:
            h, _, tail = dataset.kg.triples[:, t].tolist()
            if (h in seeds and tail in answers) or (tail in seeds and h in answers):
                hits += 1
                break
    return hits / max(total, 1)


def save_fact_scorer(scorer: FactScorer, config: FactScorerConfig, kg: KnowledgeGraph, path: str | os.PathLike) -> None:
    """Write the scorer's weights (the frozen embedding excluded) with its config and the KG fingerprint."""
    meta = {"format": SCORER_FORMAT, "config": json.dumps(asdict(config)), "kg_fingerprint": kg.fingerprint}
    state = {k: v.detach().cpu().contiguous() for k, v in scorer.state_dict().items()}
    with atomic_file(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def load_fact_scorer(path: str | os.PathLike, kg: KnowledgeGraph, tokenizer, embedding: nn.Embedding) -> FactScorer:
    """Read a scorer written by :func:`save_fact_scorer`; refuse one trained on another KG."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise KGFileNotFoundError(f"No fact scorer at {path}.")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as e:  # safetensors raises several kinds for a damaged file
        raise FactScorerError(f"{path} is not a readable safetensors file: {e}") from None
    if meta.get("format") != SCORER_FORMAT:
        raise FactScorerError(f"{path} is no kgpeft fact scorer (format {meta.get('format')!r}).")
    if meta.get("kg_fingerprint") != kg.fingerprint:
        raise FactScorerError(f"{path} was trained on another knowledge graph (fingerprint differs).")
    scorer = build_fact_scorer(kg, tokenizer, embedding, FactScorerConfig(**json.loads(meta["config"])))
    try:
        scorer.load_state_dict(state)
    except RuntimeError as e:
        raise FactScorerError(f"{path} does not fit its own config: {e}") from None
    scorer.eval()
    return scorer
