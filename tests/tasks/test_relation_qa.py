import dataclasses
import hashlib
import json

import pytest
import torch
from tasks.test_builders import ALL_TRAIN, assert_split_by_entity, flatten, needs_wordnet, wordnet  # noqa: F401

from kgpeft.errors import KGPeftError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.tasks import MissingKGDataError, entity_split, get_task, relation_qa
from kgpeft.tasks.relation_qa import QUESTIONS, RELATIONS

# A tiny WordNet with every relation relation_qa asks about: (key, label, aliases, pos, name priors).
# The two "car"s: the automobile sense dominates. "good" is a noun and an adjective.
SYNSETS = [
    ("car-n", "car", ("auto",), "n", (5.0, 1.0)),
    ("railcar-n", "car", ("railcar",), "n", (1.0, 1.0)),
    ("vehicle-n", "motor vehicle", (), "n", None),
    ("ambulance-n", "ambulance", (), "n", None),
    ("jeep-n", "jeep", (), "n", None),
    ("accelerator-n", "accelerator", ("gas pedal",), "n", None),
    ("bumper-n", "bumper", (), "n", None),
    ("train-n", "train", (), "n", None),
    ("dog-n", "dog", (), "n", None),
    ("wolf-n", "wolf", (), "n", None),
    ("canis-n", "Canis", ("genus Canis",), "n", None),
    ("genus-n", "mammal genus", (), "n", None),
    ("brick-n", "brick", (), "n", None),
    ("clay-n", "clay", (), "n", None),
    ("good-a", "good", (), "a", None),
    ("bad-a", "bad", (), "a", None),
    ("good-n", "good", ("goodness",), "n", None),
    ("evil-n", "evil", (), "n", None),
    ("driver-n", "driver", (), "n", None),
    ("drive-v", "drive", (), "v", None),
    ("drive-n", "drive", (), "n", None),
    ("travel-v", "travel", (), "v", None),
    ("city-n", "city", (), "n", None),
    ("rome-n", "Rome", (), "n", None),
]
# Both directions, as WordNet has them: car part_meronym accelerator (an accelerator is part of a car).
TRIPLES = [
    ("car-n", "hypernym", "vehicle-n"), ("vehicle-n", "hyponym", "car-n"),
    ("ambulance-n", "hypernym", "car-n"), ("car-n", "hyponym", "ambulance-n"),
    ("jeep-n", "hypernym", "car-n"), ("car-n", "hyponym", "jeep-n"),
    ("car-n", "part_meronym", "accelerator-n"), ("accelerator-n", "part_holonym", "car-n"),
    ("car-n", "part_meronym", "bumper-n"), ("bumper-n", "part_holonym", "car-n"),
    ("railcar-n", "member_holonym", "train-n"), ("train-n", "member_meronym", "railcar-n"),
    ("dog-n", "member_holonym", "canis-n"), ("canis-n", "member_meronym", "dog-n"),
    ("wolf-n", "member_holonym", "canis-n"), ("canis-n", "member_meronym", "wolf-n"),
    ("canis-n", "hypernym", "genus-n"), ("genus-n", "hyponym", "canis-n"),
    ("brick-n", "substance_meronym", "clay-n"),
    ("good-a", "antonym", "bad-a"), ("bad-a", "antonym", "good-a"),
    ("good-n", "antonym", "evil-n"), ("evil-n", "antonym", "good-n"),
    ("driver-n", "derivationally_related_form", "drive-v"), ("drive-v", "derivationally_related_form", "driver-n"),
    ("drive-n", "derivationally_related_form", "drive-v"),  # asks nothing: the answer is its own label
    ("drive-v", "hypernym", "travel-v"), ("travel-v", "hyponym", "drive-v"),  # verbs: no kind of thing
    ("rome-n", "instance_hypernym", "city-n"), ("city-n", "instance_hyponym", "rome-n"),
    ("clay-n", "also_see", "brick-n"),  # a relation relation_qa does not ask about
]  # fmt: skip
# (id, text, answer, accepted answers) of every question, with all samples off.
EXPECTED = [
    ("car-n/hypernym", "What is a car a kind of?", "motor vehicle", ("motor vehicle",)),
    ("car-n/hyponym", "Name a kind of car.", "ambulance", ("ambulance", "jeep")),
    ("car-n/part_meronym", "Name a part of a car.", "accelerator", ("accelerator", "gas pedal", "bumper")),
    ("vehicle-n/hyponym", "Name a kind of motor vehicle.", "car", ("car", "auto")),
    ("ambulance-n/hypernym", "What is an ambulance a kind of?", "car", ("car", "auto")),
    ("jeep-n/hypernym", "What is a jeep a kind of?", "car", ("car", "auto")),
    ("accelerator-n/part_holonym", "What is an accelerator a part of?", "car", ("car", "auto")),
    ("bumper-n/part_holonym", "What is a bumper a part of?", "car", ("car", "auto")),
    ("train-n/member_meronym", "Name a member of train.", "car", ("car", "railcar")),
    ("dog-n/member_holonym", "What group is a dog a member of?", "Canis", ("Canis", "genus Canis")),
    ("wolf-n/member_holonym", "What group is a wolf a member of?", "Canis", ("Canis", "genus Canis")),
    ("canis-n/hypernym", "What is Canis a kind of?", "mammal genus", ("mammal genus",)),
    ("canis-n/member_meronym", "Name a member of Canis.", "dog", ("dog", "wolf")),
    ("genus-n/hyponym", "Name a kind of mammal genus.", "Canis", ("Canis", "genus Canis")),
    ("brick-n/substance_meronym", "What is a brick made of?", "clay", ("clay",)),
    ("good-a/antonym", 'What is the opposite of the adjective "good"?', "bad", ("bad",)),
    ("bad-a/antonym", 'What is the opposite of the adjective "bad"?', "good", ("good",)),
    ("good-n/antonym", 'What is the opposite of the noun "good"?', "evil", ("evil",)),
    ("evil-n/antonym", 'What is the opposite of the noun "evil"?', "good", ("good", "goodness")),
    ("driver-n/derivationally_related_form", 'Name a word derived from the noun "driver".', "drive", ("drive",)),
    ("drive-v/derivationally_related_form", 'Name a word derived from the verb "drive".', "driver", ("driver",)),
    ("city-n/hyponym", "Name a kind of city.", "Rome", ("Rome",)),
    ("rome-n/hypernym", "What is Rome a kind of?", "city", ("city",)),
]


