r"""Knowledge distillation from a KG embedding: the KG's view of the answer as soft targets.

A :class:`KGETeacher` answers an example's query (its ``entity`` and ``relations``, e.g.
*dog* and ``hypernym``) with a softmax over candidate answers: the teacher's top
``num_candidates`` entities plus the gold ones (open QA), or the example's choices
(multiple choice). The score of a candidate is the log-sum-exp of its KGE scores over the
query's relations.

The student's distribution over the same candidates is read from the language model's
next-token logits where the answer starts, one forward pass: each candidate is represented
by the first token of its label as the answer would be written. Candidates whose labels
start with the same token are merged, their teacher probabilities summed. The loss, added
to the task loss with weight :math:`\lambda`, is Hinton et al.'s

.. math::
    \lambda\, T^2\, \mathrm{KL}\big(\mathrm{softmax}(s / T) \,\|\, \mathrm{softmax}(z / T)\big)

with teacher scores :math:`s`, student logits :math:`z` and temperature :math:`T`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from kgpeft.configuration import ConfigError, check_field_types, dataclass_from_dict, is_int
from kgpeft.errors import KGPeftError
from kgpeft.kge.embeddings import KGEmbeddings

if TYPE_CHECKING:
    from kgpeft.graph import KnowledgeGraph
    from kgpeft.tasks.base import TaskExample


class DistillationError(KGPeftError, ValueError):
    """An example the teacher cannot answer (no entity, relations or choice entities)."""


class DistillationConfigError(ConfigError):
    """A distillation setting is unknown, missing, of the wrong type or out of range."""


@dataclass
class SoftTargets:
    """A batch's teacher distributions, as the collator builds them.

    Attributes:
        position (Tensor): ``(B,)`` the position whose logits predict the answer's first token.
        tokens (Tensor): ``(B, K)`` each candidate's first token id, ``-1`` for padding.
        logits (Tensor): ``(B, K)`` teacher scores of the candidates.
        temperature (float): softens both distributions.
        weight (float): weight of the loss next to the task loss.
    """

    position: Tensor
    tokens: Tensor
    logits: Tensor
    temperature: float = 2.0
    weight: float = 0.5

    def to(self, device: torch.device | str) -> SoftTargets:
        return SoftTargets(
            self.position.to(device), self.tokens.to(device), self.logits.to(device), self.temperature, self.weight
        )


def distillation_loss(logits: Tensor, targets: SoftTargets) -> Tensor:
    """:math:`T^2\\,\\mathrm{KL}(\\text{teacher} \\| \\text{student})` over each row's candidates, averaged over rows.

    Args:
        logits (Tensor): ``(B, L, V)`` the language model's logits.
        targets (SoftTargets): the teacher's candidates and scores.
    """
    t = targets.temperature
    rows = torch.arange(logits.size(0), device=logits.device)
    student = logits[rows, targets.position].float()  # (B, V)
    tokens = targets.tokens
    valid = tokens >= 0  # (B, K)
    same = (tokens[:, :, None] == tokens[:, None, :]) & valid[:, None, :] & valid[:, :, None]  # (B, K, K)
    earlier = torch.ones_like(same[0]).tril(-1)  # (K, K): j < k
    first = valid & ~(same & earlier).any(dim=2)  # the first occurrence of each token
    teacher = torch.softmax((targets.logits.float() / t).masked_fill(~valid, float("-inf")), dim=1)  # (B, K)
    teacher = (same.float() @ teacher[..., None]).squeeze(-1).masked_fill(~first, 0.0)  # merged onto first
    log_student = torch.log_softmax(
        (student.gather(1, tokens.clamp(min=0)) / t).masked_fill(~first, float("-inf")), dim=1
    )
    kl = torch.where(first, teacher * (torch.log(teacher.clamp(min=1e-12)) - log_student), 0.0).sum(dim=1)
    return kl.mean() * t * t


@dataclass
class DistillationConfig:
    """The ``distillation:`` section of a job config."""

    teacher: str = field(
        metadata={"help": "A KG embedding file (`kgpeft kge train`) trained on the job's KG. Required."}
    )
    candidates: Literal["top_k", "choices"] | None = field(
        default=None,
        metadata={
            "help": "`top_k` (the teacher's best entities plus the gold ones) or `choices` (the example's options). "
            "Default: `choices` for multiple-choice jobs, else `top_k`."
        },
    )
    num_candidates: int = field(default=8, metadata={"help": "Candidates per example for `top_k`."})
    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature of teacher and student."})
    weight: float = field(default=0.5, metadata={"help": "Weight of the distillation loss next to the task loss."})
    relations: list[str] = field(
        default_factory=list, metadata={"help": "Query relations for examples that name none."}
    )

    def __post_init__(self) -> None:
        check_field_types(self, DistillationConfigError)
        if not isinstance(self.teacher, str) or not self.teacher:
            raise DistillationConfigError(f"`teacher` should be a KG embedding file, got {self.teacher!r}.")
        if self.candidates not in (None, "top_k", "choices"):
            raise DistillationConfigError(f"`candidates` should be 'top_k' or 'choices', got {self.candidates!r}.")
        if not is_int(self.num_candidates) or self.num_candidates < 2:
            raise DistillationConfigError(f"`num_candidates` should be at least 2, got {self.num_candidates!r}.")
        if not self.temperature > 0:
            raise DistillationConfigError(f"`temperature` should be positive, got {self.temperature!r}.")
        if not self.weight >= 0:
            raise DistillationConfigError(f"`weight` should be non-negative, got {self.weight!r}.")
        self.relations = list(self.relations)

    @classmethod
    def from_dict(cls, values: dict) -> DistillationConfig:
        return dataclass_from_dict(cls, values, "distillation config", DistillationConfigError)

    def build_teacher(self, kg: KnowledgeGraph, multiple_choice: bool = False) -> KGETeacher:
        """Load the teacher file (refused unless trained on ``kg``) and wrap it."""
        candidates = self.candidates or ("choices" if multiple_choice else "top_k")
        return KGETeacher(
            KGEmbeddings.load(self.teacher, kg),
            kg,
            candidates=candidates,
            num_candidates=self.num_candidates,
            temperature=self.temperature,
            weight=self.weight,
            relations=self.relations,
        )


class KGETeacher:
    """Soft targets over candidate answers from a trained KG embedding.

    Args:
        embeddings (KGEmbeddings): the teacher, trained on ``kg`` (checked by fingerprint).
        kg (KnowledgeGraph): the KG the examples' entity keys refer to.
        candidates (str): ``"top_k"``: the teacher's best ``num_candidates`` entities plus the
            gold ``answer_entities``; ``"choices"``: the example's ``choice_entities``.
            (default: ``"top_k"``)
        num_candidates (int): candidates per example for ``"top_k"``. (default: ``8``)
        temperature (float): softmax temperature :math:`T`. (default: ``2.0``)
        weight (float): loss weight :math:`\\lambda`. (default: ``0.5``)
        relations (Sequence[str], optional): the query relations for examples without their own
            ``relations``. (default: none)
    """

    def __init__(
        self,
        embeddings: KGEmbeddings,
        kg: KnowledgeGraph,
        *,
        candidates: Literal["top_k", "choices"] = "top_k",
        num_candidates: int = 8,
        temperature: float = 2.0,
        weight: float = 0.5,
        relations: Sequence[str] = (),
    ) -> None:
        embeddings.check_kg(kg)
        if candidates not in ("top_k", "choices"):
            raise ValueError(f"`candidates` should be 'top_k' or 'choices', got {candidates!r}.")
        if num_candidates < 2:
            raise ValueError(f"`num_candidates` should be at least 2, got {num_candidates}.")
        if temperature <= 0:
            raise ValueError(f"`temperature` should be positive, got {temperature}.")
        self.embeddings, self.kg = embeddings, kg
        self.candidates, self.num_candidates = candidates, num_candidates
        self.temperature, self.weight, self.relations = temperature, weight, tuple(relations)

    def _query(self, example: TaskExample, index: int) -> tuple[int, list[int]]:
        relations = example.relations or self.relations
        if example.entity is None or not relations:
            raise DistillationError(
                f"Row {index}: the teacher needs the example's `entity` and `relations` (or `relations=` on the "
                f"teacher) to know what to answer; got entity={example.entity!r}, relations={relations!r}."
            )
        try:
            return self.kg.entity_id(example.entity), [self.kg.relation_id(r) for r in relations]
        except KeyError as e:
            raise DistillationError(f"Row {index}: {e.args[0]} is not in the teacher's KG.") from None

    @torch.no_grad()
    def _scores(self, head: int, relations: list[int], candidates: Tensor | None) -> Tensor:
        device = self.embeddings.device
        h = torch.full((len(relations),), head, device=device)
        r = torch.tensor(relations, device=device)
        cands = None if candidates is None else candidates.to(device)
        return torch.logsumexp(self.embeddings.score_tails(h, r, cands).float(), dim=0).cpu()  # (N,)

    def soft_targets(self, examples: Sequence[TaskExample]) -> list[tuple[list[int], list[float]]]:
        """Per example, ``(candidate entity ids, teacher scores)``."""
        out = []
        for i, example in enumerate(examples):
            head, relations = self._query(example, i)
            if self.candidates == "choices":
                if len(example.choice_entities) != len(example.choices) or not example.choices:
                    raise DistillationError(
                        f"Row {i}: distilling over choices needs `choice_entities` parallel to `choices`; got "
                        f"{len(example.choice_entities)} entities for {len(example.choices)} choices."
                    )
                ids = [self.kg.entity_id(k) for k in example.choice_entities]
                out.append((ids, self._scores(head, relations, torch.tensor(ids)).tolist()))
                continue
            scores = self._scores(head, relations, None)
            scores[head] = float("-inf")  # an entity is not its own answer
            gold = [self.kg.entity_id(k) for k in example.answer_entities]
            top = [e for e in scores.topk(self.num_candidates + len(gold)).indices.tolist() if e not in gold]
            ids = list(dict.fromkeys([*gold, *top]))[: max(self.num_candidates, len(gold))]
            out.append((ids, scores[ids].tolist()))
        return out


def first_tokens(tokenizer, labels: Sequence[str], leading_space: bool = True) -> list[int]:
    """The first token id of each label written as an answer (after a space, as the dataset writes targets)."""
    texts = [(" " + label.strip()) if leading_space else label.strip() for label in labels]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [row[0] if row else -1 for row in ids]


def collate_soft_targets(features: Sequence[dict]) -> SoftTargets:
    """Pad the ``distill_*`` entries of dataset features into :class:`SoftTargets`."""
    k = max(len(f["distill_tokens"]) for f in features)
    tokens = torch.full((len(features), k), -1, dtype=torch.long)
    logits = torch.zeros(len(features), k)
    for i, f in enumerate(features):
        n = len(f["distill_tokens"])
        tokens[i, :n] = torch.as_tensor(f["distill_tokens"])
        logits[i, :n] = torch.as_tensor(f["distill_logits"])
    position = torch.tensor([f["distill_position"] for f in features])
    temperature, weight = features[0]["distill_settings"]
    return SoftTargets(position, tokens, logits, temperature, weight)


__all__ = [
    "DistillationConfig",
    "DistillationConfigError",
    "DistillationError",
    "KGETeacher",
    "SoftTargets",
    "collate_soft_targets",
    "distillation_loss",
    "first_tokens",
]
