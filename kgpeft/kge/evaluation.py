r"""Filtered rank evaluation of link prediction, the protocol of the literature.

For each test triple :math:`(h, r, t)` the model ranks every entity as the tail of
:math:`(h, r, ?)` and as the head of :math:`(?, r, t)`. In the *filtered* setting
(Bordes et al., 2013) every other candidate that forms a known true triple (in train,
valid or test) is removed before ranking, so a model is not punished for ranking
another correct answer first. Ties count as the mean of the optimistic rank
(:math:`1 + |\{s > s^*\}|`) and the pessimistic rank (:math:`1 + |\{s \ge s^*\}|`,
the true entity excluded), which is PyKEEN's *realistic* rank: a model that scores
everything equally gets the rank it would get at random, not 1.

Queries are scored in batches against all entities, and the known answers of a batch are
gathered from a CSR index of ``(entity, relation) → answers``, so an evaluation on
WordNet (117k entities) needs ``batch_size × num_entities`` floats at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

HITS_AT = (1, 3, 10)


class AnswerIndex:
    """All known answers of ``(entity, relation)`` queries, in both directions, as a CSR.

    Args:
        triples (Sequence[Tensor]): ``(3, E)`` triple sets (e.g. train, valid and test) whose
            union is the set of known true triples.
        num_entities (int): number of entities.
        num_relations (int): number of relations.
    """

    def __init__(self, triples: Sequence[Tensor], num_entities: int, num_relations: int) -> None:
        known = torch.unique(torch.cat([t.long().cpu() for t in triples], dim=1), dim=1)
        h, r, t = known
        self.num_entities, self.num_relations = num_entities, num_relations
        # direction 0: (h, r) → t; direction 1: (t, r) → h
        self._ptr, self._col = [], []
        for key, answer in ((h * num_relations + r, t), (t * num_relations + r, h)):
            order = torch.argsort(key * num_entities + answer)
            counts = torch.bincount(key, minlength=num_entities * num_relations)
            self._ptr.append(torch.cat([counts.new_zeros(1), counts.cumsum(0)]))
            self._col.append(answer[order])

    def to(self, device: torch.device | str) -> AnswerIndex:
        """This index with its tensors on ``device`` (where :meth:`answers` then works and answers)."""
        moved = copy.copy(self)
        moved._ptr, moved._col = [p.to(device) for p in self._ptr], [c.to(device) for c in self._col]
        return moved

    def answers(self, entity: Tensor, relation: Tensor, heads: bool) -> tuple[Tensor, Tensor]:
        """``(row, col)``: every known answer ``col`` of query ``row`` of the batch, on the index's device.

        ``heads=False`` asks for the tails of ``(entity[i], relation[i], ?)``, ``heads=True``
        for the heads of ``(?, relation[i], entity[i])``.
        """
        ptr, col = self._ptr[int(heads)], self._col[int(heads)]
        key = entity.to(ptr.device) * self.num_relations + relation.to(ptr.device)
        start, counts = ptr[key], ptr[key + 1] - ptr[key]
        row = torch.repeat_interleave(torch.arange(key.numel(), device=ptr.device), counts)
        offsets = torch.arange(row.numel(), device=ptr.device) - (counts.cumsum(0) - counts)[row]
        return row, col[start[row] + offsets]


def filtered_ranks(scores: Tensor, target: Tensor, filter_row: Tensor, filter_col: Tensor) -> Tensor:
    """Realistic filtered ranks of ``target`` in each row of ``scores``.

    Args:
        scores (Tensor): ``(B, N)`` scores of all candidates, higher is better.
        target (Tensor): ``(B,)`` the true candidate of each row.
        filter_row, filter_col (Tensor): candidates to remove (known true answers); the
            target itself may be among them.

    Returns:
        ``(B,)`` float ranks, 1 the best: the mean of the optimistic and the pessimistic rank.
    """
    b, n = scores.shape
    rows = torch.arange(b, device=scores.device)
    if scores.isnan().any():  # a NaN score is the lowest score, never the best
        scores = scores.nan_to_num(nan=float("-inf"))
    true = scores[rows, target]
    # Count over the whole row, then take back the few filtered candidates: no (B, N) mask is built.
    greater = (scores > true[:, None]).sum(dim=1)
    at_least = (scores >= true[:, None]).sum(dim=1) - 1  # the target never counts against itself
    fr, fc = filter_row.to(scores.device), filter_col.to(scores.device)
    keep = fc != target[fr]
    pairs = torch.unique(fr[keep] * n + fc[keep])
    fr, fc = pairs // n, pairs % n
    filtered = scores[fr, fc]
    greater = greater - torch.bincount(fr[filtered > true[fr]], minlength=b)
    at_least = at_least - torch.bincount(fr[filtered >= true[fr]], minlength=b)
    optimistic, pessimistic = 1 + greater, 1 + at_least
    return (optimistic + pessimistic).double() / 2


@dataclass
class RankMetrics:
    """MRR, MR and Hits@k of a set of ranks."""

    mrr: float
    mr: float
    hits: dict[int, float]
    count: int

    @classmethod
    def from_ranks(cls, ranks: Tensor) -> RankMetrics:
        ranks = ranks.double()
        if ranks.numel() == 0:
            return cls(float("nan"), float("nan"), {k: float("nan") for k in HITS_AT}, 0)
        return cls(
            mrr=ranks.reciprocal().mean().item(),
            mr=ranks.mean().item(),
            hits={k: (ranks <= k).double().mean().item() for k in HITS_AT},
            count=ranks.numel(),
        )

    def as_dict(self) -> dict[str, float]:
        return {"mrr": self.mrr, "mr": self.mr, **{f"hits@{k}": v for k, v in self.hits.items()}}


@dataclass
class RankResult:
    """The ranks of an evaluation and their metrics.

    Attributes:
        head_ranks, tail_ranks (Tensor): ``(E,)`` realistic filtered ranks of each test triple's head and tail.
        relations (Tensor): ``(E,)`` the triples' relations.
        relation_keys (list[str], optional): relation names for :meth:`per_relation`.
    """

    head_ranks: Tensor
    tail_ranks: Tensor
    relations: Tensor
    relation_keys: list[str] | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def metrics(self, direction: str = "both") -> RankMetrics:
        """Metrics over ``"head"``, ``"tail"`` or ``"both"`` directions (both: mean over 2E ranks)."""
        ranks = {"head": self.head_ranks, "tail": self.tail_ranks}.get(direction)
        if ranks is None:
            if direction != "both":
                raise ValueError(f"`direction` should be 'head', 'tail' or 'both', got {direction!r}.")
            ranks = torch.cat([self.head_ranks, self.tail_ranks])
        return RankMetrics.from_ranks(ranks)

    @property
    def mrr(self) -> float:
        return self.metrics().mrr

    def per_relation(self, direction: str = "both") -> dict[str, RankMetrics]:
        """Metrics per relation (keyed by name when :attr:`relation_keys` is set)."""
        out = {}
        for rel in torch.unique(self.relations).tolist():
            mask = self.relations == rel
            sub = RankResult(self.head_ranks[mask], self.tail_ranks[mask], self.relations[mask])
            out[self.relation_keys[rel] if self.relation_keys else str(rel)] = sub.metrics(direction)
        return out

    def summary(self) -> dict[str, float]:
        """Flat metrics: ``mrr``, ``mr``, ``hits@k`` (both directions), then ``head_*`` and ``tail_*``."""
        out = self.metrics().as_dict()
        for direction in ("head", "tail"):
            out.update({f"{direction}_{k}": v for k, v in self.metrics(direction).as_dict().items()})
        return out


ScoreFn = Callable[[Tensor, Tensor, bool], Tensor]


@torch.no_grad()
def evaluate_ranks(
    score_fn: ScoreFn,
    triples: Tensor,
    known: AnswerIndex,
    *,
    batch_size: int = 256,
    relation_keys: list[str] | None = None,
    device: torch.device | str | None = None,
) -> RankResult:
    """Rank the heads and tails of ``triples`` against all entities, filtered by ``known``.

    Args:
        score_fn (Callable): ``score_fn(entity, relation, heads)`` returns ``(B, N)`` scores:
            of the tails of ``(entity, relation, ?)`` when ``heads`` is false, of the heads of
            ``(?, relation, entity)`` when it is true.
        triples (Tensor): ``(3, E)`` triples to rank.
        known (AnswerIndex): the known true triples to filter (they should include ``triples``).
        batch_size (int): queries scored at once. (default: ``256``)
        relation_keys (list[str], optional): relation names for per-relation metrics.
        device: where ``score_fn`` expects its indices. (default: CPU)
    """
    triples = triples.long().cpu()
    ranks: dict[bool, list[Tensor]] = {False: [], True: []}
    for start in range(0, triples.size(1), batch_size):
        h, r, t = triples[:, start : start + batch_size]
        for heads in (False, True):
            entity, target = (t, h) if heads else (h, t)
            scores = score_fn(entity.to(device), r.to(device), heads).float()
            row, col = known.answers(entity, r, heads)
            ranks[heads].append(filtered_ranks(scores, target.to(scores.device), row, col).cpu())
    cat = lambda xs: torch.cat(xs) if xs else torch.zeros(0, dtype=torch.double)  # noqa: E731
    return RankResult(cat(ranks[True]), cat(ranks[False]), triples[1].clone(), relation_keys)
