"""Training KG embeddings: negative sampling or 1-to-N scoring, early stopping on valid MRR.

Two regimes, as in the literature:

- ``training="negative_sampling"`` (PyKEEN's sLCWA): each training triple against
  ``num_negatives`` corruptions of its head or tail, drawn ``"uniform"`` (head or tail
  with probability 1/2) or ``"bernoulli"`` (Wang et al., 2014: the head is replaced with
  probability ``tph / (tph + hpt)`` of its relation, which draws fewer false negatives
  for 1-to-N relations); losses ``"softplus"`` (logistic), ``"margin"`` (pairwise
  ranking with ``margin``) or ``"nssa"`` (RotatE's self-adversarial sampling).
- ``training="1-n"``: each query against all entities at once (Dettmers et al., 2018),
  with loss ``"bce"`` over all known answers of a query (KvsAll, optional label
  smoothing) or ``"ce"``, a softmax per training triple (1vsAll; Lacroix et al., 2018).

With ``reciprocal=True`` every triple ``(h, r, t)`` also trains ``(t, r⁻¹, h)`` with its own
relation ``r + R``, and heads are predicted as tails of the reciprocal relation.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from kgpeft.graph import KnowledgeGraph
from kgpeft.kge.config import KGEConfig
from kgpeft.kge.embeddings import KGEmbeddings
from kgpeft.kge.evaluation import AnswerIndex, RankResult
from kgpeft.kge.models import build_model
from kgpeft.utils import resolve_device


@dataclass
class KGETrainResult:
    """What :func:`train_kge` returns.

    Attributes:
        embeddings (KGEmbeddings): the trained embeddings (best valid MRR when validated).
        history (list[dict]): per evaluation: ``epoch``, ``loss``, ``valid_mrr``, ...
        best_epoch (int): the epoch whose state was kept.
        valid (RankResult, optional): the kept state's validation ranks.
        triples_per_second (float): training positives per second of training time (evaluation excluded).
        train_seconds (float): training time, evaluation excluded.
        eval_seconds (float): time spent in validation evaluations.
    """

    embeddings: KGEmbeddings
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    valid: RankResult | None = None
    triples_per_second: float = 0.0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


def head_probabilities(triples: Tensor, num_relations: int) -> Tensor:
    """Per relation, the probability of corrupting the head under Bernoulli sampling: ``tph / (tph + hpt)``."""
    h, r, t = triples.cpu()
    probs = torch.full((num_relations,), 0.5)
    for rel in torch.unique(r).tolist():
        mask = r == rel
        hs, ts = h[mask], t[mask]
        tph = mask.sum() / torch.unique(hs).numel()  # tails per head
        hpt = mask.sum() / torch.unique(ts).numel()  # heads per tail
        probs[rel] = tph / (tph + hpt)
    return probs


def train_kge(
    kg: KnowledgeGraph,
    config: KGEConfig | None = None,
    *,
    train_split: str = "train",
    valid_split: str | None = "valid",
    progress: bool = True,
) -> KGETrainResult:
    """Train a KG embedding on ``kg.splits[train_split]`` (or ``kg.triples`` when the KG has no splits).

    Validation (filtered MRR on ``valid_split``, filtering every split) runs every
    ``config.eval_every`` epochs; the best state is kept, and training stops after
    ``config.patience`` evaluations without improvement.
    """
    config = config or KGEConfig()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    if kg.splits and train_split not in kg.splits:
        raise KeyError(f"The KG has no split {train_split!r}; it has {', '.join(kg.splits)}.")
    train = (kg.splits[train_split] if kg.splits else kg.triples).long()
    if train.size(1) == 0:
        raise ValueError("No training triples.")
    valid = kg.splits.get(valid_split) if (valid_split and kg.splits) else None
    num_entities, num_relations = kg.num_entities, kg.num_relations
    model_relations = 2 * num_relations if config.reciprocal else num_relations
    model = build_model(config.model, num_entities, model_relations, config.hidden_channels, **config.model_kwargs())
    model.to(device)
    embeddings = KGEmbeddings(model, config, num_relations, kg.fingerprint, kg.relation_keys)

    if config.reciprocal:
        h, r, t = train
        train = torch.cat([train, torch.stack([t, r + num_relations, h])], dim=1)
    known = AnswerIndex([*kg.splits.values(), kg.triples], num_entities, num_relations)  # as KGEmbeddings.evaluate
    optimizer = (torch.optim.Adagrad if config.optimizer == "adagrad" else torch.optim.Adam)(
        model.parameters(), lr=config.learning_rate
    )
    step = _make_step(model, config, train, num_entities, model_relations, generator, device)

    result = KGETrainResult(embeddings)
    best_mrr, best_state, bad_evals, seen = -math.inf, None, 0, 0
    bar = tqdm(range(1, config.num_epochs + 1), desc=f"kge {config.model}", disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        start = time.perf_counter()
        total, batches = torch.zeros((), device=device), 0
        for batch in step.batches():
            optimizer.zero_grad(set_to_none=True)
            loss = step.loss(batch)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            batches += 1
        epoch_loss = (total / max(batches, 1)).item()
        result.train_seconds += time.perf_counter() - start
        seen += step.positives_per_epoch
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
        if valid is not None and config.eval_every and (epoch % config.eval_every == 0 or epoch == config.num_epochs):
            start = time.perf_counter()
            ranks = embeddings.evaluate_triples(valid, known, batch_size=config.eval_batch_size)
            result.eval_seconds += time.perf_counter() - start
            mrr = ranks.mrr
            result.history.append({"epoch": epoch, "loss": epoch_loss, "valid_mrr": mrr})
            bar.set_postfix(loss=f"{epoch_loss:.4f}", valid_mrr=f"{mrr:.4f}")
            if mrr > best_mrr:
                best_mrr, bad_evals = mrr, 0
                best_state = copy.deepcopy(model.state_dict())
                result.best_epoch, result.valid = epoch, ranks
            else:
                bad_evals += 1
                if config.patience and bad_evals >= config.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = epoch if config.num_epochs else 0
    model.eval()
    result.triples_per_second = seen / max(result.train_seconds, 1e-9)
    return result


class _Step:
    """Batches and the loss of one training regime."""

    positives_per_epoch: int

    def batches(self):
        raise NotImplementedError

    def loss(self, batch) -> Tensor:
        raise NotImplementedError


def _make_step(model, config, train, num_entities, num_relations, generator, device) -> _Step:
    if config.training == "negative_sampling":
        return _NegativeSampling(model, config, train, num_entities, num_relations, generator, device)
    return _OneToN(model, config, train, num_entities, num_relations, generator, device)


class _NegativeSampling(_Step):
    def __init__(self, model, config, train, num_entities, num_relations, generator, device) -> None:
        self.model, self.config, self.generator, self.device = model, config, generator, device
        self.train = train.to(device)
        self.num_entities = num_entities
        self.positives_per_epoch = train.size(1)
        if config.negative_sampler == "bernoulli":
            self.head_prob = head_probabilities(train, num_relations).to(device)
        else:
            self.head_prob = torch.full((num_relations,), 0.5, device=device)

    def batches(self):
        order = torch.randperm(self.train.size(1), generator=self.generator).to(self.device)
        for idx in order.split(self.config.batch_size):
            yield self.train[:, idx]

    def loss(self, batch: Tensor) -> Tensor:
        c, model = self.config, self.model
        h, r, t = batch
        b, k = h.numel(), c.num_negatives
        corrupt_head = torch.rand(b, k, device=self.device) < self.head_prob[r][:, None]
        random = torch.randint(self.num_entities, (b, k), device=self.device)
        pos = model.score(h, r, t)  # (B,)
        neg = model._score_corrupted(h, r, t, random, corrupt_head)  # (B, K)
        if c.loss == "margin":
            loss = F.relu(c.margin - pos[:, None] + neg).mean()
        elif c.loss == "softplus":
            loss = (F.softplus(-pos).sum() + F.softplus(neg).sum()) / (pos.numel() + neg.numel())
        else:  # self-adversarial negative sampling (Sun et al., 2019)
            weights = torch.softmax(neg.detach() * c.adversarial_temperature, dim=1)
            loss = (-F.logsigmoid(pos) - (weights * F.logsigmoid(-neg)).sum(dim=1)).mean() / 2
        if c.regularization_weight:
            ents = torch.cat([h, t])
            loss = loss + c.regularization_weight * model.regularizer(ents, r, kind=c.regularizer)
        return loss


class _OneToN(_Step):
    def __init__(self, model, config, train, num_entities, num_relations, generator, device) -> None:
        self.model, self.config, self.generator, self.device = model, config, generator, device
        self.num_entities = num_entities
        self.positives_per_epoch = train.size(1)
        h, r, t = train
        # Queries: tails of (h, r, ?) and, without reciprocal relations, heads of (?, r, t).
        directions = [(h, r, t, False)] + ([] if config.reciprocal else [(t, r, h, True)])
        if config.loss == "ce":  # one query per triple and direction, its answer the target
            self.queries = [(e.to(device), rel.to(device), a.to(device), heads) for e, rel, a, heads in directions]
        else:  # KvsAll: unique queries, labelled with all their training answers
            self.known = AnswerIndex([train], num_entities, num_relations).to(device)
            self.queries = []
            for e, rel, _, heads in directions:
                key = torch.unique(e * num_relations + rel)
                self.queries.append(((key // num_relations).to(device), (key % num_relations).to(device), None, heads))

    def batches(self):
        # Batches of each direction, in a random order across directions.
        batches = []
        for d, query in enumerate(self.queries):
            order = torch.randperm(query[0].numel(), generator=self.generator).to(self.device)
            batches.extend((d, idx) for idx in order.split(self.config.batch_size))
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i]

    def loss(self, batch) -> Tensor:
        c, model = self.config, self.model
        d, idx = batch
        e, rel, targets, heads = self.queries[d]
        e, rel = e[idx], rel[idx]
        scores = model.score_heads(rel, e) if heads else model.score_tails(e, rel)
        if c.loss == "ce":
            target = targets[idx]
            loss = F.cross_entropy(scores, target, label_smoothing=c.label_smoothing)
            ents = torch.cat([e, target])
        else:
            labels = torch.zeros_like(scores)
            labels[self.known.answers(e, rel, heads)] = 1.0
            if c.label_smoothing:
                labels = labels * (1.0 - c.label_smoothing) + 1.0 / self.num_entities
            loss = F.binary_cross_entropy_with_logits(scores, labels)
            ents = e
        if c.regularization_weight:
            loss = loss + c.regularization_weight * model.regularizer(ents, rel, kind=c.regularizer)
        return loss
