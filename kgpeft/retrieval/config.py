"""`RetrievalConfig`: the one owner of the linking and retrieval settings of a job."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kgpeft.configuration import ConfigError, check_field_types, dataclass_from_dict, is_int
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.linking import EntityLinker
from kgpeft.retrieval.facts import FACT_FIELDS, FACT_STYLES, fact_template
from kgpeft.retrieval.subgraph_retriever import SubgraphRetriever


class RetrievalConfigError(ConfigError):
    """A :class:`RetrievalConfig` value is out of range or of the wrong kind."""


@dataclass
class RetrievalConfig:
    """How texts are linked to the KG, which subgraph is retrieved, and which facts are written as text.

    Example:
        >>> config = RetrievalConfig(num_neighbors=[8, 4], num_facts=2)
        >>> retriever = config.build_retriever(kg, seed=0)  # doctest: +SKIP
    """

    num_neighbors: list[int] = field(
        default_factory=lambda: [16, 8],
        metadata={"help": "Per-hop fan-out caps of subgraph retrieval (-1: all); its length is the number of hops."},
    )
    max_nodes: int = field(default=32, metadata={"help": "Most subgraph nodes per sample, seeds included."})
    max_candidates: int = field(default=1, metadata={"help": "Candidate entities kept per mention when linking."})
    num_facts: int = field(
        default=0, metadata={"help": "Retrieved facts written into the prompt as text, before the input; 0: none."}
    )
    memory_facts: int = field(
        default=0,
        metadata={
            "help": "Facts handed to a `knowledge_mode='memory'` adapter as key/value slots (not written into the "
            "prompt); 0: none."
        },
    )
    max_fact_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Most tokens of one memory fact; a longer one loses its end (counted and reported). Unset: a job "
            "derives it from the facts its examples can select (the longest, rounded up to a multiple of "
            "8); a dataset outside a job cuts no fact."
        },
    )
    memory_framing: str = field(
        default="fact",
        metadata={
            "help": "How memory facts are written: `fact`, each alone (`dog hypernym canine`); `block`, each as its "
            "piece of the facts block a prompt gets (`Facts: dog hypernym canine`, `; dog is a pet.\\n`), so that "
            "facts encoded together (`memory_facts_together`) are the block written before the prompt."
        },
    )
    fact_format: str = field(
        default="sentence",
        metadata={
            "help": f"How a fact is written: one of {sorted(FACT_STYLES)} or a format string over "
            f"{{{'}, {'.join(FACT_FIELDS)}}} (`sentence` is '{FACT_STYLES['sentence']}')."
        },
    )

    def __post_init__(self) -> None:
        check_field_types(self, RetrievalConfigError)
        if isinstance(self.num_neighbors, tuple):
            self.num_neighbors = list(self.num_neighbors)
        if (
            not isinstance(self.num_neighbors, list)
            or not self.num_neighbors
            or any(not is_int(n) or n == 0 or n < -1 for n in self.num_neighbors)
        ):
            raise RetrievalConfigError(
                f"`num_neighbors` should be a non-empty list of positive caps or -1, got {self.num_neighbors!r}."
            )
        for name in ("max_nodes", "max_candidates"):
            value = getattr(self, name)
            if not is_int(value) or value <= 0:
                raise RetrievalConfigError(f"`{name}` should be a positive integer, got {value!r}.")
        for name in ("num_facts", "memory_facts"):
            value = getattr(self, name)
            if not is_int(value) or value < 0:
                raise RetrievalConfigError(f"`{name}` should be a non-negative integer, got {value!r}.")
        if self.max_fact_tokens is not None and (not is_int(self.max_fact_tokens) or self.max_fact_tokens <= 0):
            raise RetrievalConfigError(
                f"`max_fact_tokens` should be a positive integer or unset, got {self.max_fact_tokens!r}."
            )
        if self.memory_framing not in ("fact", "block"):
            raise RetrievalConfigError(f"`memory_framing` should be 'fact' or 'block', got {self.memory_framing!r}.")
        if not isinstance(self.fact_format, str):
            raise RetrievalConfigError(f"`fact_format` should be a string, got {self.fact_format!r}.")
        try:
            fact_template(self.fact_format)
        except ValueError as e:
            raise RetrievalConfigError(str(e)) from None

    def build_linker(self, kg: KnowledgeGraph) -> EntityLinker:
        """An :class:`~kgpeft.linking.EntityLinker` over ``kg`` keeping ``max_candidates`` per mention."""
        return EntityLinker(kg, max_candidates=self.max_candidates)

    def build_retriever(self, kg: KnowledgeGraph, seed: int = 0) -> SubgraphRetriever:
        """A :class:`~kgpeft.retrieval.SubgraphRetriever` over ``kg`` with these caps and ``seed``."""
        return SubgraphRetriever(kg, self.num_neighbors, max_nodes=self.max_nodes, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RetrievalConfig:
        """Build from a dict, e.g. a job config's ``retrieval:`` section; an unknown key is an error naming it."""
        return dataclass_from_dict(cls, values, "retrieval config", RetrievalConfigError)
