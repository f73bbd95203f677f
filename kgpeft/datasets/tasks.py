"""KG-grounded task datasets built from WordNet 3.0, split by entity.

Three tasks, each a list of :class:`TaskExample` per split, about one subject synset each:

- :func:`hypernym_qa`: *What kind of thing is a dog?* → *canine*, as generation (with all
  accepted answers) and as multiple choice.
- :func:`supersense_classification`: a WordNet example sentence with the span of its target
  word, labelled with the synset's lexicographer file (:data:`SUPERSENSES`, 45 classes).
- :func:`gloss_generation`: *Define the noun "dog":* → the synset's gloss.

Every task is split **by entity** (:func:`split_by_entity`): a synset's examples all land in
one split, chosen by a seeded hash of its key alone. So no subject of a test example is the
subject of a training example, and with the same ``seed`` and fractions a synset falls in the
same split in every task, so that tasks can be mixed without leaking test synsets.

Examples are plain frozen dataclasses holding text; a collator tokenises them, links
``text[target_start:target_end]`` to ``entity`` and retrieves its subgraph.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from math import isclose

import torch

from kgpeft.datasets.wordnet import LEXNAMES
from kgpeft.errors import KGPeftError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.utils import paused_gc

SPLITS = ("train", "valid", "test")
#: The 45 WordNet lexicographer files, in ``lex_filenum`` order; a supersense's label id is its position.
SUPERSENSES: tuple[str, ...] = LEXNAMES
SUPERSENSE_IDS: dict[str, int] = {name: i for i, name in enumerate(SUPERSENSES)}

_POS_WORDS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
_VOWELS = "aeiou"


class MissingKGDataError(KGPeftError, ValueError):
    """A task needs a relation or a per-entity column (``descriptions``, an ``extras`` key) the KG lacks."""


@dataclass(frozen=True, slots=True)
class TaskExample:
    """One example of a task: what the builders here return and what training reads.

    Only ``text`` is always needed; which other fields a task reads depends on it
    (``answer`` for generation, ``label`` for classification, ``choices`` and ``label`` for
    multiple choice).

    Args:
        text (str): the model input (question, sentence or prompt).
        answer (str, optional): the gold output text: the hypernym's label, the supersense
            name or the gloss. (default: ``None``)
        label (int, optional): the gold class id (supersense) or the index of the gold choice
            (multiple choice). (default: ``None``)
        choices (tuple[str, ...]): the multiple-choice options. (default: none)
        accepted_answers (tuple[str, ...]): every output counted as correct, ``answer`` first.
            (default: ``(answer,)``)
        entity (str, optional): the key of the subject entity, the one the example is about
            and is split by. (default: ``None``)
        target_start (int, optional): start of the character span of ``text`` that names
            ``entity``; with ``target_end`` it is the example's gold link, used instead of the
            entity linker. (default: ``None``)
        target_end (int, optional): end (exclusive) of that span. (default: ``None``)
        answer_entities (tuple[str, ...]): the keys of the entities the answer names. (default: none)
        choice_entities (tuple[str, ...]): the key of the entity each choice names, parallel to
            ``choices``; a KGE teacher scores them for knowledge distillation. (default: none)
        relations (tuple[str, ...]): the relations that lead from ``entity`` to the answer, e.g.
            ``("hypernym", "instance_hypernym")``: the query a KGE teacher answers. (default: none)
        id (str): unique within the task, e.g. ``"hypernym_qa/02084071-n"``. (default: ``""``)
        split (str, optional): ``"train"``, ``"valid"`` or ``"test"``. (default: ``None``)
    """

    text: str
    answer: str | None = None
    label: int | None = None
    choices: tuple[str, ...] = ()
    accepted_answers: tuple[str, ...] = ()
    entity: str | None = None
    target_start: int | None = None
    target_end: int | None = None
    answer_entities: tuple[str, ...] = ()
    choice_entities: tuple[str, ...] = ()
    relations: tuple[str, ...] = ()
    id: str = ""
    split: str | None = None

    @property
    def answers(self) -> tuple[str, ...]:
        """The accepted answers, or the gold answer alone."""
        return self.accepted_answers or ((self.answer,) if self.answer is not None else ())


# ----------------------------------------------------------------- splitting
def _unit_hash(text: str) -> float:
    """A deterministic number in ``[0, 1)`` (``hash()`` changes with ``PYTHONHASHSEED``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def _check_fractions(fractions: Sequence[float], name: str = "fractions") -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or not isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"`{name}` should be three non-negative fractions (train, valid, test) summing to 1, got {fractions}."
        )
    return fractions


