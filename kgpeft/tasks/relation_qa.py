"""Relation QA: questions about a synset along one of nine WordNet relations, every true tail accepted.

*Name a part of a car.* → *accelerator* (or *air bag*, *bumper*, ...); *What group is a dog a
member of?* → *Canis*; *What is the opposite of the adjective "good"?* → *bad*. The answer
depends on which relation is asked, so a subgraph's facts help only if the right ones are read.
"""

from __future__ import annotations

from collections.abc import Sequence

from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.tasks.base import POS_WORDS, Task, TaskExample, dominant_senses, relation_ids, require_extras
from kgpeft.tasks.graph_qa import RelationQuestion, graph_qa

#: The question of each relation group: ``(relations, template, subject POS)``. ``{a}`` is the
#: subject's label with an indefinite article, ``{x}`` the bare label, ``{pos}`` its POS word; a
#: ``None`` POS asks about every POS. Tails are what the relation leads to from the subject, as
#: WordNet's pointers read: ``car part_meronym accelerator`` (an accelerator is part of a car),
#: ``car part_holonym elevator`` (a car is part of an elevator).
QUESTIONS: dict[str, tuple[tuple[str, ...], str, str | None]] = {
    "hypernym": (("hypernym", "instance_hypernym"), "What is {a} a kind of?", "n"),
    "hyponym": (("hyponym", "instance_hyponym"), "Name a kind of {x}.", "n"),
    "part_meronym": (("part_meronym",), "Name a part of {a}.", "n"),
    "part_holonym": (("part_holonym",), "What is {a} a part of?", "n"),
    "member_meronym": (("member_meronym",), "Name a member of {x}.", "n"),
    "member_holonym": (("member_holonym",), "What group is {a} a member of?", "n"),
    "substance_meronym": (("substance_meronym",), "What is {a} made of?", "n"),
    "antonym": (("antonym",), 'What is the opposite of the {pos} "{x}"?', None),
    "derivationally_related_form": (
        ("derivationally_related_form",),
        'Name a word derived from the {pos} "{x}".',
        None,
    ),
}
#: Every relation :func:`relation_qa` asks about, in the order of :data:`QUESTIONS`.
RELATIONS: tuple[str, ...] = tuple(r for relations, _, _ in QUESTIONS.values() for r in relations)


