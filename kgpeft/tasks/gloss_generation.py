"""Gloss generation: *Define the noun "dog":* → the synset's gloss, scored with ROUGE-L."""

from __future__ import annotations

from collections.abc import Sequence

from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.tasks.base import (
    POS_WORDS,
    MissingKGDataError,
    Task,
    TaskExample,
    by_split,
    check_split_args,
    dominant_senses,
    require_extras,
    split_of,
)
from kgpeft.utils import paused_gc


@paused_gc()  # builds ~100k small objects; see its docstring
def gloss_generation(
    kg: KnowledgeGraph,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    max_examples: int | None = None,
    dominant_sense_only: bool = True,
) -> dict[str, list[TaskExample]]:
    r"""Prompts *Define the noun "dog":* whose target is the synset's gloss, to score with ROUGE-L.

    One example per synset with a non-empty description: ``text`` names the part of speech
    (from ``extras["pos"]``) and the synset's label in quotes, ``answer`` is the description
    (*a member of the genus Canis ...*), without the example sentences. With
    ``dominant_sense_only``, synsets whose label more likely means another synset of the same
    part of speech, or is tied, are skipped, as in :func:`hypernym_qa`: the prompt names the
    synset by its label alone.

    Args:
        kg (KnowledgeGraph): WordNet, or any KG with ``descriptions`` and ``extras["pos"]``.
        seed (int): seeds the split and the sample. (default: ``0``)
        split_fractions (Sequence[float]): train, valid, test. (default: ``(0.8, 0.1, 0.1)``)
        max_examples (int, optional): keep a seeded sample of this many examples. (default: all)
        dominant_sense_only (bool): skip synsets whose label is ambiguous. (default: ``True``)

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}`` lists of :class:`TaskExample`, in entity order.
    """
    task = "gloss_generation"
    if kg.descriptions is None:
        raise MissingKGDataError(
            f"`{task}` needs `descriptions` (a gloss per entity), which the KG lacks; "
            f"`kgpeft.datasets.load('wordnet')` provides them."
        )
    require_extras(kg, task, "pos")
    split_fractions = check_split_args(split_fractions, max_examples)
    pos = kg.extras["pos"]
    described = [e for e, d in enumerate(kg.descriptions) if d.strip()]
    subjects = dominant_senses(kg, described) if dominant_sense_only else set(described)

    examples = []
    for e in sorted(subjects):
        key, label = kg.entity_keys[e], kg.labels[e]
        prefix = f'Define the {POS_WORDS.get(pos[e], "word")} "'
        examples.append(
            TaskExample(
                id=f"{task}/{key}",
                text=f'{prefix}{label}":',
                answer=kg.descriptions[e].strip(),
                entity=key,
                split=split_of(key, split_fractions, seed),
                target_start=len(prefix),
                target_end=len(prefix) + len(label),
            )
        )
    return by_split(examples, max_examples, seed)


GLOSS_GENERATION = Task(
    "gloss_generation",
    gloss_generation,
    task_type="causal_lm",
    metric="summarization",
    templates=('Define the {pos} "{x}":',),
)
