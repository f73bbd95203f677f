"""The knowledge controls: each example's own knowledge, another example's, none; dropout; ablation."""

import pytest

from kgpeft.data import CONTROLS, DataError, KnowledgeDataset
from kgpeft.retrieval import RetrievalConfig, SubgraphRetriever
from kgpeft.tasks import TaskExample

TEXTS = ["the dog", "a big tree", "the bank", "the cat"]


@pytest.fixture
def data(kg, tokenizer):
    retriever = SubgraphRetriever(kg, num_neighbors=[-1], max_nodes=8)
    examples = [TaskExample(t, answer="x") for t in TEXTS]
    return KnowledgeDataset(examples, tokenizer, kg, retriever=retriever, retrieval=RetrievalConfig(num_facts=1))


def test_every_control_keeps_the_texts_and_gives_the_knowledge_it_names(data):
    assert CONTROLS == ("correct", "shuffled", "none")
    assert data.with_knowledge(control="correct") is data
    own = [g.n_id.tolist() for g in data.graphs]
    shuffled = data.with_knowledge("shuffled", seed=3)
    theirs = [g.n_id.tolist() for g in shuffled.graphs]
    assert sorted(theirs) == sorted(own) and all(t != o for t, o in zip(theirs, own, strict=True))  # a derangement
    for i, mentions in enumerate(shuffled.mentions):  # the spans stay, the links point into the donor's graph
        assert [(m.start, m.end) for m in mentions] == [(m.start, m.end) for m in data.mentions[i]]
        assert all(m.entity in theirs[i] for m in mentions)
    none = data.with_knowledge("none")
    assert all(g.num_nodes == 0 for g in none.graphs) and all(m == [] for m in none.mentions)
    assert none.facts(0) == [] and set(none[0]["token_entity"]) == {-1}
    assert len(none[0]["input_ids"]) < len(data[0]["input_ids"])  # no facts block before the text
    assert [e.text for e in shuffled.examples] == [e.text for e in none.examples] == TEXTS


def test_an_unknown_control_is_refused_by_its_name(data):
    with pytest.raises(DataError, match=r"`control` should be one of \('correct', 'shuffled', 'none'\), got 'wrong'"):
        data.with_knowledge("wrong")


def test_dropout_and_ablation_remove_knowledge_from_chosen_rows_only(data):
    dropped = data.with_knowledge_dropout(0.5, seed=0)
    empty = [i for i, g in enumerate(dropped.graphs) if g.num_nodes == 0]
    assert len(empty) == 2 and all(dropped.graphs[i] is data.graphs[i] for i in set(range(4)) - set(empty))
    dog = data.mentions[0][0].entity
    rows = data.ablated([(0, None, ()), (0, dog, ())], answers=["animal", "animal"])
    assert rows.graphs[0].n_id.tolist() == data.graphs[0].n_id.tolist()
    assert dog not in rows.graphs[1].n_id.tolist() and rows.mentions[1] == [] and rows.facts(1) == []
