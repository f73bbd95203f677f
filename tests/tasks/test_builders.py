import os
from pathlib import Path

import pytest
import torch

from kgpeft.datasets import load
from kgpeft.datasets.wordnet import DEFAULT_DIR, ENV_VAR
from kgpeft.errors import KGPeftError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.tasks import (
    SPLITS,
    SUPERSENSE_IDS,
    SUPERSENSES,
    MissingKGDataError,
    TaskExample,
    entity_split,
    get_task,
    gloss_generation,
    hypernym_qa,
    split_by_entity,
    supersense_classification,
    supersense_qa,
)

ALL_TRAIN = (1.0, 0.0, 0.0)

# A tiny WordNet: (key, label, aliases, pos, lexname, description, examples). "bank" is ambiguous
# but its sloping-land sense dominates; the two "bat"s tie; "beast" is also a name of its hypernym.
SYNSETS = [
    ("entity-n", "entity", (), "n", "noun.Tops", "that which exists", []),
    ("animal-n", "animal", ("beast",), "n", "noun.animal", "a living organism", []),
    ("canine-n", "canine", ("canid",), "n", "noun.animal", "a carnivore of the dog family", []),
    ("dog-n", "dog", ("domestic dog",), "n", "noun.animal", "a domesticated canid",
     ["the dog barked all night", "Domestic dogs bark"]),
    ("pet-n", "pet", (), "n", "noun.animal", "an animal kept for company", []),
    ("feline-n", "feline", ("felid",), "n", "noun.animal", "a cat-like mammal", []),
    ("cat-n", "cat", (), "n", "noun.animal", "a small domesticated feline", ["the cat sat on the mat", "no name here"]),
    ("artifact-n", "artifact", ("artefact",), "n", "noun.artifact", "a man-made object", []),
    ("tool-n", "tool", (), "n", "noun.artifact", "an implement used by hand", []),
    ("hammer-n", "hammer", (), "n", "noun.artifact", "a hand tool for pounding", ["hand me the Hammer!"]),
    ("bank-n", "bank", (), "n", "noun.object", "sloping land beside water", []),
    ("depository-n", "depository", ("bank",), "n", "noun.group", "a financial institution", []),
    ("bat-n", "bat", (), "n", "noun.animal", "a flying mammal", ["a bat in the dark"]),
    ("club-n", "bat", (), "n", "noun.artifact", "a club used in sports", ["a bat in the dark"]),
    ("city-n", "city", (), "n", "noun.location", "a large town", []),
    ("rome-n", "Rome", (), "n", "noun.location", "", []),
    ("hammer-v", "hammer", (), "v", "verb.contact", "beat with a hammer", ["he hammered the nail"]),
    ("strike-v", "strike", (), "v", "verb.contact", "deliver a sharp blow", ["strike the ball"]),
    ("happy-a", "happy", (), "a", "adj.all", "feeling pleasure", ["she was happier than ever"]),
    ("beast-n", "beast", (), "n", "noun.animal", "a brutal person", []),
]  # fmt: skip
HYPERNYMS = [
    ("animal-n", "entity-n"), ("canine-n", "animal-n"), ("dog-n", "canine-n"), ("dog-n", "pet-n"),
    ("pet-n", "animal-n"), ("feline-n", "animal-n"), ("cat-n", "feline-n"), ("artifact-n", "entity-n"),
    ("tool-n", "artifact-n"), ("hammer-n", "tool-n"), ("bank-n", "entity-n"), ("depository-n", "entity-n"),
    ("bat-n", "animal-n"), ("club-n", "artifact-n"), ("city-n", "entity-n"), ("hammer-v", "strike-v"),
    ("beast-n", "animal-n"),
]  # fmt: skip
PRIORS = {"bank-n": (9.0,), "depository-n": (1.0, 3.0), "beast-n": (2.0,)}


