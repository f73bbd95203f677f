"""Retrieved facts as text: which of a sample's triples come first, and how one is written.

The one fact renderer: the data path writes facts into prompts with it
(``RetrievalConfig.num_facts``), and ``kgpeft link`` / ``kgpeft predict`` print them with it.
"""

from __future__ import annotations

import string
from collections.abc import Collection, Sequence

from torch_geometric.data import Data

from kgpeft.graph.knowledge_graph import KnowledgeGraph

#: Named fact formats; ``RetrievalConfig.fact_format`` takes one of these names or a format string.
FACT_STYLES: dict[str, str] = {
    "sentence": "{head} {relation} {tail}",
    "arrow": "{head} --{relation_key}--> {tail}",
}
#: The fields a fact format may use: the head's and tail's labels, the relation key with
#: underscores as spaces (``instance hypernym``) and the relation key as written (``instance_hypernym``).
FACT_FIELDS = ("head", "relation", "relation_key", "tail")


def fact_template(fact_format: str) -> str:
    """The format string of a named style (:data:`FACT_STYLES`), or ``fact_format`` itself.

    Raises:
        ValueError: if ``fact_format`` is neither a style nor a format string over :data:`FACT_FIELDS`.
    """
    template = FACT_STYLES.get(fact_format, fact_format)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise ValueError(f"`fact_format` is not a valid format string ({e}), got {fact_format!r}.") from None
    unknown = sorted(fields - set(FACT_FIELDS))
    if unknown or not fields:
        raise ValueError(
            f"`fact_format` should be one of {sorted(FACT_STYLES)} or a format string over the fields "
            f"{{{'}, {'.join(FACT_FIELDS)}}}, got {fact_format!r}."
        )
    return template


def format_fact(kg: KnowledgeGraph, triple: int, fact_format: str = "sentence") -> str:
    """One triple (a column of ``kg.triples``) as text, e.g. ``"dog hypernym canine"``."""
    return fact_spans(kg, triple, fact_format)[0]


def fact_spans(
    kg: KnowledgeGraph, triple: int, fact_format: str = "sentence"
) -> tuple[str, dict[str, tuple[int, int]]]:
    """One triple as :func:`format_fact` writes it, and where each field lies in that text.

    Returns:
        ``(text, spans)``: ``spans[field] = (start, end)`` character offsets of each field the
        format uses (``head``, ``relation``, ``relation_key``, ``tail``), so an explanation can
        tell which of a fact's tokens spell its head, its relation and its tail.

    Example:
        >>> fact_spans(kg, 0)  # doctest: +SKIP
        ('dog is a animal', {'head': (0, 3), 'relation': (4, 8), 'tail': (9, 15)})
    """
    h, r, t = kg.triples[:, triple].tolist()
    key = kg.relation_keys[r]
    values = {"head": kg.labels[h], "relation": key.replace("_", " "), "relation_key": key, "tail": kg.labels[t]}
    text, spans, formatter = "", {}, string.Formatter()
    for literal, name, spec, conversion in formatter.parse(fact_template(fact_format)):
        text += literal
        if name is not None:
            piece = formatter.format_field(formatter.convert_field(values[name], conversion), spec or "")
            spans[name] = (len(text), len(text) + len(piece))
            text += piece
    return text, spans


def render_facts(kg: KnowledgeGraph, triples: Sequence[int], fact_format: str = "sentence") -> str:
    """The facts block written before a prompt: ``"Facts: a; b.\\n"`` (``"Facts: .\\n"`` for none).

    Example:
        >>> render_facts(kg, [0, 1])  # doctest: +SKIP
        'Facts: dog is a animal; bank near river.\\n'
    """
    return "Facts: " + "; ".join(format_fact(kg, t, fact_format) for t in triples) + ".\n"


def rank_facts(graph: Data, seeds: Collection[int]) -> list[int]:
    """A sample's triples, those touching a seed (linked) entity first, each once, one per entity pair first.

    A KG often states a link both ways (WordNet: ``dog hypernym canine`` and ``canine hyponym
    dog``), and retrieval lists the two side by side; so within each group a triple joining an
    entity pair already listed moves to the end, and the first ``k`` facts say ``k`` different
    things (on the main job, the answer is among the first 2 facts for 94% of the questions
    instead of 80%).

    Args:
        graph (Data): one sample's subgraph with ``n_id``, ``edge_index`` and ``edge_id``
            (the KG triple of each edge), as :class:`~kgpeft.retrieval.SubgraphRetriever` gives it.
        seeds (Collection[int]): the linked entity ids.

    Returns:
        Triple ids (columns of ``kg.triples``): those touching a seed, then the others, each
        group in edge order with repeated entity pairs last; every triple once.
    """
    n_id, seeds = graph.n_id.tolist(), set(seeds)
    edges = [
        (n_id[s], n_id[d], e) for (s, d), e in zip(graph.edge_index.t().tolist(), graph.edge_id.tolist(), strict=True)
    ]
    touching = [e for e in edges if e[0] in seeds or e[1] in seeds]
    others = [e for e in edges if not (e[0] in seeds or e[1] in seeds)]
    listed: set[int] = set()
    pairs: set[frozenset[int]] = set()
    order: list[int] = []
    for group in (touching, others):
        repeats = []
        for head, tail, triple in group:
            if triple in listed:
                continue
            listed.add(triple)
            pair = frozenset((head, tail))
            (repeats if pair in pairs else order).append(triple)
            pairs.add(pair)
        order.extend(repeats)
    return order
