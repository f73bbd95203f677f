"""What an explanation holds: per node and per fact of one answer, each attribution method's score.

Plain dataclasses that round-trip through JSON (:meth:`Explanation.to_json`,
:meth:`Explanation.from_json`). A method a design does not have (attention in ``token``
mode, the scorer's probability without a fact scorer) is ``None`` here and absent from the
JSON, never zero.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

#: The attribution methods, in the order an explanation lists them.
METHODS = ("leave_one_out", "gradient_x_input", "attention", "selection")


@dataclass
class Attribution:
    """The scores of one node or fact under each method (``None``: the design has no such signal).

    Attributes:
        leave_one_out: the answer's log-probability with it minus without it (it, its edges
            and its facts removed, the model re-run): positive where it supported the answer.
        gradient_x_input: the gradient of the answer's log-probability times the input it
            flows from, summed (memory slots' keys and values; node states in graph modes).
        attention: the attention the answer's positions put on it, summed over layers.
        attention_per_layer: the same, per attention layer (``memory``) or knowledge
            projection (``cross``).
        selection: the fact scorer's probability of the fact; for a node, summed over its facts.
    """

    leave_one_out: float
    gradient_x_input: float | None = None
    attention: float | None = None
    attention_per_layer: list[float] | None = None
    selection: float | None = None

    def score(self, method: str) -> float | None:
        if method not in METHODS:
            raise ValueError(f"`method` should be one of {METHODS}, got {method!r}.")
        return getattr(self, method)


@dataclass
class NodeAttribution(Attribution):
    """One subgraph node: its entity (``entity`` id, ``key``, ``label``) and whether the text links to it."""

    entity: int = -1
    key: str = ""
    label: str = ""
    linked: bool = False


@dataclass
class FactAttribution(Attribution):
    """One fact (a KG triple), how the model read it (``memory``, ``prompt``, both, or ``graph``: an edge)."""

    triple: int = -1
    head: int = -1
    relation: str = ""
    tail: int = -1
    text: str = ""
    read_as: str = "graph"


@dataclass
class Explanation:
    """Which knowledge drove one answer.

    Attributes:
        text: the input as given (before any facts written into the prompt).
        answer: the answer explained (generated, unless one was given).
        answer_log_prob: its log-probability with all the knowledge.
        knowledge_mode: the adapter's design (``memory``, ``token``, ``cross``, ``prefix``).
        linked: the linked mentions: ``surface``, ``start``, ``end``, ``entity``, ``key``, ``label``.
        edges: the subgraph's triples as ``(head entity, relation key, tail entity)``.
        nodes, facts: the attributions, in subgraph order and in the order the model read the facts.
        note: why there is nothing to explain (no linked entity, an empty subgraph), else ``None``.
    """

    text: str
    answer: str
    answer_log_prob: float
    knowledge_mode: str
    linked: list[dict[str, Any]] = field(default_factory=list)
    edges: list[tuple[int, str, int]] = field(default_factory=list)
    nodes: list[NodeAttribution] = field(default_factory=list)
    facts: list[FactAttribution] = field(default_factory=list)
    note: str | None = None

    @property
    def methods(self) -> list[str]:
        """The methods with a score for every node (those this design has)."""
        rows = self.nodes or self.facts
        return [m for m in METHODS if rows and all(r.score(m) is not None for r in rows)]

    def top_nodes(self, k: int = 3, by: str = "leave_one_out") -> list[NodeAttribution]:
        """The ``k`` nodes scored highest by the method ``by``."""
        return _top(self.nodes, k, by)

    def top_facts(self, k: int = 3, by: str = "leave_one_out") -> list[FactAttribution]:
        """The ``k`` facts scored highest by the method ``by``."""
        return _top(self.facts, k, by)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; a method the design lacks is left out, not written as zero."""

        def clean(row: Attribution) -> dict[str, Any]:
            return {k: v for k, v in dataclasses.asdict(row).items() if v is not None}

        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("nodes", "facts")}
        out["edges"] = [list(e) for e in self.edges]
        out["nodes"] = [clean(n) for n in self.nodes]
        out["facts"] = [clean(f) for f in self.facts]
        if out["note"] is None:
            del out["note"]
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        return cls(
            **{k: v for k, v in data.items() if k not in ("nodes", "facts", "edges")},
            edges=[tuple(e) for e in data.get("edges", [])],
            nodes=[NodeAttribution(**n) for n in data.get("nodes", [])],
            facts=[FactAttribution(**f) for f in data.get("facts", [])],
        )

    @classmethod
    def from_json(cls, text: str) -> Explanation:
        return cls.from_dict(json.loads(text))

    def summary(self, k: int = 3) -> str:
        """A few lines for a terminal: the answer, the links and the top facts with their scores."""
        lines = [f"{self.text!r} -> {self.answer!r} (log p = {self.answer_log_prob:.2f}, {self.knowledge_mode})"]
        lines += [f"  linked {m['surface']!r} -> {m['label']} [{m['key']}]" for m in self.linked]
        if self.note:
            lines.append(f"  {self.note}")
        for fact in self.top_facts(k):
            scores = ", ".join(f"{m} {fact.score(m):+.3f}" for m in METHODS if fact.score(m) is not None)
            lines.append(f"  fact ({fact.read_as}): {fact.text}: {scores}")
        top = self.top_nodes(k)
        if top:
            lines.append("  top nodes by leave-one-out: " + ", ".join(f"{n.label} {n.leave_one_out:+.3f}" for n in top))
        return "\n".join(lines)


def _top(rows: list, k: int, by: str) -> list:
    scored = [r for r in rows if r.score(by) is not None]
    return sorted(scored, key=lambda r: -r.score(by))[:k]
