import pytest
import torch
from torch_geometric.data import Data

from kgpeft.graph import KnowledgeGraph
from kgpeft.retrieval import (
    FACT_STYLES,
    RetrievalConfig,
    RetrievalConfigError,
    SubgraphRetriever,
    format_fact,
    memory_fact_texts,
    render_facts,
)
from kgpeft.selection import rank_facts

# tiny_kg's triples: 0 dog is_a animal, 1 cat is_a animal, 2 dog is_a pet, 3 cat is_a pet,
# 4 bank near river, 5 bank holds money, 6 tree near river


def test_format_fact_styles_and_templates(kg):
    assert format_fact(kg, 0) == "dog is a animal"
    assert format_fact(kg, 5, "arrow") == "bank --holds--> money"
    assert format_fact(kg, 0, "arrow") == "dog --is_a--> animal"
    assert format_fact(kg, 4, "({head}, {relation_key}, {tail})") == "(bank, near, river)"
    assert set(FACT_STYLES) == {"sentence", "arrow"}
    with pytest.raises(ValueError, match="`fact_format` should be one of"):
        format_fact(kg, 0, "{subject}")


def test_render_facts(kg):
    assert render_facts(kg, [4, 5]) == "Facts: bank near river; bank holds money.\n"
    assert render_facts(kg, [0], "{tail} <- {head}") == "Facts: animal <- dog.\n"
    assert render_facts(kg, []) == "Facts: .\n"


def test_rank_facts_puts_facts_touching_a_seed_first(kg):
    # A hand-made sample around river (5): tree -near-> river, bank -near-> river, bank -holds-> money,
    # each edge in both directions; n_id maps local rows to entities.
    graph = Data(
        n_id=torch.tensor([5, 7, 4, 6]),
        edge_index=torch.tensor([[2, 2, 1, 0, 3, 0], [3, 0, 0, 2, 2, 1]]),
        edge_id=torch.tensor([5, 4, 6, 4, 5, 6]),
    )
    assert rank_facts(graph, {5}) == [4, 6, 5]  # the two facts about river, then bank holds money
    assert rank_facts(graph, {6}) == [5, 4, 6]
    assert rank_facts(graph, set()) == [5, 4, 6]  # edge order, each triple once


def test_rank_facts_on_a_retrieved_subgraph(kg):
    sample = SubgraphRetriever(kg, [-1, -1], max_nodes=16)([[4]]).get_example(0)  # around bank
    ranked = rank_facts(sample, {4})
    assert ranked[:2] in ([4, 5], [5, 4]) and ranked[2:] == [6]


def test_relation_keys_with_underscores():
    kg = KnowledgeGraph(["a", "b"], ["instance_hypernym"], torch.tensor([[0], [0], [1]]), labels=["Rome", "city"])
    assert format_fact(kg, 0) == "Rome instance hypernym city"
    assert format_fact(kg, 0, "arrow") == "Rome --instance_hypernym--> city"


def test_rank_facts_puts_a_link_stated_both_ways_once_before_the_rest():
    # triples: 0 dog -hypernym-> canine, 1 canine -hyponym-> dog, 2 dog -part-> tail, 3 canine -hypernym-> carnivore
    graph = Data(
        n_id=torch.tensor([10, 11, 12, 13]),  # dog, canine, tail, carnivore
        edge_index=torch.tensor([[0, 1, 0, 1, 1, 3], [1, 0, 2, 0, 3, 1]]),
        edge_id=torch.tensor([0, 0, 2, 1, 3, 3]),
    )
    # the two facts about dog say different things; the inverse link comes after them, then the rest
    assert rank_facts(graph, {10}) == [0, 2, 1, 3]
    assert rank_facts(graph, {13}) == [3, 0, 2, 1]
    assert sorted(rank_facts(graph, set())) == [0, 1, 2, 3]


def test_memory_fact_texts_are_the_facts_or_the_pieces_of_the_block(kg):
    assert memory_fact_texts(kg, [4, 5]) == ["bank near river", "bank holds money"]
    pieces = memory_fact_texts(kg, [4, 5], framing="block")
    assert pieces == ["Facts: bank near river", "; bank holds money.\n"]
    assert "".join(pieces) == render_facts(kg, [4, 5])
    assert "".join(memory_fact_texts(kg, [0], "{tail} <- {head}", "block")) == render_facts(kg, [0], "{tail} <- {head}")
    assert memory_fact_texts(kg, [], framing="block") == []
    with pytest.raises(RetrievalConfigError, match="`memory_framing` should be 'fact' or 'block'"):
        RetrievalConfig(memory_framing="prompt")
