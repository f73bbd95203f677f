"""Questions from any KG with labels: one per subject and relation, every true tail accepted.

``graph_qa(kg, [RelationQuestion("part_of", ("part_of",), "What is {head} a part of?")])`` asks
*What is mitochondrial matrix a part of?* of every entity with an outgoing ``part_of`` edge; all
its ``part_of`` tails are gold answers. :func:`~kgpeft.tasks.relation_qa` is its WordNet instance
(nine questions, nouns only for seven, dominant senses only); ``kgpeft task build`` writes its
rows as a task file a job's ``task:`` reads.

A template names the subject once, as one of (:data:`SUBJECT_FIELDS`):

- ``{head}``: the subject's label, as it is;
- ``{a}``: the label after an indefinite article (*a dog*, *an elk*; a capitalised label, a
  proper name, takes none);

and may hold ``{relation}``, the question's first relation with ``_`` read as a space
(``part_of`` → *part of*), and any field a builder supplies per subject (``relation_qa``: ``{pos}``).
The gold span (``target_start``, ``target_end``) is the label's place in the text.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from kgpeft.errors import KGPeftError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.tasks.base import (
    TaskExample,
    by_split,
    check_split_args,
    indefinite,
    relation_ids,
    sample_examples,
    split_of,
)
from kgpeft.utils import paused_gc


class TaskTemplateError(KGPeftError, ValueError):
    """A graph task's template or questions cannot be asked: an unknown field, no subject, a relation asked twice."""


#: The fields a template names its subject by: the bare label, or the label after an indefinite article.
SUBJECT_FIELDS = ("head", "a")


@dataclass(frozen=True)
class RelationQuestion:
    """One question a graph task asks of each subject with an outgoing edge of one of ``relations``.

    Args:
        name (str): the question's name, in example ids (``<task>/<subject key>/<name>``).
        relations (tuple[str, ...]): relation keys whose tails answer it.
        template (str): the question's text (see the module's docstring for its fields).
        subjects (Callable[[int], bool], optional): which heads it is asked of (entity id → bool),
            e.g. nouns only. (default: every head)
    """

    name: str
    relations: tuple[str, ...]
    template: str
    subjects: Callable[[int], bool] | None = None


def template_fields(template: str, extra: Sequence[str] = ()) -> str:
    """The subject field of ``template`` (``"head"`` or ``"a"``), after checking every field is known.

    Raises:
        TaskTemplateError: an unknown field, or not exactly one subject field, naming the template and the fields.
    """
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise TaskTemplateError(
            f"template {template!r} is not a format string ({e}); write a brace as {{{{ or }}}}."
        ) from None
    known = (*SUBJECT_FIELDS, "relation", *extra)
    unknown = [n for n in names if n not in known]
    subject = [n for n in names if n in SUBJECT_FIELDS]
    if unknown or len(subject) != 1:
        problem = f"unknown fields {unknown}" if unknown else f"{len(subject)} subject fields"
        raise TaskTemplateError(
            f"template {template!r} has {problem}; it should name the subject once, as {{head}} (its label) or "
            f"{{a}} (after an article), and may use {', '.join('{' + f + '}' for f in known[2:])}."
        )
    return subject[0]


def _question_text(template: str, subject_field: str, label: str, values: Mapping[str, str]) -> tuple[str, int]:
    """The question's text and the label's start in it."""
    subject = indefinite(label) if subject_field == "a" else label
    filled = {**values, "head": subject, "a": subject}
    before = template.partition("{" + subject_field + "}")[0].format(**filled)
    return template.format(**filled), len(before) + len(subject) - len(label)