def _check_split_args(split_fractions: Sequence[float], max_examples: int | None) -> tuple[float, float, float]:
    if max_examples is not None and max_examples < 0:
        raise ValueError(f"`max_examples` should be non-negative or None, got {max_examples}.")
    return _check_fractions(split_fractions, "split_fractions")


def entity_split(entity: Hashable, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> str:
    """The split of one entity: ``"train"``, ``"valid"`` or ``"test"``.

    It depends on the entity, ``fractions`` and ``seed`` only, not on which other entities are
    split, so it is the same in every task and stays put when the candidate set changes.
    """
    return _split_of(entity, _check_fractions(fractions), seed)


def _split_of(entity: Hashable, fractions: tuple[float, float, float], seed: int) -> str:
    u = _unit_hash(f"{seed}\0{entity}")
    return "train" if u < fractions[0] else "valid" if u < fractions[0] + fractions[1] else "test"


def split_by_entity(
    entity_ids: Iterable[Hashable], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list]:
    """Assign each entity to exactly one split by a seeded hash (see :func:`entity_split`).

    Split sizes follow ``fractions`` in expectation, not exactly. Pass entity keys rather
    than ids, so the split survives a renumbering of the KG.

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}``, each in input order, without repeats.

    Example:
        >>> parts = split_by_entity(["02084071-n", "02121620-n"], (1.0, 0.0, 0.0))
        >>> parts
        {'train': ['02084071-n', '02121620-n'], 'valid': [], 'test': []}
    """
    fractions = _check_fractions(fractions)
    parts: dict[str, list] = {name: [] for name in SPLITS}
    for entity in dict.fromkeys(entity_ids):
        parts[_split_of(entity, fractions, seed)].append(entity)
    return parts


def _by_split(examples: list[TaskExample], max_examples: int | None, seed: int) -> dict[str, list[TaskExample]]:
    """Group examples by split, after keeping a seeded sample of ``max_examples`` of them."""
    if max_examples is not None:
        # Salted apart from the split hash, or the sample would be all train.
        keep = set(
            sorted(range(len(examples)), key=lambda i: _unit_hash(f"{seed}\0sample\0{examples[i].id}"))[:max_examples]
        )
        examples = [e for i, e in enumerate(examples) if i in keep]
    parts: dict[str, list[TaskExample]] = {name: [] for name in SPLITS}
    for example in examples:
        parts[example.split].append(example)
    return parts


# ------------------------------------------------------------------- checks
def _require_extras(kg: KnowledgeGraph, task: str, *names: str) -> None:
    missing = [name for name in names if name not in kg.extras]
    if missing:
        raise MissingKGDataError(
            f"`{task}` needs the per-entity columns {', '.join(f'extras[{n!r}]' for n in missing)}, which the KG "
            f"lacks (it has extras {sorted(kg.extras)}); `kgpeft.datasets.load('wordnet')` provides them."
        )


def _relation_ids(kg: KnowledgeGraph, task: str, relations: Sequence[str]) -> list[int]:
    if not relations:
        raise ValueError(f"`relations` should name at least one relation, got {relations!r}.")
    missing = [r for r in relations if r not in kg.relation_keys]
    if missing:
        shown = ", ".join(map(repr, kg.relation_keys[:10])) + (", ..." if kg.num_relations > 10 else "")
        raise MissingKGDataError(
            f"`{task}` needs the relations {', '.join(map(repr, missing))}, which the KG lacks "
            f"(it has {kg.num_relations}: {shown}); pass `relations=` to choose others."
        )
    return [kg.relation_id(r) for r in relations]


# ------------------------------------------------------------ word senses
def _dominant_senses(kg: KnowledgeGraph, entities: Iterable[int]) -> set[int]:
    """The entities whose label most likely means them, among entities of the same POS.

    An entity qualifies when no other entity of its POS has its label (case-insensitively) as a
    name, or when its prior for that name (:attr:`KnowledgeGraph.name_priors`, e.g. WordNet's
    sense tag counts) is strictly higher than every other entity's. Without priors only the
    unambiguous labels qualify.
    """
    pos, priors = kg.extras["pos"], kg.name_priors
    entities = list(entities)
    pos_groups = {_POS_WORDS.get(pos[e], pos[e]) for e in entities}
    best: dict[tuple[str, str], tuple[float, int]] = {}  # (POS, name) -> (top prior, its entity or -1 on a tie)
    for e in range(kg.num_entities):
        group = _POS_WORDS.get(pos[e], pos[e])
        if group not in pos_groups:
            continue
        for j, name in enumerate((kg.labels[e], *kg.aliases[e])):
            key, prior = (group, name.lower()), 1.0 if priors is None else priors[e][j]
            top, holder = best.get(key, (-1.0, -1))
            if prior > top:
                best[key] = (prior, e)
            elif prior == top and holder != e:
                best[key] = (prior, -1)
    return {e for e in entities if best[(_POS_WORDS.get(pos[e], pos[e]), kg.labels[e].lower())][1] == e}


def _indefinite(label: str) -> str:
    """The label with an indefinite article chosen by its first letter (*a dog*, *an elk*, also *an unicorn*).

    Capitalised labels, proper names such as *Colombo*, take none.
    """
    if label[:1].isupper():
        return label
    return f"an {label}" if label[:1].lower() in _VOWELS else f"a {label}"


# ---------------------------------------------------------------- hypernym QA
@paused_gc()  # builds ~100k small objects; see its docstring
def hypernym_qa(
    kg: KnowledgeGraph,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    max_examples: int | None = None,
    num_choices: int = 4,
    relations: Sequence[str] = ("hypernym", "instance_hypernym"),
    dominant_sense_only: bool = True,
) -> dict[str, list[TaskExample]]:
    r"""Questions *What kind of thing is a <noun>?* answered by the noun's hypernym.

    One example per noun synset (``extras["pos"] == "n"``) with an outgoing edge of one of
    ``relations``. ``instance_hypernym`` is included by default, so instances are asked too
    (*What kind of thing is Colombo?* → *national capital*; a capitalised label takes no
    article). Verbs are left out: their hypernyms (troponymy) are no *kind of thing*.

    - ``answer`` is the label of the first hypernym in triple order; ``accepted_answers`` are
      all names (label and aliases) of all its hypernyms, and ``answer_entities`` their keys.
    - A synset is skipped when its label is one of the accepted answers (nothing to ask), and,
      with ``dominant_sense_only``, when its label more likely means another noun synset or is
      tied (see ``name_priors``): the question names the synset by its label alone, so it must
      mean this sense. *bank* asks about the sloping land, not the other nine banks.
    - ``choices`` hold the gold label and ``num_choices - 1`` distractors, drawn from the labels
      of all hypernym targets that share the gold hypernym's ``lexname`` (so *canine* competes
      with *feline*, not *national capital*), then from all of them. Distractors are never a
      name of the subject or of any of its ancestors, which would also be true answers. The
      draw and the order are seeded by ``seed`` and the subject's key; ``label`` is the gold index.

    The split is by subject (:func:`split_by_entity`): a test question's subject never appears
    as a training subject. Hypernyms *do* appear across splits, as answers and as subjects of
    their own questions: the answers are shared categories, and a model is meant to learn them.

    Args:
        kg (KnowledgeGraph): WordNet (:func:`kgpeft.datasets.load`), or any KG with ``relations``
            and ``extras["pos"]``, ``extras["lexname"]``.
        seed (int): seeds the split, the sample and the choices. (default: ``0``)
        split_fractions (Sequence[float]): train, valid, test. (default: ``(0.8, 0.1, 0.1)``)
        max_examples (int, optional): keep a seeded sample of this many examples. (default: all)
        num_choices (int): options per multiple-choice question. (default: ``4``)
        relations (Sequence[str]): the hypernym relations, from hyponym to hypernym.
            (default: ``("hypernym", "instance_hypernym")``)
        dominant_sense_only (bool): skip synsets whose label is ambiguous. (default: ``True``)

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}`` lists of :class:`TaskExample`, in entity order.
    """
    task = "hypernym_qa"
    rel_ids = _relation_ids(kg, task, relations)
    _require_extras(kg, task, "pos", "lexname")
    split_fractions = _check_split_args(split_fractions, max_examples)
    if num_choices < 2:
        raise ValueError(f"`num_choices` should be at least 2, got {num_choices}.")
    pos, lexname = kg.extras["pos"], kg.extras["lexname"]

    parents: dict[int, list[int]] = {}
    edges = kg.triples[:, torch.isin(kg.triples[1], torch.tensor(rel_ids))]
    for h, t in zip(edges[0].tolist(), edges[2].tolist(), strict=True):
        if pos[h] == "n":
            parents.setdefault(h, []).append(t)
    subjects = _dominant_senses(kg, parents) if dominant_sense_only else set(parents)

    # Distractor pools: hypernym labels unique case-insensitively, per lexname and overall.
    hypernym_ids = sorted({t for ts in parents.values() for t in ts})
    pool_by_label: dict[str, int] = {}
    for t in hypernym_ids:
        pool_by_label.setdefault(kg.labels[t].lower(), t)
    everything = sorted(pool_by_label)
    pools: dict[str, list[str]] = {}
    for name in everything:
        pools.setdefault(lexname[pool_by_label[name]], []).append(name)

    lowered = {e: {kg.labels[e].lower(), *(a.lower() for a in kg.aliases[e])} for e in [*parents, *hypernym_ids]}
    closures = _name_closures(hypernym_ids, parents, lowered, kg)
    rng = random.Random()
    examples = []
    for h in sorted(subjects):
        label, hypernyms = kg.labels[h], list(dict.fromkeys(parents[h]))
        if any(label.lower() in lowered[t] for t in hypernyms):
            continue
        key, gold = kg.entity_keys[h], kg.labels[hypernyms[0]]
        rng.seed(f"{seed}\0{key}")
        true_names = [lowered[h], *(closures[p] for p in hypernyms)]
        distractors = _draw(rng, [pools[lexname[hypernyms[0]]], everything], num_choices - 1, true_names)
        if len(distractors) < num_choices - 1:
            raise ValueError(
                f"`num_choices`={num_choices} needs {num_choices - 1} distractors for {key!r} ({label!r}), but "
                f"only {len(distractors)} hypernym labels are neither its names nor its ancestors'."
            )
        choices = [(kg.labels[pool_by_label[d]], pool_by_label[d]) for d in distractors] + [(gold, hypernyms[0])]
        rng.shuffle(choices)
        choices, choice_ids = [c for c, _ in choices], [e for _, e in choices]
        subject = _indefinite(label)
        text = f"What kind of thing is {subject}?"
        start = len("What kind of thing is ") + len(subject) - len(label)
        examples.append(
            TaskExample(
                id=f"{task}/{key}",
                text=text,
                answer=gold,
                entity=key,
                split=_split_of(key, split_fractions, seed),
                target_start=start,
                target_end=start + len(label),
                label=choices.index(gold),
                choices=tuple(choices),
                accepted_answers=tuple(dict.fromkeys(n for t in hypernyms for n in kg.names(t))),
                answer_entities=tuple(kg.entity_keys[t] for t in hypernyms),
                choice_entities=tuple(kg.entity_keys[e] for e in choice_ids),
                relations=tuple(relations),
            )
        )
    return _by_split(examples, max_examples, seed)


def _name_closures(
    entities: Iterable[int], parents: dict[int, list[int]], lowered: dict[int, set[str]], kg: KnowledgeGraph
) -> dict[int, frozenset[str]]:
    """The names of each entity and of all its ancestors, in lower case.

    Raises:
        ValueError: if the hypernyms form a cycle; the message names an entity on it.
    """
    closures: dict[int, frozenset[str]] = {}
    visiting: set[int] = set()

    def closure(e: int) -> frozenset[str]:
        if e not in closures:
            if e in visiting:
                raise ValueError(f"The hypernyms of {kg.entity_keys[e]!r} ({kg.labels[e]!r}) lead back to it.")
            visiting.add(e)
            closures[e] = frozenset(lowered[e]).union(*map(closure, parents.get(e, ())))
            visiting.discard(e)
        return closures[e]

    for e in entities:
        closure(e)
    return closures


def _draw(rng: random.Random, pools: Sequence[list[str]], k: int, true_names: list[set[str]]) -> list[str]:
    """``k`` distinct names in none of ``true_names``, from the first pool, then the next where it runs short."""
    picks: list[str] = []

    def allowed(name: str) -> bool:
        return name not in picks and not any(name in names for names in true_names)

    for pool in pools:
        for _ in range(10 * k):  # random tries, which suffice where most of the pool is allowed
            if len(picks) == k:
                return picks
            name = pool[rng.randrange(len(pool))]
            if allowed(name):
                picks.append(name)
        for name in rng.sample(pool, len(pool)):  # a small or mostly disallowed pool: go through all of it
            if len(picks) == k:
                return picks
            if allowed(name):
                picks.append(name)
    return picks


# ------------------------------------------------------------- supersenses
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
    _require_extras(kg, task, "examples", "lexname")
    split_fractions = _check_split_args(split_fractions, max_examples)
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
                    split=_split_of(key, split_fractions, seed),
                    target_start=span[0],
                    target_end=span[1],
                    label=SUPERSENSE_IDS[supersense],
                )
            )
    owners: dict[tuple[str, int, int], set[str]] = {}
    for example in examples:
        owners.setdefault((example.text, example.target_start, example.target_end), set()).add(example.entity)
    examples = [e for e in examples if len(owners[e.text, e.target_start, e.target_end]) == 1]
    return _by_split(examples, max_examples, seed)


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
    consonant_y = len(w) > 1 and w[-1] == "y" and w[-2] not in _VOWELS
    # Doubled final consonant: stop -> stopped, big -> bigger.
    cvc = len(w) > 2 and w[-1] not in _VOWELS + "wxy" and w[-2] in _VOWELS and w[-3] not in _VOWELS
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


# ---------------------------------------------------------------- glosses
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
    _require_extras(kg, task, "pos")
    split_fractions = _check_split_args(split_fractions, max_examples)
    pos = kg.extras["pos"]
    described = [e for e, d in enumerate(kg.descriptions) if d.strip()]
    subjects = _dominant_senses(kg, described) if dominant_sense_only else set(described)

    examples = []
    for e in sorted(subjects):
        key, label = kg.entity_keys[e], kg.labels[e]
        prefix = f'Define the {_POS_WORDS.get(pos[e], "word")} "'
        examples.append(
            TaskExample(
                id=f"{task}/{key}",
                text=f'{prefix}{label}":',
                answer=kg.descriptions[e].strip(),
                entity=key,
                split=_split_of(key, split_fractions, seed),
                target_start=len(prefix),
                target_end=len(prefix) + len(label),
            )
        )
    return _by_split(examples, max_examples, seed)
