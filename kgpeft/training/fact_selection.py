r"""Graph-selected facts: train a :class:`~kgpeft.nn.FactScorer` and rank each example's facts with it.

Two objectives (``FactScorerConfig.objective``):

- ``"answers"``: where the task names its answer entities (``TaskExample.answer_entities``),
  the facts joining a linked entity and an answer are the positives of a listwise loss over
  the subgraph's facts. No language model runs, so this costs seconds.
- ``"marginal"``: from the task loss alone, as RAG trains its retriever: for the scorer's
  ``num_candidates`` best facts :math:`f_k`, a language model scores the answer with that fact
  written before the question, and the loss is the marginal likelihood
  :math:`-\log \sum_k p(f_k \mid q)\, p(y \mid f_k, x)`. Facts that make the answer
  likely gain probability; no answer entity is needed.

The ranking then decides which facts the prompt (or a ``memory`` adapter) holds.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch_geometric.data import Batch

from kgpeft.configuration import ConfigError, check_field_types, dataclass_from_dict
from kgpeft.errors import KGFileNotFoundError, KGPeftError
from kgpeft.graph import KnowledgeGraph
from kgpeft.nn.fact_scorer import FactScorer, answer_fact_loss, segment_log_softmax, top_facts
from kgpeft.nn.features import TextNodeFeatures
from kgpeft.training.loss import causal_lm_head, label_log_likelihoods
from kgpeft.utils import atomic_file

SCORER_FORMAT = "kgpeft.fact_scorer"
OBJECTIVES = ("answers", "marginal")


class FactScorerError(KGPeftError, ValueError):
    """A saved fact scorer is unreadable or does not fit the KG, or a task gives it nothing to learn from."""


class FactScorerConfigError(ConfigError):
    """A :class:`FactScorerConfig` value is out of range or of the wrong kind."""


@dataclass
class FactScorerConfig:
    """How the fact scorer is built and trained."""

    hidden_channels: int = field(default=128, metadata={"help": "Width of the scorer's R-GCN node states."})
    num_layers: int = field(default=2, metadata={"help": "R-GCN layers of the scorer."})
    objective: str = field(
        default="answers",
        metadata={
            "help": "`answers`: listwise loss on the facts reaching the task's answer entities (no LM runs); "
            "`marginal`: the answer's marginal likelihood under the base LM over the scorer's top facts."
        },
    )
    num_candidates: int = field(default=4, metadata={"help": "Facts per question the `marginal` objective scores."})
    max_steps: int = field(default=200, metadata={"help": "Training steps of the scorer."})
    batch_size: int = field(default=32, metadata={"help": "Questions per scorer step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate of the scorer."})
    seed: int = field(default=0, metadata={"help": "Initialisation and batch order."})

    def __post_init__(self) -> None:
        check_field_types(self, FactScorerConfigError)
        if self.objective not in OBJECTIVES:
            raise FactScorerConfigError(f"`objective` should be one of {OBJECTIVES}, got {self.objective!r}.")
        for name in ("hidden_channels", "num_layers", "max_steps", "batch_size", "num_candidates"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise FactScorerConfigError(f"`{name}` should be a positive integer, got {value!r}.")
        if not 0 <= self.seed < 2**32:
            raise FactScorerConfigError(f"`seed` should be in [0, 2**32), got {self.seed!r}.")
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


def train_fact_scorer(
    scorer: FactScorer, dataset, tokenizer, config: FactScorerConfig, language_model: nn.Module | None = None
) -> dict[str, Any]:
    """Train ``scorer`` on ``dataset`` with ``config.objective``; return a short report.

    ``language_model`` (a causal LM, kept frozen) scores the answers for the ``marginal``
    objective; the ``answers`` objective needs none.
    """
    kg = dataset.kg
    if config.objective == "answers":
        usable = [i for i, e in enumerate(dataset.examples) if e.answer_entities]
        if not usable:
            raise FactScorerError(
                "The `answers` objective learns from examples that name their answer entities (`answer_entities`); "
                "this task's training examples name none: use `objective: marginal`."
            )
    else:
        if language_model is None:
            raise FactScorerError("The `marginal` objective scores answers with a language model; pass one.")
        usable = [i for i, e in enumerate(dataset.examples) if e.answer]
    rng = random.Random(config.seed)
    cache: dict[tuple[int, int], float] = {}  # (example, triple) -> the frozen LM's answer log-likelihood
    params = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    scorer.train()
    t0, losses = time.perf_counter(), []
    for _ in range(config.max_steps):
        indices = rng.sample(usable, min(config.batch_size, len(usable)))
        graph, seed_mask, positive = _fact_batch(dataset, indices, kg)
        question = question_vectors(scorer, tokenizer, [dataset.examples[i].text for i in indices])
        scores = scorer(graph, seed_mask, question)
        if config.objective == "answers":
            loss = answer_fact_loss(scores, graph, positive)
        else:
            examples = [dataset.examples[i] for i in indices]
            loss = marginal_fact_loss(
                scores, graph, examples, kg, tokenizer, language_model, config.num_candidates, cache, indices
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    scorer.eval()
    return {
        "objective": config.objective,
        "steps": config.max_steps,
        **({"lm_scored_facts": len(cache)} if config.objective == "marginal" else {}),
        "seconds": time.perf_counter() - t0,
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
    }


def marginal_fact_loss(
    scores: Tensor,
    graph,
    examples: list,
    kg: KnowledgeGraph,
    tokenizer,
    language_model: nn.Module,
    k: int,
    cache: dict[tuple[int, int], float] | None = None,
    keys: list[int] | None = None,
) -> Tensor:
    r"""RAG's marginal likelihood of the answers over each sample's ``k`` best-scored facts.

    :math:`-\frac{1}{B}\sum_b \log \sum_{e \in \mathrm{top}_k(b)} p(e \mid q_b)\, p(y_b \mid f_e, x_b)`,
    where :math:`p(e \mid q_b)` is the softmax of ``scores`` over the sample's edges and
    :math:`p(y_b \mid f_e, x_b)` the frozen ``language_model``'s probability of the answer with
    ``"Facts: <fact e>.\n"`` before the text. Only the scorer gets gradient.

    The LM is frozen, so an answer's likelihood given one fact never changes: with ``cache``
    (a dict kept across steps) and ``keys`` (each example's id), a pair scored once is not
    scored again.
    """
    from kgpeft.nn.fact_scorer import segment_log_softmax
    from kgpeft.retrieval import render_facts

    edge_batch = graph.batch[graph.edge_index[0]]
    log_p = segment_log_softmax(scores, edge_batch, graph.num_graphs)  # (E,)
    order = torch.argsort(scores.detach(), descending=True, stable=True).tolist()
    picked: list[list[int]] = [[] for _ in examples]
    seen: list[set[int]] = [set() for _ in examples]
    edge_ids, batches = graph.edge_id.tolist(), edge_batch.tolist()
    for e in order:
        b = batches[e]
        if len(picked[b]) < k and edge_ids[e] not in seen[b]:
            picked[b].append(e)
            seen[b].add(edge_ids[e])
    cache = {} if cache is None else cache
    keys = list(range(len(examples))) if keys is None else keys
    owners, edges, pairs, missing = [], [], [], {}
    for b, example in enumerate(examples):
        for e in picked[b]:
            owners.append(b)
            edges.append(e)
            pairs.append(pair := (keys[b], edge_ids[e]))
            if pair not in cache:
                missing[pair] = (render_facts(kg, [edge_ids[e]]) + example.text, example.answer)
    if not pairs:
        return scores.sum() * 0.0
    if missing:
        with torch.no_grad():
            scored = answer_log_likelihoods(language_model, tokenizer, list(missing.values()))
        cache.update(zip(missing, scored.tolist(), strict=True))
    log_lik = torch.tensor([cache[pair] for pair in pairs], dtype=log_p.dtype)  # (R,)
    joint = log_p[torch.tensor(edges)] + log_lik  # (R,)
    owner = torch.tensor(owners)
    top = torch.full((len(examples),), -float("inf")).scatter_reduce(0, owner, joint.detach(), "amax")
    total = torch.zeros(len(examples)).index_add(0, owner, (joint - top[owner]).exp())
    has = torch.isfinite(top)
    return -(total[has].log() + top[has]).mean()


def answer_log_likelihoods(model: nn.Module, tokenizer, rows: list[tuple[str, str]], batch_size: int = 32) -> Tensor:
    """``(R,)``: the summed log-probability of each ``(prompt, answer)`` row's answer tokens under ``model``."""
    out = []
    device = next(model.parameters()).device
    head = causal_lm_head(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for lo in range(0, len(rows), batch_size):
        prompts, targets = [], []
        for prompt, answer in rows[lo : lo + batch_size]:
            prompts.append(tokenizer(prompt)["input_ids"])
            ids = tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"]
            targets.append(ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []))
        width = max(len(p) + len(t) for p, t in zip(prompts, targets, strict=True))
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        labels = torch.full((len(prompts), width), -100, dtype=torch.long)
        for i, (p, t) in enumerate(zip(prompts, targets, strict=True)):
            input_ids[i, : len(p) + len(t)] = torch.tensor(p + t)
            labels[i, len(p) : len(p) + len(t)] = torch.tensor(t)
        mask = (labels != -100) | (torch.arange(width)[None, :] < torch.tensor([len(p) for p in prompts])[:, None])
        batch = {
            "input_ids": input_ids.to(device),
            "attention_mask": mask.long().to(device),
            "labels": labels.to(device),
        }
        summed = label_log_likelihoods(model, batch, head)  # the LM head only at answer positions
        if summed is None:
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
            log_probs = logits[:, :-1].log_softmax(-1)  # position t predicts token t + 1
            target = batch["labels"][:, 1:]
            picked = log_probs.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
            summed = (picked * (target != -100)).sum(-1)
        out.append(summed.cpu())
    return torch.cat(out)


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
def fact_probabilities(scorer: FactScorer, dataset, tokenizer, indices: Sequence[int]) -> list[dict[int, float]]:
    """Per example ``indices[i]`` of ``dataset``, the scorer's probability of each subgraph triple.

    The softmax of the scores over the example's edges, a triple's two directions summed: the
    chance that a fact drawn from the scorer's distribution is that triple.
    """
    scorer.eval()
    out: list[dict[int, float]] = [{} for _ in indices]
    if not indices:
        return out
    graph, seed_mask, _ = _fact_batch(dataset, list(indices), dataset.kg)
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
    try:
        values = json.loads(meta["config"])
    except KeyError:
        raise FactScorerError(f"{path} has no `config` in its metadata.") from None
    except json.JSONDecodeError as e:
        raise FactScorerError(f"{path}: the `config` in its metadata is not valid JSON ({e}).") from None
    config = dataclass_from_dict(FactScorerConfig, values, f"the `config` metadata of {path}", FactScorerError)
    scorer = build_fact_scorer(kg, tokenizer, embedding, config)
    try:
        scorer.load_state_dict(state)
    except RuntimeError as e:
        raise FactScorerError(f"{path} does not fit its own config: {e}") from None
    scorer.eval()
    return scorer