def tiny_wordnet(relations=(*RELATIONS, "also_see"), extras=("pos",)) -> KnowledgeGraph:
    keys = [s[0] for s in SYNSETS]
    triples = [(keys.index(h), relations.index(r), keys.index(t)) for h, r, t in TRIPLES if r in relations]
    return KnowledgeGraph(
        keys,
        list(relations),
        torch.tensor(triples).T,
        labels=[s[1] for s in SYNSETS],
        aliases=[s[2] for s in SYNSETS],
        name_priors=[s[4] or (1.0,) * (1 + len(s[2])) for s in SYNSETS],
        extras={"pos": [s[3] for s in SYNSETS]} if "pos" in extras else {},
    )


def build_all(kg: KnowledgeGraph, **kwargs) -> list:
    return flatten(relation_qa(kg, split_fractions=ALL_TRAIN, max_per_relation=None, **kwargs))


def group(example) -> str:
    return example.id.rpartition("/")[2]


# ------------------------------------------------------------ tiny, by hand
def test_relation_qa_by_hand():
    examples = build_all(tiny_wordnet())
    # Not the rail "car" (the automobile dominates), "drive" the noun (its derivation is "drive"),
    # "clay" (no relation asked about) or the verbs' hypernyms and hyponyms.
    assert [(e.id, e.text, e.answer, e.accepted_answers) for e in examples] == [
        (f"relation_qa/{id}", *rest) for id, *rest in EXPECTED
    ]
    assert all(e.split == "train" and e.entity == e.id.split("/")[1] for e in examples)
    for e in examples:
        assert e.text[e.target_start : e.target_end] == tiny_wordnet().labels[tiny_wordnet().entity_id(e.entity)]