def tiny_wordnet(relations=("hypernym", "instance_hypernym"), descriptions=True, extras=("examples", "lexname", "pos")):
    keys = [s[0] for s in SYNSETS]
    triples = [(keys.index(h), 0, keys.index(t)) for h, t in HYPERNYMS]
    if "instance_hypernym" in relations:
        triples.append((keys.index("rome-n"), 1, keys.index("city-n")))
    columns = {"pos": [s[3] for s in SYNSETS], "lexname": [s[4] for s in SYNSETS], "examples": [s[6] for s in SYNSETS]}
    return KnowledgeGraph(
        keys,
        list(relations),
        torch.tensor(triples).T,
        labels=[s[1] for s in SYNSETS],
        aliases=[s[2] for s in SYNSETS],
        descriptions=[s[5] for s in SYNSETS] if descriptions else None,
        name_priors=[PRIORS.get(s[0], (1.0,) * (1 + len(s[2]))) for s in SYNSETS],
        extras={name: columns[name] for name in extras},
    )


def flatten(parts: dict[str, list[TaskExample]]) -> list[TaskExample]:
    assert list(parts) == list(SPLITS)
    return [e for split in SPLITS for e in parts[split]]


def assert_split_by_entity(parts: dict[str, list[TaskExample]]) -> None:
    entities = {split: {e.entity for e in examples} for split, examples in parts.items()}
    assert not entities["train"] & entities["valid"]
    assert not entities["train"] & entities["test"]
    assert not entities["valid"] & entities["test"]
    assert all(e.split == split for split, examples in parts.items() for e in examples)


# ------------------------------------------------------------------ splits
def test_split_by_entity():
    keys = [f"{i:08d}-n" for i in range(10_000)]
    parts = split_by_entity([*keys, *keys[:10]], seed=0)  # repeats are dropped
    assert sorted(parts) == sorted(SPLITS)
    assert sorted(k for v in parts.values() for k in v) == keys
    assert all(v == sorted(v) for v in parts.values())  # input order is kept
    assert all(entity_split(k, seed=0) == split for split, v in parts.items() for k in v)
    # Sizes follow the fractions up to sampling noise (standard deviation ~0.3 %).
    assert [len(parts[s]) / len(keys) for s in SPLITS] == pytest.approx([0.8, 0.1, 0.1], abs=0.015)

    assert split_by_entity(keys, seed=0) == parts
    other = split_by_entity(keys, seed=1)
    assert other != parts and len(set(parts["test"]) & set(other["test"])) < 0.2 * len(parts["test"])
    # An entity's split depends on itself alone.
    assert split_by_entity(keys[:100], seed=0)["test"] == [k for k in parts["test"] if k in keys[:100]]
    assert split_by_entity(keys, ALL_TRAIN) == {"train": keys, "valid": [], "test": []}
    assert split_by_entity(keys, (0, 0, 1))["test"] == keys


def test_split_is_stable_across_runs():
    # SHA-256 based, so it holds across processes and Python versions; pinned for WordNet's dog and cat.
    assert entity_split("02084071-n") == "train"
    assert entity_split("02121620-n") == "valid"


@pytest.mark.parametrize("fractions", [(0.8, 0.2), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)])
def test_bad_fractions(fractions):
    with pytest.raises(ValueError, match=r"`fractions` should be three non-negative fractions"):
        split_by_entity(["a"], fractions)
    with pytest.raises(ValueError, match=r"`split_fractions` should be three"):
        gloss_generation(tiny_wordnet(), split_fractions=fractions)


