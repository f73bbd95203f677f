r"""Training the fact scorer (:class:`~kgpeft.selection.FactScorer`).

Two objectives (``FactScorerConfig.objective``):

- ``"answers"``: where the task names its answer entities (``TaskExample.answer_entities``),
  the facts joining a linked entity and an answer are the positives of a listwise loss over
  the subgraph's facts. No language model runs, so this costs seconds.
- ``"marginal"``: from the task loss alone, as RAG trains its retriever: for the scorer's
  ``num_candidates`` best facts :math:`f_k`, a language model scores the answer with that fact
  written before the question, and the loss is the marginal likelihood
  :math:`-\log \sum_k p(f_k \mid q)\, p(y \mid f_k, x)`. Facts that make the answer
  likely gain probability; no answer entity is needed.

:mod:`kgpeft.selection.ranking` then ranks each example's facts with the trained scorer.
"""

from __future__ import annotations

import random
import time
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from kgpeft.graph import KnowledgeGraph
from kgpeft.retrieval import render_facts
from kgpeft.selection.config import FactScorerConfig, FactScorerError
from kgpeft.selection.scorer import FactScorer, fact_batch, question_vectors, segment_log_softmax
from kgpeft.training.loss import causal_lm_head, label_log_likelihoods


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
        graph, seed_mask, positive = fact_batch(dataset, indices, kg)
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