def test_relation_qa_fields():
    kg = tiny_wordnet()
    examples = {e.id.removeprefix("relation_qa/"): e for e in build_all(kg)}
    car = examples["car-n/part_meronym"]
    assert (car.entity, car.answer_entities, car.relations) == (
        "car-n",
        ("accelerator-n", "bumper-n"),
        ("part_meronym",),
    )
    assert (car.target_start, car.target_end) == (17, 20)
    assert examples["car-n/hyponym"].relations == ("hyponym", "instance_hyponym")
    assert examples["rome-n/hypernym"].relations == ("hypernym", "instance_hypernym")
    good = examples["good-a/antonym"]
    assert good.text[good.target_start : good.target_end] == "good" and good.target_start == 39
    assert {group(e) for e in examples.values()} == set(QUESTIONS)
    for e in examples.values():
        assert e.relations == QUESTIONS[group(e)][0]
        assert e.answers == e.accepted_answers and e.answer == e.accepted_answers[0]


def test_every_true_tail_is_accepted():
    kg = tiny_wordnet()
    heads, rels, tails = kg.triples.tolist()
    for e in build_all(kg):
        h = kg.entity_id(e.entity)
        true = [
            t for hh, r, t in zip(heads, rels, tails, strict=True) if hh == h and kg.relation_keys[r] in e.relations
        ]
        assert e.answer_entities == tuple(kg.entity_keys[t] for t in true)
        assert e.accepted_answers == tuple(n for t in true for n in kg.names(t))


def test_options():
    kg = tiny_wordnet()
    loose = build_all(kg, dominant_sense_only=False)
    (rail,) = [e for e in loose if e.entity == "railcar-n"]
    assert (rail.text, rail.answer, rail.accepted_answers) == ("What group is a car a member of?", "train", ("train",))
    assert len(loose) == len(EXPECTED) + 1

    parts = build_all(kg, relations=["part_meronym", "part_holonym"])
    assert [e.id for e in parts] == [
        "relation_qa/car-n/part_meronym",
        "relation_qa/accelerator-n/part_holonym",
        "relation_qa/bumper-n/part_holonym",
    ]
    # Only instances: city asks for its instance Rome, car for nothing.
    instances = build_all(kg, relations=["instance_hyponym"])
    assert [(e.text, e.answer, e.relations) for e in instances] == [
        ("Name a kind of city.", "Rome", ("instance_hyponym",))
    ]
    # Only the relations asked about are needed.
    assert build_all(tiny_wordnet(relations=("antonym",)), relations=["antonym"]) == [
        e for e in build_all(kg) if group(e) == "antonym"
    ]


def test_split_by_subject_and_determinism():
    kg = tiny_wordnet()
    parts = relation_qa(kg, seed=3, split_fractions=(0.4, 0.3, 0.3))
    assert_split_by_entity(parts)
    assert all(e.split == entity_split(e.entity, (0.4, 0.3, 0.3), seed=3) for e in flatten(parts))
    assert all(parts.values())  # every split has questions, so the test above tests something
    again = relation_qa(kg, seed=3, split_fractions=(0.4, 0.3, 0.3))
    assert again == parts and [e.id for e in flatten(again)] == [e.id for e in flatten(parts)]
    assert relation_qa(kg, seed=4, split_fractions=(0.4, 0.3, 0.3)) != parts


def test_max_per_relation_and_max_examples():
    kg = tiny_wordnet()
    full = build_all(kg)
    capped = flatten(relation_qa(kg, split_fractions=ALL_TRAIN, max_per_relation=1))
    assert sorted(group(e) for e in capped) == sorted(QUESTIONS)  # one question per group
    assert capped == [e for e in full if e in capped]  # in the original order
    assert flatten(relation_qa(kg, split_fractions=ALL_TRAIN, max_per_relation=1)) == capped
    assert flatten(relation_qa(kg, split_fractions=ALL_TRAIN, max_per_relation=0)) == []
    assert flatten(relation_qa(kg, split_fractions=ALL_TRAIN)) == full  # the default cap keeps all of a tiny KG

    sample = flatten(relation_qa(kg, split_fractions=ALL_TRAIN, max_examples=5))
    assert len(sample) == 5 and sample == [e for e in full if e in sample]
    assert flatten(relation_qa(kg, max_examples=0)) == []