# ------------------------------------------------------------ tiny, by hand
def test_hypernym_qa_by_hand():
    examples = {e.entity: e for e in flatten(hypernym_qa(tiny_wordnet(), split_fractions=ALL_TRAIN))}
    # No "bat" (tied senses), "beast" (a name of its hypernym), "entity" (no hypernym) or verbs.
    assert list(examples) == [
        "animal-n", "canine-n", "dog-n", "pet-n", "feline-n", "cat-n", "artifact-n", "tool-n", "hammer-n",
        "bank-n", "depository-n", "city-n", "rome-n",
    ]  # fmt: skip
    dog = examples["dog-n"]
    assert (dog.id, dog.text, dog.split) == ("hypernym_qa/dog-n", "What kind of thing is a dog?", "train")
    assert dog.text[dog.target_start : dog.target_end] == "dog"
    assert dog.answer == "canine"
    assert dog.accepted_answers == ("canine", "canid", "pet")
    assert dog.answer_entities == ("canine-n", "pet-n")
    assert dog.choices[dog.label] == "canine"
    # "feline" shares canine's lexname; the others come from all hypernyms but dog's ancestors.
    assert "feline" in dog.choices
    assert set(dog.choices) - {"canine", "feline"} < {"artifact", "tool", "city"}

    animal, rome = examples["animal-n"], examples["rome-n"]
    assert (animal.text, animal.answer, animal.text[animal.target_start : animal.target_end]) == (
        "What kind of thing is an animal?",
        "entity",
        "animal",
    )
    assert set(animal.choices) - {"entity"} < {"canine", "feline", "pet", "artifact", "tool", "city"}
    assert (rome.text, rome.answer, rome.answer_entities) == ("What kind of thing is Rome?", "city", ("city-n",))
    assert rome.text[rome.target_start : rome.target_end] == "Rome"
    assert examples["bank-n"].answer == "entity"
    for e in examples.values():
        assert len(e.choices) == len(set(e.choices)) == 4 and e.choices[e.label] == e.answer

    loose = flatten(hypernym_qa(tiny_wordnet(), split_fractions=ALL_TRAIN, dominant_sense_only=False))
    assert {e.entity for e in loose} - set(examples) == {"bat-n", "club-n"}
    only = flatten(hypernym_qa(tiny_wordnet(("hypernym",)), relations=["hypernym"], split_fractions=ALL_TRAIN))
    assert [e.entity for e in only] == list(examples)[:-1]


def test_hypernym_qa_choices():
    kg = tiny_wordnet()
    two = {e.entity: e for e in flatten(hypernym_qa(kg, num_choices=2, split_fractions=ALL_TRAIN))}
    assert set(two["dog-n"].choices) == {"canine", "feline"}
    with pytest.raises(
        ValueError, match=r"`num_choices`=7 needs 6 distractors for 'canine-n' \('canine'\), but only 5"
    ):
        hypernym_qa(kg, num_choices=7)  # canine's: artifact, city, feline, pet, tool
    with pytest.raises(ValueError, match=r"`num_choices` should be at least 2, got 1"):
        hypernym_qa(kg, num_choices=1)


def test_supersense_by_hand():
    examples = flatten(supersense_classification(tiny_wordnet(), split_fractions=ALL_TRAIN))
    got = [(e.id, e.text[e.target_start : e.target_end], e.answer, e.label) for e in examples]
    # "no name here" names no lemma; "a bat in the dark" belongs to both bats, so to neither.
    assert got == [
        ("supersense_classification/dog-n/0", "dog", "noun.animal", SUPERSENSE_IDS["noun.animal"]),
        ("supersense_classification/dog-n/1", "Domestic dogs", "noun.animal", 5),
        ("supersense_classification/cat-n/0", "cat", "noun.animal", 5),
        ("supersense_classification/hammer-n/0", "Hammer", "noun.artifact", 6),
        ("supersense_classification/hammer-v/0", "hammered", "verb.contact", 35),
        ("supersense_classification/strike-v/0", "strike", "verb.contact", 35),
        ("supersense_classification/happy-a/0", "happier", "adj.all", 0),
    ]
    assert (examples[0].text, examples[0].target_start, examples[0].target_end) == ("the dog barked all night", 4, 7)
    assert all(SUPERSENSES[e.label] == e.answer and e.entity in e.id for e in examples)
    assert len(SUPERSENSES) == len(SUPERSENSE_IDS) == 45


def test_supersense_qa_asks_about_the_target_word():
    kg = tiny_wordnet()
    classes = flatten(supersense_classification(kg, split_fractions=ALL_TRAIN))
    questions = flatten(supersense_qa(kg, split_fractions=ALL_TRAIN))
    assert [(q.answer, q.label, q.entity) for q in questions] == [(c.answer, c.label, c.entity) for c in classes]
    dog = questions[0]
    assert (dog.id, dog.text) == ("supersense_qa/dog-n/0", 'the dog barked all night\nWhich supersense is "dog"?')
    assert dog.text[dog.target_start : dog.target_end] == "dog", "the gold link still points into the sentence"


