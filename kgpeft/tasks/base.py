"""What every task shares: the example record, the split by entity, and checks of the KG.

Every task is split **by entity** (:func:`split_by_entity`): an entity's examples all land in
one split, chosen by a seeded hash of its key alone. So no subject of a test example is the
subject of a training example, and with the same ``seed`` and fractions an entity falls in the
same split in every task, so that tasks can be mixed without leaking test entities.

Examples are plain frozen dataclasses holding text; a collator tokenises them, links
``text[target_start:target_end]`` to ``entity`` and retrieves its subgraph.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from math import isclose

from kgpeft.errors import KGPeftError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.tasks.types import get_task_type

SPLITS = ("train", "valid", "test")
POS_WORDS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
VOWELS = "aeiou"


class MissingKGDataError(KGPeftError, ValueError):
    """A task needs a relation or a per-entity column (``descriptions``, an ``extras`` key) the KG lacks."""


@dataclass(frozen=True, slots=True)
class TaskExample:
    """One example of a task: what the task builders return and what training reads.

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
        target_start (int, optional): start of the character span of ``text`` that names the
            subject; with ``target_end`` and ``entity`` it is the example's gold link, used
            instead of the entity linker; without ``entity``, the linker links inside the span
            only. (default: ``None``)
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


def _template_pattern(template: str) -> re.Pattern:
    """``template`` as a regular expression whose group ``subject`` is the subject's label."""
    slots = {
        "{a}": r"(?:(?:an?|the) )?(?P<subject>.+?)",
        "{x}": r"(?P<subject>.+?)",
        "{pos}": "(?:" + "|".join(sorted({*POS_WORDS.values(), "word"})) + ")",
    }
    parts = re.split(r"(\{a\}|\{x\}|\{pos\})", template)
    return re.compile("".join(slots.get(p, re.escape(p)) for p in parts), re.IGNORECASE)


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


def check_split_args(split_fractions: Sequence[float], max_examples: int | None) -> tuple[float, float, float]:
    """A builder's ``split_fractions`` as three floats, after checking them and ``max_examples``."""
    if max_examples is not None and max_examples < 0:
        raise ValueError(f"`max_examples` should be non-negative or None, got {max_examples}.")
    return _check_fractions(split_fractions, "split_fractions")