# --------------------------------------------------------------- bad input
def test_bad_arguments():
    kg = tiny_wordnet()
    with pytest.raises(ValueError, match=r"`relations` should be among hypernym, .*, got 'also_see'"):
        relation_qa(kg, relations=["hypernym", "also_see"])
    with pytest.raises(ValueError, match=r"`relations` should name at least one relation"):
        relation_qa(kg, relations=())
    with pytest.raises(ValueError, match=r"`max_per_relation` should be non-negative or None, got -1"):
        relation_qa(kg, max_per_relation=-1)
    with pytest.raises(ValueError, match=r"`max_examples` should be non-negative or None, got -1"):
        relation_qa(kg, max_examples=-1)
    with pytest.raises(ValueError, match=r"`split_fractions` should be three"):
        relation_qa(kg, split_fractions=(0.5, 0.5))


def test_missing_kg_data():
    with pytest.raises(MissingKGDataError, match=r"`relation_qa` needs the relations 'part_meronym'") as info:
        relation_qa(tiny_wordnet(relations=("antonym",)), relations=["antonym", "part_meronym"])
    assert isinstance(info.value, KGPeftError) and isinstance(info.value, ValueError)
    with pytest.raises(MissingKGDataError, match=r"`relation_qa` needs the per-entity columns extras\['pos'\]"):
        relation_qa(tiny_wordnet(extras=()))


def test_registered():
    kg = tiny_wordnet()
    task = get_task("relation_qa")
    assert (task.builder, task.task_type, task.metric) == (relation_qa, "causal_lm", "qa")
    assert task.build(kg, seed=1) == relation_qa(kg, seed=1)


# --------------------------------------------------------------- real WordNet
@needs_wordnet
def test_wordnet_relation_qa(wordnet):  # noqa: F811 (the fixture imported above)
    parts = relation_qa(wordnet)
    examples = flatten(parts)
    assert_split_by_entity(parts)
    counts = {g: sum(group(e) == g for e in examples) for g in QUESTIONS}
    assert all(0 < n <= 3000 for n in counts.values()), counts
    assert counts["hyponym"] == 3000  # the cap keeps ~11k hyponym questions from swamping the ~450 substance ones
    assert len({e.id for e in examples}) == len(examples)
    assert len({e.text for e in examples}) == len(examples)  # no question asked twice with other answers
    for e in examples:
        label = wordnet.labels[wordnet.entity_id(e.entity)]
        assert e.text[e.target_start : e.target_end] == label
        assert label.lower() not in {a.lower() for a in e.accepted_answers}

    full = {e.id: e for e in flatten(relation_qa(wordnet, split_fractions=ALL_TRAIN, max_per_relation=None))}
    car = full["relation_qa/02958343-n/part_meronym"]  # the automobile, car's dominant sense
    assert car.text == "Name a part of a car."
    assert {"accelerator", "air bag", "bumper", "car door"} <= set(car.accepted_answers)
    assert full["relation_qa/02958343-n/hyponym"].text == "Name a kind of car."
    assert "ambulance" in full["relation_qa/02958343-n/hyponym"].accepted_answers
    assert full["relation_qa/02084071-n/member_holonym"].accepted_answers[:2] == ("Canis", "genus Canis")


# The SHA-256 of every example (`dataclasses.asdict`, sorted keys, one JSON line each, train, valid, test) that
# relation_qa built on WordNet 3.0 before it became an instance of `graph_qa` (commit 4e32be0), and the split sizes.
BEFORE_GRAPH_QA = [
    ({}, "bacb46e353e90313b760df4692951d4e5be86fad0568cfb523c2b55e69431139", (19146, 2418, 2437)),
    (
        {
            "relations": ("antonym", "part_meronym", "hyponym"),
            "max_per_relation": 50,
            "max_examples": 100,
            "split_fractions": (0.5, 0.25, 0.25),
            "seed": 1,
        },
        "bd32fda3bb2243bc1a9191af1226a8cabbb96d1c27263c4b17ad8c7948c6784a",
        (45, 22, 33),
    ),
]


@needs_wordnet
@pytest.mark.parametrize(("options", "digest", "sizes"), BEFORE_GRAPH_QA)
def test_wordnet_relation_qa_is_the_builder_it_was(wordnet, options, digest, sizes):  # noqa: F811
    parts = relation_qa(wordnet, **options)
    assert tuple(len(parts[split]) for split in ("train", "valid", "test")) == sizes
    h = hashlib.sha256()
    for e in flatten(parts):
        h.update(json.dumps(dataclasses.asdict(e), sort_keys=True).encode() + b"\n")
    assert h.hexdigest() == digest
