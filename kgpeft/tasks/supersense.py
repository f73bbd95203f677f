"""Supersense classification: a WordNet example sentence, the span of its target word, and the synset's lexname."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from kgpeft.datasets.wordnet import LEXNAMES
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.tasks.base import (
    VOWELS,
    MissingKGDataError,
    Task,
    TaskExample,
    by_split,
    check_split_args,
    require_extras,
    split_of,
)
from kgpeft.utils import paused_gc

#: The 45 WordNet lexicographer files, in ``lex_filenum`` order; a supersense's label id is its position.
SUPERSENSES: tuple[str, ...] = LEXNAMES
SUPERSENSE_IDS: dict[str, int] = {name: i for i, name in enumerate(SUPERSENSES)}


@paused_gc()  # builds ~100k small objects; see its docstring
def supersense_classification(
    kg: KnowledgeGraph,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    max_examples: int | None = None,
) -> dict[str, list[TaskExample]]:
    r"""WordNet example sentences labelled with the supersense of their target word.

    One example per sentence of ``extras["examples"]`` in which a name of its synset occurs:
    ``text`` is the sentence, ``text[target_start:target_end]`` the occurrence, ``answer`` the
    synset's ``extras["lexname"]`` and ``label`` its id in :data:`SUPERSENSES`. *the dog barked
    all night* gives *dog* → ``noun.animal``.

    A name occurs where it matches case-insensitively between word boundaries, with spaces
    also matching hyphens; the leftmost match wins, the longest at one place (*domestic dog*
    over *dog*). Where no name occurs as written, regular inflections of its head word are
    tried (the last word of a noun, the first of a verb): plurals (*herbivores*, *ponies*,
    *-men*), verb forms (*escaped*, *making*, *stopped*, *tries*) and comparatives (*bigger*).
    Irregular forms (*took*, *children*) are not matched; those sentences, about 4 % of
    WordNet's, are skipped, as are synsets without example sentences. A sentence listed under
    several synsets with the same target span (*a visitation of the plague*, under two senses of
    *visitation*) says nothing about which one it means, and is dropped from all of them.

    Args:
        kg (KnowledgeGraph): WordNet, or any KG with ``extras["examples"]`` (a list of sentences
            per entity) and ``extras["lexname"]`` (one of :data:`SUPERSENSES` per entity).
        seed (int): seeds the split and the sample. (default: ``0``)
        split_fractions (Sequence[float]): train, valid, test. (default: ``(0.8, 0.1, 0.1)``)
        max_examples (int, optional): keep a seeded sample of this many examples. (default: all)

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}`` lists of :class:`TaskExample`, in
        entity then sentence order.
    """
    task = "supersense_classification"
    require_extras(kg, task, "examples", "lexname")
    split_fractions = check_split_args(split_fractions, max_examples)
    sentences, lexname = kg.extras["examples"], kg.extras["lexname"]

    examples = []
    for e, entity_sentences in enumerate(sentences):
        if not entity_sentences:
            continue
        key, supersense = kg.entity_keys[e], lexname[e]
        if supersense not in SUPERSENSE_IDS:
            raise MissingKGDataError(
                f"`{task}` needs a WordNet lexicographer file in extras['lexname'], got {supersense!r} for "
                f"{key!r}; the supersenses are {', '.join(SUPERSENSES)}."
            )
        names = {v for n in kg.names(e) for v in (n.lower(), n.lower().replace(" ", "-"))}
        inflected: set[str] | None = None
        for i, sentence in enumerate(entity_sentences):
            lowered = _lower(sentence)
            span = _find_word(lowered, names)
            if span is None:
                if inflected is None:
                    kind = supersense.partition(".")[0]
                    inflected = {v for n in names for v in _inflections(n, kind)} - names
                span = _find_word(lowered, inflected)
            if span is None:
                continue
            examples.append(
                TaskExample(
                    id=f"{task}/{key}/{i}",
                    text=sentence,
                    answer=supersense,
                    entity=key,
                    split=split_of(key, split_fractions, seed),
                    target_start=span[0],
                    target_end=span[1],
                    label=SUPERSENSE_IDS[supersense],
                )
            )
    owners: dict[tuple[str, int, int], set[str]] = {}
    for example in examples:
        owners.setdefault((example.text, example.target_start, example.target_end), set()).add(example.entity)
    examples = [e for e in examples if len(owners[e.text, e.target_start, e.target_end]) == 1]
    return by_split(examples, max_examples, seed)


def _lower(text: str) -> str:
    """``text`` in lower case, character by character, so that spans in it are spans in ``text``."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)  # e.g. "İ" lowers to two characters


