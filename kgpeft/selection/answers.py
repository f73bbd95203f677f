"""Answer entities from answer text, so that the ``answers`` objective trains on ordinary QA data.

The fact scorer's ``answers`` objective (:func:`~kgpeft.selection.train_fact_scorer`) learns from the
entities a training row's answer names (``TaskExample.answer_entities``); a user's task file usually
gives the answer as text only. :func:`link_answers` links the answer texts of the rows that name no
answer entities with the job's linker, by the rules it links questions with (case and accent folding,
stopwords, the alias priors), and keeps the top candidate of a mention:

- each of a row's answer texts (``accepted_answers``, or ``answer`` alone) that is, whole, a label or an
  alias of an entity (a mention spanning the text, bar spaces and a final ``.``, ``!`` or ``?``)
  gives that entity;
- only where none of them is whole does the row fall back to the longest mention inside an answer
  text (the first of equal length): *the domestic dog* gives *domestic dog*. A whole match is the
  answer itself; a partial one is a guess, and several would each make their facts positives.

Rows that name answer entities keep them unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kgpeft.graph import KnowledgeGraph
from kgpeft.linking import EntityLinker, Mention
from kgpeft.tasks.base import TaskExample

#: What may follow an answer's entity name and still make the answer the whole name.
_TRAILING = " \t\r\n.!?"


@dataclass(frozen=True)
class AnswerLinks:
    """How many rows name answer entities, after :func:`link_answers`.

    Args:
        rows (int): the rows looked at.
        given (int): rows that named answer entities already.
        whole (int): rows linked from an answer text that is an entity's name, whole.
        partial (int): rows linked from a mention inside an answer text only.
    """

    rows: int
    given: int
    whole: int
    partial: int

    @property
    def share(self) -> float:
        """The share of rows that name answer entities now (0 for no rows)."""
        return (self.given + self.whole + self.partial) / self.rows if self.rows else 0.0

    def describe(self) -> str:
        """One line: e.g. ``answer entities in 90% of 10 training rows (2 given, 6 whole answers linked, 1 partly)``."""
        return (
            f"answer entities in {self.share:.0%} of {self.rows} training rows ({self.given} given, "
            f"{self.whole} whole answers linked, {self.partial} partly)"
        )


def _is_whole(text: str, mention: Mention) -> bool:
    return not text[: mention.start].strip() and not text[mention.end :].strip(_TRAILING)


def answer_entities(texts: Sequence[str], linker: EntityLinker, kg: KnowledgeGraph) -> tuple[tuple[str, ...], bool]:
    """The keys of the entities ``texts`` (one row's answers) name, and whether they are whole matches.

    See the module's docstring for the rules; ``((), False)`` when no text holds a mention.
    """
    found = [(text, linker.link(text)) for text in texts if text]
    whole = [m.entity for text, mentions in found for m in mentions if _is_whole(text, m)]
    if whole:
        return tuple(dict.fromkeys(kg.entity_keys[e] for e in whole)), True
    mentions = [m for _, ms in found for m in ms]
    if not mentions:
        return (), False
    longest = max(mentions, key=lambda m: m.end - m.start)  # max keeps the first of equal length
    return (kg.entity_keys[longest.entity],), False


def link_answers(
    examples: Sequence[TaskExample], linker: EntityLinker | Callable[[], EntityLinker], kg: KnowledgeGraph
) -> tuple[list[TaskExample], AnswerLinks]:
    """``examples`` with ``answer_entities`` linked from the answer text where a row names none, and the counts.

    ``linker`` may be a function that builds one: it is called only if a row needs it (building a
    linker over a large KG takes seconds, and a registered task's rows all name their answers).

    Example:
        >>> from kgpeft import KnowledgeGraph
        >>> import torch
        >>> kg = KnowledgeGraph(["Q1", "Q2"], ["r"], torch.tensor([[0], [0], [1]]), labels=["dog", "animal"])
        >>> rows, links = link_answers([TaskExample("What is a dog?", answer="an animal")], EntityLinker(kg), kg)
        >>> rows[0].answer_entities, links.partial
        (('Q2',), 1)
    """
    rows, given, whole, partial = [], 0, 0, 0
    for example in examples:
        if example.answer_entities:
            given += 1
        else:
            linker = linker if isinstance(linker, EntityLinker) else linker()
            keys, is_whole = answer_entities(example.answers, linker, kg)
            if keys:
                example = dataclasses.replace(example, answer_entities=keys)
                whole, partial = whole + is_whole, partial + (not is_whole)
        rows.append(example)
    return rows, AnswerLinks(len(rows), given, whole, partial)
