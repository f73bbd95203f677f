"""Retrieved facts as text: how one triple is written, and the facts block before a prompt.

The one fact renderer: the data path writes facts into prompts with it
(``RetrievalConfig.num_facts``), and ``kgpeft link`` / ``kgpeft predict`` print them with it.
Which facts come first is :mod:`kgpeft.selection`'s job.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

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


def memory_fact_texts(
    kg: KnowledgeGraph, triples: Sequence[int], fact_format: str = "sentence", framing: str = "fact"
) -> list[str]:
    """The texts of memory facts: each fact alone (``framing='fact'``), or each as its piece of
    :func:`render_facts`'s block (``'block'``), so that the pieces joined are the block.

    Example:
        >>> memory_fact_texts(kg, [0, 1], framing="block")  # doctest: +SKIP
        ['Facts: dog is a animal', '; bank near river.\\n']
    """
    texts = [format_fact(kg, t, fact_format) for t in triples]
    if framing == "block":
        texts = [frame_fact(text, place, len(texts)) for place, text in enumerate(texts)]
    return texts


def frame_fact(text: str, place: int, count: int) -> str:
    """A fact's text as the piece of :func:`render_facts`'s block it is at ``place`` (from 0) of ``count`` facts.

    Example:
        >>> [frame_fact(t, p, 2) for p, t in enumerate(["dog is a animal", "bank near river"])]
        ['Facts: dog is a animal', '; bank near river.\\n']
    """
    return ("Facts: " if place == 0 else "; ") + text + (".\n" if place == count - 1 else "")


def render_facts(kg: KnowledgeGraph, triples: Sequence[int], fact_format: str = "sentence") -> str:
    """The facts block written before a prompt: ``"Facts: a; b.\\n"`` (``"Facts: .\\n"`` for none).

    Example:
        >>> render_facts(kg, [0, 1])  # doctest: +SKIP
        'Facts: dog is a animal; bank near river.\\n'
    """
    return "Facts: " + "; ".join(format_fact(kg, t, fact_format) for t in triples) + ".\n"