def _find_word(text: str, words: Iterable[str]) -> tuple[int, int] | None:
    """The leftmost, then longest, occurrence of one of ``words`` between word boundaries."""
    best = None
    for word in words:
        start = text.find(word)
        while start >= 0:
            end = start + len(word)
            before, after = text[start - 1 : start], text[end : end + 1]
            if not (before.isalnum() or before == "_" or after.isalnum() or after == "_"):
                if best is None or (start, -end) < (best[0], -best[1]):
                    best = (start, end)
                break
            start = text.find(word, start + 1)
    return best


def _inflections(name: str, kind: str) -> set[str]:
    """Regular inflections of ``name``'s head word, for a ``kind`` of ``"noun"``, ``"verb"``, ``"adj"`` or ``"adv"``."""
    words = name.split(" ")
    head = 0 if kind == "verb" else len(words) - 1
    w = words[head]
    consonant_y = len(w) > 1 and w[-1] == "y" and w[-2] not in VOWELS
    # Doubled final consonant: stop -> stopped, big -> bigger.
    cvc = len(w) > 2 and w[-1] not in VOWELS + "wxy" and w[-2] in VOWELS and w[-3] not in VOWELS
    forms: set[str] = set()
    if kind in ("noun", "verb"):
        forms |= {w + "s", w + "es"} | ({w[:-1] + "ies"} if consonant_y else set())
    if kind == "noun" and w.endswith("man"):
        forms.add(w[:-3] + "men")
    if kind == "verb":
        if w.endswith("e"):
            forms |= {w + "d", (w if w.endswith(("ee", "ye", "oe")) else w[:-1]) + "ing"}
        else:
            forms |= {w + "ed", w + "ing"}
        if consonant_y:
            forms.add(w[:-1] + "ied")
        if w.endswith("ie"):
            forms.add(w[:-2] + "ying")
        if cvc:
            forms |= {w + w[-1] + "ed", w + w[-1] + "ing"}
    if kind == "adj":
        stem = w[:-1] + "i" if consonant_y else w[:-1] if w.endswith("e") else w + w[-1] if cvc else w
        forms |= {stem + "er", stem + "est"}
    return {" ".join([*words[:head], form, *words[head + 1 :]]) for form in forms}


def supersense_qa(
    kg: KnowledgeGraph,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    max_examples: int | None = None,
) -> dict[str, list[TaskExample]]:
    """Supersense classification as a question a language model answers with the supersense's name.

    The examples of :func:`supersense_classification` (same sentences, splits and gold links),
    each followed by a question naming its target word: *the dog barked all night* gives
    ``the dog barked all night\nWhich supersense is "dog"?`` → ``noun.animal``. The target
    span still points into the sentence, which comes first. Scored as classification over
    the generated names (accuracy, macro F1 over the gold supersenses).
    """
    splits = supersense_classification(kg, seed=seed, split_fractions=split_fractions, max_examples=max_examples)
    return {
        split: [
            dataclasses.replace(
                e,
                id=e.id.replace("supersense_classification/", "supersense_qa/", 1),
                text=f'{e.text}\nWhich supersense is "{e.text[e.target_start : e.target_end]}"?',
            )
            for e in examples
        ]
        for split, examples in splits.items()
    }


SUPERSENSE_CLASSIFICATION = Task(
    "supersense_classification", supersense_classification, task_type="classification", metric="classification"
)
SUPERSENSE_QA = Task("supersense_qa", supersense_qa, task_type="causal_lm", metric="classification")