def test_gloss_generation_by_hand():
    examples = {e.entity: e for e in flatten(gloss_generation(tiny_wordnet(), split_fractions=ALL_TRAIN))}
    # Not the tied "bat"s nor Rome, which has no description; both "hammer"s, a noun and a verb.
    assert set(examples) == {s[0] for s in SYNSETS} - {"bat-n", "club-n", "rome-n"}
    dog, verb, happy = examples["dog-n"], examples["hammer-v"], examples["happy-a"]
    assert (dog.id, dog.text, dog.answer) == (
        "gloss_generation/dog-n",
        'Define the noun "dog":',
        "a domesticated canid",
    )
    assert dog.text[dog.target_start : dog.target_end] == "dog"
    assert (verb.text, verb.answer) == ('Define the verb "hammer":', "beat with a hammer")
    assert happy.text[happy.target_start : happy.target_end] == "happy"
    assert examples["depository-n"].text == 'Define the noun "depository":'


@pytest.mark.parametrize("build", [hypernym_qa, supersense_classification, gloss_generation])
def test_split_and_sample(build):
    kg = tiny_wordnet()
    parts = build(kg, seed=3)
    assert_split_by_entity(parts)
    assert all(e.split == entity_split(e.entity, seed=3) for e in flatten(parts))
    assert build(kg, seed=3) == parts
    full = flatten(build(kg, split_fractions=ALL_TRAIN))
    sample = flatten(build(kg, split_fractions=ALL_TRAIN, max_examples=4))
    assert len(sample) == 4 and set(sample) < set(full)
    assert sample == [e for e in full if e in sample]  # in the original order
    assert flatten(build(kg, max_examples=0)) == []
    with pytest.raises(ValueError, match=r"`max_examples` should be non-negative or None, got -1"):
        build(kg, max_examples=-1)


# --------------------------------------------------------------- bad input
def test_missing_relation():
    with pytest.raises(MissingKGDataError, match=r"`hypernym_qa` needs the relations 'instance_hypernym'"):
        hypernym_qa(tiny_wordnet(relations=("hypernym",)))
    with pytest.raises(ValueError, match=r"`relations` should name at least one relation"):
        hypernym_qa(tiny_wordnet(), relations=())


@pytest.mark.parametrize(
    ("build", "kg", "message"),
    [
        (hypernym_qa, tiny_wordnet(extras=("pos",)), r"`hypernym_qa` needs the per-entity columns extras\['lexname'\]"),
        (
            supersense_classification,
            tiny_wordnet(extras=("pos",)),
            r"`supersense_classification` needs the per-entity columns extras\['examples'\], extras\['lexname'\]",
        ),
        (gloss_generation, tiny_wordnet(descriptions=False), r"`gloss_generation` needs `descriptions`"),
        (gloss_generation, tiny_wordnet(extras=()), r"`gloss_generation` needs the per-entity columns extras\['pos'\]"),
    ],
)
def test_missing_columns(build, kg, message):
    with pytest.raises(MissingKGDataError, match=message) as info:
        build(kg)
    assert isinstance(info.value, KGPeftError) and isinstance(info.value, ValueError)


def test_hypernym_cycle():
    kg = tiny_wordnet(relations=("hypernym",))
    cyclic = KnowledgeGraph(
        kg.entity_keys,
        ["hypernym"],
        torch.cat([kg.triples, torch.tensor([[kg.entity_id("entity-n")], [0], [kg.entity_id("dog-n")]])], 1),
        labels=kg.labels,
        extras=kg.extras,
    )
    with pytest.raises(ValueError, match=r"The hypernyms of '\w+-n' \('\w+'\) lead back to it"):
        hypernym_qa(cyclic, relations=["hypernym"])


def test_unknown_supersense():
    kg = tiny_wordnet()
    kg.extras["lexname"][3] = "noun.dog"
    with pytest.raises(MissingKGDataError, match=r"got 'noun.dog' for 'dog-n'"):
        supersense_classification(kg)


