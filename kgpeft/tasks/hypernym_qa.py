"""Hypernym QA: *What kind of thing is a dog?* → *canine*, as generation and as multiple choice."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import torch

from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.tasks.base import (
    Task,
    TaskExample,
    by_split,
    check_split_args,
    dominant_senses,
    indefinite,
    relation_ids,
    require_extras,
    split_of,
)
from kgpeft.utils import paused_gc


@paused_gc()  # builds ~100k small objects; see its docstring
def hypernym_qa(
    kg: KnowledgeGraph,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    max_examples: int | None = None,
    num_choices: int = 4,
    relations: Sequence[str] = ("hypernym", "instance_hypernym"),
    dominant_sense_only: bool = True,
) -> dict[str, list[TaskExample]]:
    r"""Questions *What kind of thing is a <noun>?* answered by the noun's hypernym.

    One example per noun synset (``extras["pos"] == "n"``) with an outgoing edge of one of
    ``relations``. ``instance_hypernym`` is included by default, so instances are asked too
    (*What kind of thing is Colombo?* → *national capital*; a capitalised label takes no
    article). Verbs are left out: their hypernyms (troponymy) are no *kind of thing*.

    - ``answer`` is the label of the first hypernym in triple order; ``accepted_answers`` are
      all names (label and aliases) of all its hypernyms, and ``answer_entities`` their keys.
    - A synset is skipped when its label is one of the accepted answers (nothing to ask), and,
      with ``dominant_sense_only``, when its label more likely means another noun synset or is
      tied (see ``name_priors``): the question names the synset by its label alone, so it must
      mean this sense. *bank* asks about the sloping land, not the other nine banks.
    - ``choices`` hold the gold label and ``num_choices - 1`` distractors, drawn from the labels
      of all hypernym targets that share the gold hypernym's ``lexname`` (so *canine* competes
      with *feline*, not *national capital*), then from all of them. Distractors are never a
      name of the subject or of any of its ancestors, which would also be true answers. The
      draw and the order are seeded by ``seed`` and the subject's key; ``label`` is the gold index.

    The split is by subject (:func:`split_by_entity`): a test question's subject never appears
    as a training subject. Hypernyms *do* appear across splits, as answers and as subjects of
    their own questions: the answers are shared categories, and a model is meant to learn them.

    Args:
        kg (KnowledgeGraph): WordNet (:func:`kgpeft.datasets.load`), or any KG with ``relations``
            and ``extras["pos"]``, ``extras["lexname"]``.
        seed (int): seeds the split, the sample and the choices. (default: ``0``)
        split_fractions (Sequence[float]): train, valid, test. (default: ``(0.8, 0.1, 0.1)``)
        max_examples (int, optional): keep a seeded sample of this many examples. (default: all)
        num_choices (int): options per multiple-choice question. (default: ``4``)
        relations (Sequence[str]): the hypernym relations, from hyponym to hypernym.
            (default: ``("hypernym", "instance_hypernym")``)
        dominant_sense_only (bool): skip synsets whose label is ambiguous. (default: ``True``)

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}`` lists of :class:`TaskExample`, in entity order.
    """
    task = "hypernym_qa"
    rel_ids = relation_ids(kg, task, relations)
    require_extras(kg, task, "pos", "lexname")
    split_fractions = check_split_args(split_fractions, max_examples)
    if num_choices < 2:
        raise ValueError(f"`num_choices` should be at least 2, got {num_choices}.")
    pos, lexname = kg.extras["pos"], kg.extras["lexname"]

    parents: dict[int, list[int]] = {}
    edges = kg.triples[:, torch.isin(kg.triples[1], torch.tensor(rel_ids))]
    for h, t in zip(edges[0].tolist(), edges[2].tolist(), strict=True):
        if pos[h] == "n":
            parents.setdefault(h, []).append(t)
    subjects = dominant_senses(kg, parents) if dominant_sense_only else set(parents)

    # Distractor pools: hypernym labels unique case-insensitively, per lexname and overall.
    hypernym_ids = sorted({t for ts in parents.values() for t in ts})
    pool_by_label: dict[str, int] = {}
    for t in hypernym_ids:
        pool_by_label.setdefault(kg.labels[t].lower(), t)
    everything = sorted(pool_by_label)
    pools: dict[str, list[str]] = {}
    for name in everything:
        pools.setdefault(lexname[pool_by_label[name]], []).append(name)

    lowered = {e: {kg.labels[e].lower(), *(a.lower() for a in kg.aliases[e])} for e in [*parents, *hypernym_ids]}
    closures = _name_closures(hypernym_ids, parents, lowered, kg)
    rng = random.Random()
    examples = []
    for h in sorted(subjects):
        label, hypernyms = kg.labels[h], list(dict.fromkeys(parents[h]))
        if any(label.lower() in lowered[t] for t in hypernyms):
            continue
        key, gold = kg.entity_keys[h], kg.labels[hypernyms[0]]
        rng.seed(f"{seed}\0{key}")
        true_names = [lowered[h], *(closures[p] for p in hypernyms)]
        distractors = _draw(rng, [pools[lexname[hypernyms[0]]], everything], num_choices - 1, true_names)
        if len(distractors) < num_choices - 1:
            raise ValueError(
                f"`num_choices`={num_choices} needs {num_choices - 1} distractors for {key!r} ({label!r}), but "
                f"only {len(distractors)} hypernym labels are neither its names nor its ancestors'."
            )
        choices = [(kg.labels[pool_by_label[d]], pool_by_label[d]) for d in distractors] + [(gold, hypernyms[0])]
        rng.shuffle(choices)
        choices, choice_ids = [c for c, _ in choices], [e for _, e in choices]
        subject = indefinite(label)
        text = f"What kind of thing is {subject}?"
        start = len("What kind of thing is ") + len(subject) - len(label)
        examples.append(
            TaskExample(
                id=f"{task}/{key}",
                text=text,
                answer=gold,
                entity=key,
                split=split_of(key, split_fractions, seed),
                target_start=start,
                target_end=start + len(label),
                label=choices.index(gold),
                choices=tuple(choices),
                accepted_answers=tuple(dict.fromkeys(n for t in hypernyms for n in kg.names(t))),
                answer_entities=tuple(kg.entity_keys[t] for t in hypernyms),
                choice_entities=tuple(kg.entity_keys[e] for e in choice_ids),
                relations=tuple(relations),
            )
        )
    return by_split(examples, max_examples, seed)


def _name_closures(
    entities: Iterable[int], parents: dict[int, list[int]], lowered: dict[int, set[str]], kg: KnowledgeGraph
) -> dict[int, frozenset[str]]:
    """The names of each entity and of all its ancestors, in lower case.

    Raises:
        ValueError: if the hypernyms form a cycle; the message names an entity on it.
    """
    closures: dict[int, frozenset[str]] = {}
    visiting: set[int] = set()

    def closure(e: int) -> frozenset[str]:
        if e not in closures:
            if e in visiting:
                raise ValueError(f"The hypernyms of {kg.entity_keys[e]!r} ({kg.labels[e]!r}) lead back to it.")
            visiting.add(e)
            closures[e] = frozenset(lowered[e]).union(*map(closure, parents.get(e, ())))
            visiting.discard(e)
        return closures[e]

    for e in entities:
        closure(e)
    return closures


def _draw(rng: random.Random, pools: Sequence[list[str]], k: int, true_names: list[set[str]]) -> list[str]:
    """``k`` distinct names in none of ``true_names``, from the first pool, then the next where it runs short."""
    picks: list[str] = []

    def allowed(name: str) -> bool:
        return name not in picks and not any(name in names for names in true_names)

    for pool in pools:
        for _ in range(10 * k):  # random tries, which suffice where most of the pool is allowed
            if len(picks) == k:
                return picks
            name = pool[rng.randrange(len(pool))]
            if allowed(name):
                picks.append(name)
        for name in rng.sample(pool, len(pool)):  # a small or mostly disallowed pool: go through all of it
            if len(picks) == k:
                return picks
            if allowed(name):
                picks.append(name)
    return picks


HYPERNYM_QA = Task(
    "hypernym_qa", hypernym_qa, task_type="causal_lm", metric="qa", templates=("What kind of thing is {a}?",)
)
