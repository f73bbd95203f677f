"""What a dataset's token limits cut is counted, and a cut that removes knowledge the row needs is named."""

import warnings

import pytest
import torch

from kgpeft import KnowledgeGraph
from kgpeft.data import KnowledgeDataset
from kgpeft.retrieval import RetrievalConfig, SubgraphRetriever, memory_fact_texts, render_facts
from kgpeft.tasks import TaskExample

# dog's one fact has 10 tokens with the tiny tokenizer (one per word): "dog is a big small animal river bank tree money"
LABEL = "big small animal river bank tree money"


@pytest.fixture(scope="module")
def long_kg():
    return KnowledgeGraph(["dog", "kind"], ["is_a"], torch.tensor([[0], [0], [1]]), labels=["dog", LABEL])


def _dataset(kg, tokenizer, rows, **kwargs):
    retriever = SubgraphRetriever(kg, num_neighbors=[-1], max_nodes=8)
    return KnowledgeDataset(rows, tokenizer, kg, retriever=retriever, **kwargs)


def _counts(data):
    t = data.truncation()
    return {k: getattr(t, k) for k in ("rows", "prompts", "questions", "prompt_answers", "facts", "fact_answers")}


def test_memory_facts_cut_to_max_fact_tokens_are_counted_and_a_lost_answer_is_named(long_kg, tokenizer):
    rows = [TaskExample("the dog", answer="animal"), TaskExample("a dog", answer="dog")]
    whole = _dataset(long_kg, tokenizer, rows, retrieval=RetrievalConfig(memory_facts=1))
    assert [len(f["fact_ids"][0]) for f in whole.features] == [10, 10], "unset: no fact is cut"
    assert _counts(whole)["facts"] == 0 and whole.truncation().memory_facts == 2
    cut = whole.with_retrieval(RetrievalConfig(memory_facts=1, max_fact_tokens=5))
    assert cut.features[0]["fact_ids"] == [whole.features[0]["fact_ids"][0][:5]]
    # Both facts are cut; the first row's answer, "animal", was in its fact and is gone; "dog" is kept.
    assert _counts(cut) == {"rows": 2, "prompts": 0, "questions": 0, "prompt_answers": 0, "facts": 2, "fact_answers": 1}
    truncation = cut.truncation()
    with pytest.warns(
        UserWarning, match=r"from 1 rows or facts .*row 0 'the dog' lost .*fact 'dog is a big small animal"
    ):
        truncation.report("test")
    kept = whole.with_retrieval(RetrievalConfig(memory_facts=1, max_fact_tokens=6))
    assert _counts(kept)["fact_answers"] == 0 and kept.truncation().facts == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cuts that keep every answer are printed, not warned about
        kept.truncation().report("test")


def test_a_prompt_loses_its_facts_block_then_its_question(long_kg, tokenizer, capsys):
    # "Facts: dog is a big small animal river bank tree money.\n" then "the dog": 13 + 2 tokens, then " animal"
    row = [TaskExample("the dog", answer="animal")]
    data = _dataset(long_kg, tokenizer, row, retrieval=RetrievalConfig(num_facts=1), max_length=16)
    expected = {"rows": 1, "prompts": 0, "questions": 0, "prompt_answers": 0, "facts": 0, "fact_answers": 0}
    assert _counts(data) == expected
    assert _counts(data.with_max_length(11)) == {**expected, "prompts": 1}, "the facts' start only: the answer stays"
    assert _counts(data.with_max_length(8)) == {**expected, "prompts": 1, "prompt_answers": 1}, "'animal' is cut"
    assert _counts(data.with_max_length(2)) == {**expected, "prompts": 1, "prompt_answers": 1, "questions": 1}
    with pytest.warns(UserWarning, match=r"from 2 rows or facts .*row 0 'the dog' lost 'Facts: dog is a"):
        data.with_max_length(2).truncation().report("train")
    assert "truncation (train): 1 of 1 prompts cut to `max_length` (2) (1 lost question text" in capsys.readouterr().err
    long_text = "the dog " * 200  # more characters than the window of `max_length` 8 links: its start is gone
    assert _counts(_dataset(long_kg, tokenizer, [TaskExample(long_text, answer="x")], max_length=8))["questions"] == 1


@pytest.mark.parametrize("task", ["classification", "seq2seq"])
def test_other_prompts_lose_their_end_and_a_seq2seq_target_is_counted(long_kg, tokenizer, task):
    rows = [TaskExample("the big dog", answer="a big dog", label=0), TaskExample("a dog", answer="dog", label=0)]
    data = _dataset(long_kg, tokenizer, rows, task=task, max_length=2)
    assert data.features[0]["input_ids"] == tokenizer("the big")["input_ids"]
    truncation = data.truncation()
    assert (truncation.prompts, truncation.questions) == (1, 1)
    assert truncation.targets == (1 if task == "seq2seq" else 0)
    assert "row 0 'the big dog' lost ' dog'" in truncation.examples[0]


def test_block_framed_memory_facts_are_the_pieces_of_the_facts_block(kg, tokenizer):
    rows = [TaskExample("the dog", answer="animal")]
    retriever = SubgraphRetriever(kg, num_neighbors=[-1], max_nodes=8)
    retrieval = RetrievalConfig(memory_facts=2, memory_framing="block")
    data = KnowledgeDataset(rows, tokenizer, kg, retriever=retriever, retrieval=retrieval)
    triples = data.ranked_facts(0)[:2]
    assert len(triples) == 2
    pieces = memory_fact_texts(kg, triples, framing="block")
    assert "".join(pieces) == render_facts(kg, triples)
    assert data.features[0]["fact_ids"] == tokenizer(pieces, add_special_tokens=False)["input_ids"]