# --------------------------------------------------------------- real WordNet
WORDNET_DIR = Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)
needs_wordnet = pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").is_file(),
    reason=f"no WordNet database in {WORDNET_DIR} (apt-get install wordnet-base wordnet-sense-index)",
)
BUILDERS = {"hypernym_qa": hypernym_qa, "supersense": supersense_classification, "gloss": gloss_generation}
# Total examples on WordNet 3.0 as read in 2026, seed 0; the tests allow small changes of the reader.
EXPECTED_TOTALS = {"hypernym_qa": 57_572, "supersense": 46_457, "gloss": 76_734}


@pytest.fixture(scope="module")
def wordnet() -> KnowledgeGraph:
    return load("wordnet")


@pytest.fixture(scope="module")
def wordnet_tasks(wordnet) -> dict[str, dict[str, list[TaskExample]]]:
    return {name: build(wordnet) for name, build in BUILDERS.items()}


@needs_wordnet
def test_wordnet_tasks_split_by_entity(wordnet_tasks):
    print()
    for name, parts in wordnet_tasks.items():
        sizes = {split: len(examples) for split, examples in parts.items()}
        print(f"{name}: {sizes}")
        total = sum(sizes.values())
        assert total == pytest.approx(EXPECTED_TOTALS[name], rel=0.02)
        assert [sizes[s] / total for s in SPLITS] == pytest.approx([0.8, 0.1, 0.1], abs=0.01)
        assert_split_by_entity(parts)
        assert len({e.id for e in flatten(parts)}) == total
    # The same synset falls in the same split in every task.
    split_of = {}
    for parts in wordnet_tasks.values():
        for e in flatten(parts):
            assert split_of.setdefault(e.entity, e.split) == e.split


@needs_wordnet
def test_wordnet_examples(wordnet, wordnet_tasks):
    qa = {e.entity: e for e in flatten(wordnet_tasks["hypernym_qa"])}
    dog = qa["02084071-n"]
    assert (dog.text, dog.answer, dog.split) == ("What kind of thing is a dog?", "canine", "train")
    assert dog.accepted_answers == ("canine", "canid", "domestic animal", "domesticated animal")
    assert qa["08932568-n"].text == "What kind of thing is Paris?"  # an instance of national capital
    assert qa["09213565-n"].text == "What kind of thing is a bank?"  # the sloping land, the dominant sense
    for e in qa.values():
        assert len(set(e.choices)) == 4 and e.choices[e.label] == e.answer
        assert not {c.lower() for c in e.choices if c != e.answer} & {a.lower() for a in e.accepted_answers}
        assert e.text[e.target_start : e.target_end] == wordnet.labels[wordnet.entity_id(e.entity)]

    supersense = {e.id: e for e in flatten(wordnet_tasks["supersense"])}
    barked = supersense["supersense_classification/02084071-n/0"]
    assert (barked.text, barked.target_start, barked.target_end, barked.answer) == (
        "the dog barked all night",
        4,
        7,
        "noun.animal",
    )
    assert {e.answer for e in supersense.values()} == set(SUPERSENSES)
    assert all(0 <= e.target_start < e.target_end <= len(e.text) for e in supersense.values())

    gloss = {e.entity: e for e in flatten(wordnet_tasks["gloss"])}
    assert gloss["02084071-n"].text == 'Define the noun "dog":'
    assert gloss["02084071-n"].answer.startswith("a member of the genus Canis")


@needs_wordnet
def test_wordnet_tasks_deterministic(wordnet, wordnet_tasks):
    # The tiny tests rebuild every task; here the one with random choices.
    assert hypernym_qa(wordnet) == wordnet_tasks["hypernym_qa"]
    other = supersense_classification(wordnet, seed=1)
    assert_split_by_entity(other)
    split_of = {e.id: e.split for e in flatten(other)}
    changed = sum(e.split != split_of[e.id] for e in flatten(wordnet_tasks["supersense"]))
    assert changed > 0.2 * len(split_of)


def test_registered_task_builds_what_its_builder_builds():
    kg = tiny_wordnet()
    assert get_task("hypernym_qa").build(kg, seed=1) == hypernym_qa(kg, seed=1)