def entity_split(entity: Hashable, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> str:
    """The split of one entity: ``"train"``, ``"valid"`` or ``"test"``.

    It depends on the entity, ``fractions`` and ``seed`` only, not on which other entities are
    split, so it is the same in every task and stays put when the candidate set changes.
    """
    return split_of(entity, _check_fractions(fractions), seed)


def split_of(entity: Hashable, fractions: tuple[float, float, float], seed: int) -> str:
    """:func:`entity_split` for fractions already checked, as builders call it once per example."""
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
        parts[split_of(entity, fractions, seed)].append(entity)
    return parts


def sample_examples(examples: list[TaskExample], k: int, seed: int, salt: str = "sample") -> list[TaskExample]:
    """A seeded sample of ``k`` of the examples (all if fewer), in their original order.

    Each example's draw depends on its ``id``, ``seed`` and ``salt`` alone; give each sample
    of one task its own ``salt`` so that the samples are independent.
    """
    # Salted apart from the split hash, or the sample would be all train.
    keep = set(sorted(range(len(examples)), key=lambda i: _unit_hash(f"{seed}\0{salt}\0{examples[i].id}"))[:k])
    return [e for i, e in enumerate(examples) if i in keep]


def by_split(examples: list[TaskExample], max_examples: int | None, seed: int) -> dict[str, list[TaskExample]]:
    """Group examples by split, after keeping a seeded sample of ``max_examples`` of them."""
    if max_examples is not None:
        examples = sample_examples(examples, max_examples, seed)
    parts: dict[str, list[TaskExample]] = {name: [] for name in SPLITS}
    for example in examples:
        parts[example.split].append(example)
    return parts


# ------------------------------------------------------------------- checks
def require_extras(kg: KnowledgeGraph, task: str, *names: str) -> None:
    """Raise :class:`MissingKGDataError` naming ``task`` if the KG lacks one of the ``extras`` columns ``names``."""
    missing = [name for name in names if name not in kg.extras]
    if missing:
        raise MissingKGDataError(
            f"`{task}` needs the per-entity columns {', '.join(f'extras[{n!r}]' for n in missing)}, which the KG "
            f"lacks (it has extras {sorted(kg.extras)}); `kgpeft.datasets.load('wordnet')` provides them."
        )


def relation_ids(kg: KnowledgeGraph, task: str, relations: Sequence[str]) -> list[int]:
    """The ids of the relation keys ``relations``; :class:`MissingKGDataError` naming ``task`` if one is missing."""
    if not relations:
        raise ValueError(f"`relations` should name at least one relation, got {relations!r}.")
    missing = [r for r in relations if r not in kg.relation_keys]
    if missing:
        shown = ", ".join(map(repr, kg.relation_keys[:10])) + (", ..." if kg.num_relations > 10 else "")
        # Relation keys are case-sensitive: `subclassOf` typed for rdflib's `subClassOf` is named.
        folded = {key.lower(): key for key in kg.relation_keys}
        close = difflib.get_close_matches(missing[0].lower(), list(folded), n=1, cutoff=0.8)
        hint = f"did you mean {folded[close[0]]!r}? Or pass" if close else "pass"
        raise MissingKGDataError(
            f"`{task}` needs the relations {', '.join(map(repr, missing))}, which the KG lacks "
            f"(it has {kg.num_relations}: {shown}); {hint} `relations=` to choose others."
        )
    return [kg.relation_id(r) for r in relations]


# ------------------------------------------------------------ word senses
def indefinite(label: str) -> str:
    """The label with an indefinite article chosen by its first letter (*a dog*, *an elk*, also *an unicorn*).

    Capitalised labels, proper names such as *Colombo*, take none.
    """
    if label[:1].isupper():
        return label
    return f"an {label}" if label[:1].lower() in VOWELS else f"a {label}"


def dominant_senses(kg: KnowledgeGraph, entities: Iterable[int]) -> set[int]:
    """The entities whose label most likely means them, among entities of the same POS.

    An entity qualifies when no other entity of its POS has its label (case-insensitively) as a
    name, or when its prior for that name (:attr:`KnowledgeGraph.name_priors`, e.g. WordNet's
    sense tag counts) is strictly higher than every other entity's. Without priors only the
    unambiguous labels qualify.
    """
    pos, priors = kg.extras["pos"], kg.name_priors
    entities = list(entities)
    pos_groups = {POS_WORDS.get(pos[e], pos[e]) for e in entities}
    best: dict[tuple[str, str], tuple[float, int]] = {}  # (POS, name) -> (top prior, its entity or -1 on a tie)
    for e in range(kg.num_entities):
        group = POS_WORDS.get(pos[e], pos[e])
        if group not in pos_groups:
            continue
        for j, name in enumerate((kg.labels[e], *kg.aliases[e])):
            key, prior = (group, name.lower()), 1.0 if priors is None else priors[e][j]
            top, holder = best.get(key, (-1.0, -1))
            if prior > top:
                best[key] = (prior, e)
            elif prior == top and holder != e:
                best[key] = (prior, -1)
    return {e for e in entities if best[(POS_WORDS.get(pos[e], pos[e]), kg.labels[e].lower())][1] == e}


@dataclass(frozen=True)
class Task:
    """A task, in one place: how its examples are built, how a model learns it and how it is scored.

    Args:
        name (str): the name a job config gives as ``task``, e.g. ``"hypernym_qa"``.
        builder (Callable): ``builder(kg, *, seed=..., split_fractions=..., max_examples=..., **options)``
            → ``{"train": [...], "valid": [...], "test": [...]}`` lists of :class:`TaskExample`.
        task_type (str): how a model is trained on it by default: one of :data:`~kgpeft.tasks.types.TASK_TYPES`.
        metric (str): the :func:`~kgpeft.evaluation.compute_metrics` task type its generated
            outputs are scored with (``"qa"``, ``"summarization"``) or, for a classification
            task, ``"classification"``.
        templates (tuple[str, ...]): the texts the builder writes, with the subject as ``{a}``
            (its label after an optional article), ``{x}`` (the bare label) and ``{pos}`` (a POS
            word), e.g. ``"What kind of thing is {a}?"``. :meth:`example` reads a user's text
            through them, so that free text is linked as the training examples were: at the
            subject only. (default: none: free text is linked wherever the linker finds a name)
    """

    name: str
    builder: Callable[..., dict[str, list[TaskExample]]]
    task_type: str
    metric: str
    templates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        get_task_type(self.task_type)  # a known one
        bad = [t for t in self.templates if t.count("{a}") + t.count("{x}") != 1]
        if bad:
            raise ValueError(f"Each template should name the subject once, as {{a}} or {{x}}; got {bad[0]!r}.")
        object.__setattr__(self, "_patterns", tuple(_template_pattern(t) for t in self.templates))

    def example(self, text: str, **fields) -> TaskExample:
        """A :class:`TaskExample` of a user's ``text``: where it reads as one of the task's
        :attr:`templates`, the subject's span is set (``target_start``, ``target_end``, no
        ``entity``), so the linker links inside it only, as in training; ``fields`` go to the example.

        Example:
            >>> from kgpeft.tasks import get_task
            >>> e = get_task("hypernym_qa").example("What kind of thing is a violin?")
            >>> e.text[e.target_start : e.target_end]
            'violin'
        """
        for pattern in self._patterns:
            match = pattern.fullmatch(text.strip())
            if match:
                offset = len(text) - len(text.lstrip())
                start, end = match.span("subject")
                return TaskExample(text, target_start=start + offset, target_end=end + offset, **fields)
        return TaskExample(text, **fields)

    def build(self, kg: KnowledgeGraph, **kwargs) -> dict[str, list[TaskExample]]:
        """The task's examples per split over ``kg``; ``kwargs`` go to the builder (``seed``, ``max_examples``, ...)."""
        return self.builder(kg, **kwargs)
