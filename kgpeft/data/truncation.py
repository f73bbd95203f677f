"""What a dataset's token limits cut: counted per row, summed per dataset, never silent.

A row's prompt is cut to ``max_length`` tokens (a ``causal_lm`` prompt loses its start, the facts
block first; other prompts lose their end) and each memory fact to ``retrieval.max_fact_tokens``.
:class:`RowCuts` is what one row lost; :class:`Truncation` sums a dataset's rows, and
:meth:`Truncation.report` prints the counts and warns when a cut removed knowledge the row
needed: the question's own text, or an answer's name that a fact held.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kgpeft.utils import short_repr


@dataclass(frozen=True)
class RowCuts:
    """What one row lost to its token limits (the zero value: nothing)."""

    prompt: bool = False  #: the prompt lost tokens (the facts block before the question, or the question)
    question: bool = False  #: the question's own text lost tokens
    prompt_answer: bool = False  #: a gold answer's name written in the prompt's facts is gone
    target: bool = False  #: the target (an encoder-decoder's labels) lost tokens
    facts: int = 0  #: memory facts cut to ``max_fact_tokens``
    fact_answers: int = 0  #: of those, facts that held a gold answer's name and lost it
    memory_facts: int = 0  #: the row's memory facts
    example: str | None = None  #: what a harmful cut removed, to show in the warning


def lost_answer(answers: Iterable[str], whole: str, kept: str) -> bool:
    """Whether a gold answer's name in ``whole`` is no longer in ``kept``, the part a cut left of it."""
    return any(a and a in whole and a not in kept for a in answers)


@dataclass
class Truncation:
    """The cuts of one dataset's rows, under its limits ``max_length`` and ``max_fact_tokens``.

    Build it with :meth:`KnowledgeDataset.truncation() <kgpeft.data.KnowledgeDataset.truncation>`.
    """

    max_length: int
    max_fact_tokens: int | None
    rows: int = 0
    prompts: int = 0
    questions: int = 0
    prompt_answers: int = 0
    targets: int = 0
    memory_facts: int = 0
    facts: int = 0
    fact_answers: int = 0
    examples: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, cuts: Sequence[RowCuts], max_length: int, max_fact_tokens: int | None) -> Truncation:
        out = cls(max_length, max_fact_tokens, rows=len(cuts))
        for cut in cuts:
            out.prompts += cut.prompt
            out.questions += cut.question
            out.prompt_answers += cut.prompt_answer
            out.targets += cut.target
            out.memory_facts += cut.memory_facts
            out.facts += cut.facts
            out.fact_answers += cut.fact_answers
            if cut.example is not None and len(out.examples) < 3:
                out.examples.append(cut.example)
        return out

    @property
    def harmful(self) -> int:
        """Rows or facts whose cut removed the question's text or an answer's name."""
        return self.questions + self.prompt_answers + self.fact_answers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line of counts, e.g. ``3 of 200 prompts cut to max_length 96 (1 lost question text) ...``."""
        parts = [
            f"{self.prompts} of {self.rows} prompts cut to `max_length` ({self.max_length}) "
            f"({self.questions} lost question text, {self.prompt_answers} an answer's name in their facts)"
        ]
        if self.targets:
            parts.append(f"{self.targets} targets cut to `max_length`")
        if self.memory_facts:
            parts.append(
                f"{self.facts} of {self.memory_facts} memory facts cut to `retrieval.max_fact_tokens` "
                f"({self.max_fact_tokens}) ({self.fact_answers} lost an answer's name)"
            )
        return "; ".join(parts)

    def report(self, where: str) -> None:
        """Print the counts (on stderr) when anything was cut; warn when a cut removed the question or an answer's
        name.

        ``where`` names the data in the messages, e.g. ``"kg-lora, train"``.
        """
        if not (self.prompts or self.targets or self.facts):
            return
        print(f"truncation ({where}): {self.summary()}", file=sys.stderr)
        if self.harmful:
            warnings.warn(
                f"{where}: token limits cut knowledge from {self.harmful} rows or facts ({self.summary()}); e.g. "
                f"{self.examples[0]}. Raise `max_length` / `retrieval.max_fact_tokens`, or leave them unset so "
                "that the job derives them from its data.",
                stacklevel=2,
            )


def describe(index: int, text: str, lost: str) -> str:
    """How a warning shows one harmful cut: the row, its text and what was lost."""
    return f"row {index} {short_repr(text)} lost {short_repr(lost)}"
