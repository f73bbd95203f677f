"""`graph_qa`: questions from any KG with labels, on a small ontology built here."""

import pytest
import torch

from kgpeft import KnowledgeGraph
from kgpeft.tasks import MissingKGDataError, RelationQuestion, TaskTemplateError, entity_split, graph_qa
from kgpeft.tasks.base import SPLITS

# A small ontology: keys unlike labels, as GO's. mitochondrion is part of the cell and the cytoplasm.
ENTITIES = [
    ("GO:1", "mitochondrion", ("mitochondria",)),
    ("GO:2", "organelle", ()),
    ("GO:3", "cell", ("cellula",)),
    ("GO:4", "cytoplasm", ()),
    ("GO:5", "nucleus", ()),
    ("GO:6", "Golgi apparatus", ()),
    ("GO:7", "organelle", ()),  # a second entity with its hypernym's label: nothing to ask of it
]
TRIPLES = [
    ("GO:1", "is_a", "GO:2"),
    ("GO:1", "part_of", "GO:3"),
    ("GO:1", "part_of", "GO:4"),
    ("GO:1", "part_of", "GO:3"),  # a repeated edge: one answer
    ("GO:5", "is_a", "GO:2"),
    ("GO:5", "part_of", "GO:3"),
    ("GO:6", "is_a", "GO:2"),
    ("GO:4", "part_of", "GO:3"),
    ("GO:7", "is_a", "GO:2"),
]


def ontology() -> KnowledgeGraph:
    keys = [k for k, _, _ in ENTITIES]
    relations = ["is_a", "part_of", "has_part"]
    triples = torch.tensor([[keys.index(h), relations.index(r), keys.index(t)] for h, r, t in TRIPLES]).T
    return KnowledgeGraph(
        keys, relations, triples, labels=[label for _, label, _ in ENTITIES], aliases=[a for _, _, a in ENTITIES]
    )


QUESTIONS = [
    RelationQuestion("is_a", ("is_a",), "What kind of thing is {a}?"),
    RelationQuestion("part_of", ("part_of",), "Which structure is {head} {relation}?"),
]


def flat(parts):
    return [e for split in SPLITS for e in parts[split]]


def test_one_question_per_subject_and_relation_with_every_tail_and_the_span():
    kg = ontology()
    examples = {e.id: e for e in flat(graph_qa(kg, QUESTIONS, task="go", split_fractions=(1, 0, 0)))}
    assert sorted(examples) == [
        "go/GO:1/is_a",
        "go/GO:1/part_of",
        "go/GO:4/part_of",
        "go/GO:5/is_a",
        "go/GO:5/part_of",
        "go/GO:6/is_a",
    ], "GO:7 (labelled as its answer) is not asked"
    e = examples["go/GO:1/part_of"]
    assert e.text == "Which structure is mitochondrion part of?"
    assert (e.answer, e.accepted_answers, e.answer_entities) == (
        "cell",
        ("cell", "cellula", "cytoplasm"),
        ("GO:3", "GO:4"),
    )
    assert (e.entity, e.relations, e.split) == ("GO:1", ("part_of",), "train")
    assert e.text[e.target_start : e.target_end] == "mitochondrion"
    a = examples["go/GO:1/is_a"]
    assert (
        a.text == "What kind of thing is a mitochondrion?" and a.text[a.target_start : a.target_end] == "mitochondrion"
    )
    g = examples["go/GO:6/is_a"]  # a capitalised label takes no article
    assert g.text == "What kind of thing is Golgi apparatus?" and (g.target_start, g.target_end) == (22, 37)


def test_the_split_is_by_subject_and_seeded():
    kg = ontology()
    for seed in range(6):
        parts = graph_qa(kg, QUESTIONS, seed=seed, split_fractions=(0.4, 0.3, 0.3))
        assert parts == graph_qa(kg, QUESTIONS, seed=seed, split_fractions=(0.4, 0.3, 0.3)), "deterministic"
        subjects = {split: {e.entity for e in parts[split]} for split in SPLITS}
        assert not (subjects["train"] & subjects["valid"] or subjects["train"] & subjects["test"])
        assert not subjects["valid"] & subjects["test"]
        for split, examples in parts.items():
            assert all(entity_split(e.entity, (0.4, 0.3, 0.3), seed) == split for e in examples)
    trains = {frozenset(e.entity for e in graph_qa(kg, QUESTIONS, seed=s)["train"]) for s in range(6)}
    assert len(trains) > 1, "the seed moves subjects"


def test_samples_per_question_and_extra_fields():
    kg = ontology()
    parts = graph_qa(kg, QUESTIONS, split_fractions=(1, 0, 0), max_per_question=1)
    assert sorted(e.id.rsplit("/", 1)[1] for e in parts["train"]) == ["is_a", "part_of"]
    kinds = {"kind": ["component"] * kg.num_entities}
    asked = [RelationQuestion("is_a", ("is_a",), "Which {kind} is {head} a kind of?", lambda h: h != 0)]
    texts = [e.text for e in flat(graph_qa(kg, asked, fields=kinds))]
    assert texts == ["Which component is nucleus a kind of?", "Which component is Golgi apparatus a kind of?"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("What is it?", "0 subject fields"),
        ("Is {head} {a}?", "2 subject fields"),
        ("What {kind} is {head}?", r"unknown fields \['kind'\]"),
        ("What is {head?", "not a format string"),
    ],
)
def test_bad_templates_are_named(template, message):
    with pytest.raises(TaskTemplateError, match=message):
        graph_qa(ontology(), [RelationQuestion("is_a", ("is_a",), template)])


def test_bad_questions():
    kg = ontology()
    with pytest.raises(MissingKGDataError, match=r"`graph_qa` needs the relations 'located_in'"):
        graph_qa(kg, [RelationQuestion("x", ("located_in",), "{head}?")])
    with pytest.raises(MissingKGDataError, match=r"needs the relations 'is_A'.*; did you mean 'is_a'\? Or pass"):
        graph_qa(kg, [RelationQuestion("x", ("is_A",), "{head}?")])
    with pytest.raises(TaskTemplateError, match="'is_a' is asked by two questions"):
        graph_qa(kg, [*QUESTIONS, RelationQuestion("again", ("is_a",), "{head}?")])