def relation_qa(
    kg: KnowledgeGraph,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    max_examples: int | None = None,
    relations: Sequence[str] = RELATIONS,
    max_per_relation: int | None = 3000,
    dominant_sense_only: bool = True,
) -> dict[str, list[TaskExample]]:
    r"""Questions about a synset along one relation, answered by any of the relation's tails.

    One question per subject synset and relation group of :data:`QUESTIONS` in which the
    subject has an outgoing edge of one of ``relations``:

    - hypernym, instance_hypernym: *What is a dog a kind of?*
    - hyponym, instance_hyponym: *Name a kind of dog.*
    - part_meronym: *Name a part of a car.*; part_holonym: *What is a wheel a part of?*
    - member_meronym: *Name a member of Canis.*; member_holonym: *What group is a dog a member of?*
    - substance_meronym: *What is a brick made of?*
    - antonym: *What is the opposite of the adjective "good"?*
    - derivationally_related_form: *Name a word derived from the verb "run".*

    - The first seven ask about nouns only (``extras["pos"] == "n"``), as their templates read.
      Antonyms and derivations ask about every POS (most antonyms are adjectives'), so their
      questions name the POS: *increase* the noun and *increase* the verb have different
      antonyms and derivations, and the same text with two answer sets would be a contradiction
      in training and, split by subject, across splits.
    - ``accepted_answers`` are all names (label and aliases) of all tails of the group's
      relations from the subject, ``answer_entities`` their keys, and ``answer`` the label of
      the first tail in triple order; ``relations`` the group's relations among ``relations``.
    - A subject's label takes an indefinite article where the template reads *a X*; capitalised
      labels take none (*What is Canis a kind of?*), and mass nouns get one too (*What is a
      limestone made of?*), as in :func:`hypernym_qa`. *Name a kind of X* and *Name a member of
      X* keep the bare label, which reads well for kinds (*a kind of dog*) and for the names of
      most groups (*Canis*, *genus Bacillus*, *NATO*). *Name a kind of X* also accepts instances
      (*Name a kind of city.* → *Rome*).
    - A question is skipped when the subject's label is one of its accepted answers (nothing to
      ask), and, with ``dominant_sense_only``, when the label more likely means another synset
      of the same POS or is tied (see ``name_priors``): the question names the subject by its
      label alone, so it must mean this sense.
    - At most ``max_per_relation`` questions per group are kept, a seeded sample in the
      original order, so that no relation swamps the others: on WordNet 3.0 there are 57.6k
      hypernym, 13.5k derivation, 11.1k hyponym, 10.4k member holonym, 5.4k part holonym, 5.2k
      member meronym, 4.7k antonym, 2.5k part meronym and 0.45k substance questions; the default
      keeps 3000 of each of the first seven, 24k in all. ``max_examples`` samples from what is left.

    WordNet's antonyms and derivations relate words, not synsets; the KG keeps them as an edge
    between the two words' synsets. So a derivation may start from another lemma of the
    subject's synset (*car* → *machinist*, through *machine*); it is still a true answer about
    the synset.

    The split is by subject (:func:`split_by_entity`): all questions about a synset are in one
    split, and no test subject is a training subject. Tails do appear across splits, as answers
    and as subjects of their own questions.

    Args:
        kg (KnowledgeGraph): WordNet (:func:`kgpeft.datasets.load`), or any KG with ``relations``
            and ``extras["pos"]``.
        seed (int): seeds the split and the samples. (default: ``0``)
        split_fractions (Sequence[float]): train, valid and test fractions. (default: ``(0.8, 0.1, 0.1)``)
        max_examples (int, optional): keep a seeded sample of this many examples. (default: all)
        relations (Sequence[str]): the relations asked about, among :data:`RELATIONS`.
            (default: :data:`RELATIONS`, all twelve)
        max_per_relation (int, optional): keep a seeded sample of this many questions per
            relation group. (default: ``3000``; ``None`` keeps all)
        dominant_sense_only (bool): skip subjects whose label is ambiguous. (default: ``True``)

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}`` lists of :class:`TaskExample`, in
        subject order, then in the order of :data:`QUESTIONS`.
    """
    task = "relation_qa"
    unknown = [r for r in relations if r not in RELATIONS]
    if unknown:
        raise ValueError(f"`relations` should be among {', '.join(RELATIONS)}, got {', '.join(map(repr, unknown))}.")
    relation_ids(kg, task, relations)  # each is in the KG
    require_extras(kg, task, "pos")
    if max_per_relation is not None and max_per_relation < 0:  # named as this builder's argument
        raise ValueError(f"`max_per_relation` should be non-negative or None, got {max_per_relation}.")
    pos = kg.extras["pos"]
    questions = [
        RelationQuestion(
            group,
            tuple(r for r in group_relations if r in relations),
            template.replace("{x}", "{head}"),  # the bare label is {x} in this task's templates (`Task.example`)
            None if subject_pos is None else lambda h, p=subject_pos: pos[h] == p,
        )
        for group, (group_relations, template, subject_pos) in QUESTIONS.items()
        if any(r in relations for r in group_relations)
    ]
    return graph_qa(
        kg,
        questions,
        task=task,
        seed=seed,
        split_fractions=split_fractions,
        max_examples=max_examples,
        max_per_question=max_per_relation,
        keep_subjects=(lambda subjects: dominant_senses(kg, subjects)) if dominant_sense_only else None,
        fields={"pos": [POS_WORDS.get(p, p) for p in pos]},
    )


RELATION_QA = Task(
    "relation_qa",
    relation_qa,
    task_type="causal_lm",
    metric="qa",
    templates=tuple(template for _, template, _ in QUESTIONS.values()),
)