@paused_gc()  # builds many small objects, as the other builders
def graph_qa(
    kg: KnowledgeGraph,
    questions: Sequence[RelationQuestion],
    *,
    task: str = "graph_qa",
    seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    max_examples: int | None = None,
    max_per_question: int | None = None,
    keep_subjects: Callable[[set[int]], set[int]] | None = None,
    fields: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[TaskExample]]:
    """One question per subject and :class:`RelationQuestion` the subject has an outgoing edge for.

    - ``accepted_answers`` are all names (label and aliases) of all the question's tails from the
      subject, ``answer_entities`` their keys, ``answer`` the label of the first tail in triple
      order, ``relations`` the question's relations, ``entity`` the subject's key and
      ``target_start``/``target_end`` its label's span in the text.
    - A question is skipped when the subject's label is one of its answers (nothing to ask).
    - The split is by subject (:func:`~kgpeft.tasks.split_by_entity`, seeded by ``seed``): all
      questions about an entity land in one split.

    Args:
        kg (KnowledgeGraph): any KG; its labels name the subjects and the answers.
        questions (Sequence[RelationQuestion]): what is asked; a relation belongs to one question.
        task (str): the task's name, in example ids. (default: ``"graph_qa"``)
        seed (int): seeds the split and the samples. (default: ``0``)
        split_fractions (Sequence[float]): train, valid and test fractions. (default: ``(0.8, 0.1, 0.1)``)
        max_examples (int, optional): keep a seeded sample of this many examples. (default: all)
        max_per_question (int, optional): keep a seeded sample of this many examples per question,
            in their order, so that no relation swamps the others. (default: all)
        keep_subjects (Callable, optional): the subjects to ask about, of all that have a question
            (entity ids). (default: all)
        fields (Mapping[str, Sequence[str]], optional): more template fields, each a text per entity
            (``{"pos": ["noun", ...]}``). (default: none)

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}`` lists of :class:`TaskExample`, in subject
        order, then in the order of ``questions``.
    """
    split_fractions = check_split_args(split_fractions, max_examples)
    if max_per_question is not None and max_per_question < 0:
        raise ValueError(f"`max_per_question` should be non-negative or None, got {max_per_question}.")
    question_of: dict[int, int] = {}
    for i, question in enumerate(questions):
        for r in relation_ids(kg, task, question.relations):
            if r in question_of:
                raise TaskTemplateError(f"relation {kg.relation_keys[r]!r} is asked by two questions; give it to one.")
            question_of[r] = i
    fields = fields or {}
    subject_fields = [template_fields(q.template, tuple(fields)) for q in questions]

    tails: dict[tuple[int, int], list[int]] = {}  # (subject, question) -> its tails, in triple order
    edges = kg.triples[:, torch.isin(kg.triples[1], torch.tensor(list(question_of)))]
    for h, r, t in edges.T.tolist():
        question = questions[question_of[r]]
        if question.subjects is None or question.subjects(h):
            tails.setdefault((h, question_of[r]), []).append(t)
    subjects = {h for h, _ in tails}
    if keep_subjects is not None:
        subjects = keep_subjects(subjects)

    examples: list[TaskExample] = []
    asked: list[int] = []  # the question of each example
    for (h, i), ts in sorted(tails.items()):
        if h not in subjects:
            continue
        label, ts = kg.labels[h], list(dict.fromkeys(ts))
        answers = tuple(dict.fromkeys(n for t in ts for n in kg.names(t)))
        if label.lower() in {a.lower() for a in answers}:
            continue
        key, question = kg.entity_keys[h], questions[i]
        values = {"relation": question.relations[0].replace("_", " "), **{n: column[h] for n, column in fields.items()}}
        text, start = _question_text(question.template, subject_fields[i], label, values)
        examples.append(
            TaskExample(
                id=f"{task}/{key}/{question.name}",
                text=text,
                answer=kg.labels[ts[0]],
                entity=key,
                split=split_of(key, split_fractions, seed),
                target_start=start,
                target_end=start + len(label),
                accepted_answers=answers,
                answer_entities=tuple(kg.entity_keys[t] for t in ts),
                relations=question.relations,
            )
        )
        asked.append(i)
    if max_per_question is not None:
        kept = set()
        for i, question in enumerate(questions):
            of_question = [e for e, j in zip(examples, asked, strict=True) if j == i]
            salt = f"{task}\0{question.name}"
            kept.update(e.id for e in sample_examples(of_question, max_per_question, seed, salt))
        examples = [e for e in examples if e.id in kept]
    return by_split(examples, max_examples, seed)
