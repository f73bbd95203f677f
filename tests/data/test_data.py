import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tiny_models import WORDS

from kgpeft.data import DataError, KnowledgeCollator, KnowledgeDataset
from kgpeft.retrieval import RetrievalConfig, SubgraphRetriever
from kgpeft.tasks import TaskExample

ID = {w: i for i, w in enumerate(WORDS)}


def _dataset(kg, tokenizer, examples, **kwargs):
    retriever = SubgraphRetriever(kg, num_neighbors=[-1], max_nodes=8)
    return KnowledgeDataset(examples, tokenizer, kg, retriever=retriever, **kwargs)


def test_causal_lm_features_and_collation_by_hand(kg, tokenizer):
    ds = _dataset(
        kg,
        tokenizer,
        [TaskExample("the dog", answer="animal"), {"text": "a big tree", "answer": "pet"}, TaskExample("the the")],
        with_target=False,
    )
    # "dog" links to entity 0 (dog), "tree" to 7 (tree); "big" alone is no entity ("big cat" is)
    assert [[(m.start, m.end, m.entity) for m in ms] for ms in ds.mentions] == [[(4, 7, 0)], [(6, 10, 7)], []]
    assert ds[0]["input_ids"] == [ID["the"], ID["dog"]] and ds[0]["token_entity"] == [-1, 0]
    # dog's 1-hop neighbourhood: dog, then animal and pet; tree's: tree, river
    assert ds.graphs[0].n_id.tolist() == [0, 2, 3] and ds.graphs[1].n_id.tolist() == [7, 5]
    assert ds.graphs[2].n_id.numel() == 0

    train = _dataset(kg, tokenizer, [TaskExample("the dog", answer="animal"), TaskExample("a big tree", answer="pet")])
    assert train[0]["labels"] == [-100, -100, ID["animal"]]
    batch = KnowledgeCollator(pad_token_id=0)([train[0], train[1]])
    assert batch["input_ids"].tolist() == [
        [ID["the"], ID["dog"], ID["animal"], 0],
        [ID["a"], ID["big"], ID["tree"], ID["pet"]],
    ]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[-100, -100, ID["animal"], -100], [-100, -100, -100, ID["pet"]]]
    knowledge = batch["knowledge"]
    assert knowledge.graph.n_id.tolist() == [0, 2, 3, 7, 5]
    assert knowledge.graph.batch.tolist() == [0, 0, 0, 1, 1]
    # token -> batch node row: "dog" is row 0 of sample 0, "tree" row 3 (sample 1's first node)
    assert knowledge.token_node_index.tolist() == [[-1, 0, -1, -1], [-1, -1, 3, -1]]
    left = KnowledgeCollator(pad_token_id=0, padding_side="left")([ds[0], ds[1]])
    assert left["input_ids"].tolist() == [[0, ID["the"], ID["dog"]], [ID["a"], ID["big"], ID["tree"]]]
    assert left["knowledge"].token_node_index.tolist() == [[-1, -1, 0], [-1, -1, 3]]
    assert "knowledge" not in KnowledgeCollator(pad_token_id=0, with_knowledge=False)([train[0]])


def test_gold_links_and_facts_in_prompt(kg, tokenizer):
    ds = _dataset(
        kg,
        tokenizer,
        [TaskExample("the bank", answer="money", entity="bank", target_start=4, target_end=8)],
        retrieval=RetrievalConfig(num_facts=2),
    )
    assert ds.facts(0) == ["bank near river", "bank holds money"]
    assert ds.facts(0, 1) == ["bank near river"] and ds.facts(0, 0) == []
    with pytest.raises(DataError, match="`limit` should be a non-negative integer or None, got -1"):
        ds.facts(0, -1)  # not every fact but the last
    text = tokenizer.decode(ds[0]["input_ids"])
    assert text.startswith("[UNK] [UNK] bank [UNK] river") and text.endswith("the bank money")
    assert ds[0]["token_entity"][-3:] == [-1, 4, -1], "the gold link moved with the text"


def test_a_subject_span_without_entity_is_linked_inside_only(kg, tokenizer):
    both = TaskExample("the dog near the tree", answer="x")
    span = TaskExample("the dog near the tree", answer="x", target_start=17, target_end=21)
    nothing = TaskExample("the dog near the tree", answer="x", target_start=0, target_end=3)
    ds = _dataset(kg, tokenizer, [both, span, nothing])
    assert [[(m.start, m.end, m.entity) for m in ms] for ms in ds.mentions] == [
        [(4, 7, 0), (17, 21, 7)],
        [(17, 21, 7)],  # the tree only, at its place in the text
        [],
    ]
    with pytest.raises(DataError, match="Row 0: a subject span needs `target_start` and `target_end` together"):
        _dataset(kg, tokenizer, [{"text": "the dog", "answer": "x", "target_start": 4}])


def test_classification_rows(kg, tokenizer):
    ds = _dataset(kg, tokenizer, [TaskExample("the cat", label=3)], task="classification")
    assert ds[0]["labels"] == 3 and ds[0]["token_entity"] == [-1, 1]
    batch = KnowledgeCollator(pad_token_id=0)([ds[0], ds[0]])
    assert batch["labels"].tolist() == [3, 3]


@pytest.mark.parametrize(
    ("rows", "task", "message"),
    [
        ([{"text": "the dog", "answer": "x"}, {"answer": "x"}], "causal_lm", "Row 1: `text` should be a non-empty"),
        ([{"text": "the dog"}], "causal_lm", "Row 0: a causal_lm row needs a string `answer`"),
        ([{"text": "the dog", "label": "pet"}], "classification", "Row 0: `label` .* should be int or None, got str"),
        ([{"text": "the dog", "label": -1}], "classification", "Row 0: a classification row needs an integer"),
        (
            [{"text": "the dog", "answer": "x", "entity": "dog", "target_start": "4", "target_end": 7}],
            "causal_lm",
            "Row 0: `target_start` .* should be int or None, got str '4'",
        ),
        (
            [{"text": "the dog", "answer": "x", "entity": "dog", "target_start": 4, "target_end": 9}],
            "causal_lm",
            r"Row 0: the span .* \[4, 9\) should be a non-empty span of `text` \(7 characters\)",
        ),
        ([{"text": "the dog", "answer": "x", "choices": "ab"}], "causal_lm", "Row 0: `choices` .* should be a list"),
        ([{"text": "the dog", "lable": 1}], "classification", r"Row 0: unknown keys \['lable'\]"),
    ],
)
def test_bad_rows_are_named(kg, tokenizer, rows, task, message):
    with pytest.raises(DataError, match=message):
        _dataset(kg, tokenizer, rows, task=task)


def test_text_without_entities_gets_an_empty_graph(kg, tokenizer):
    ds = _dataset(kg, tokenizer, [TaskExample("the a the", answer="pet")])
    batch = KnowledgeCollator(pad_token_id=0)([ds[0]])
    assert batch["knowledge"].graph.num_nodes == 0
    assert (batch["knowledge"].token_node_index == -1).all()
    assert torch.equal(batch["labels"][0, -1], torch.tensor(ID["pet"]))


def test_dataloader_workers_and_unlinked_text_trains(kg, tokenizer):
    from tiny_models import ARCHITECTURES, build_model
    from torch.utils.data import DataLoader

    from kgpeft import KGLoraConfig, get_kg_peft_model

    rows = [TaskExample("the a the", answer="pet"), TaskExample("a the", answer="animal")]  # nothing links
    ds = _dataset(kg, tokenizer, rows * 2)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=KnowledgeCollator(pad_token_id=0))
    batches = list(loader)
    assert len(batches) == 2 and all(b["knowledge"].graph.num_nodes == 0 for b in batches)
    _, config, auto = ARCHITECTURES[1]
    model = get_kg_peft_model(
        build_model(config, auto), KGLoraConfig(knowledge_mode="token", r=4, graph_channels=16), kg, tokenizer
    )
    model.train()
    loss = model(**batches[0]).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n and p.requires_grad)


WORDS_OF_TEXT = ["the", "dog", "cat", "big", "tree", "bank", "river", "a", "money", "pet"]


def _reference_token_entity(ds, text: str, kept: int, from_end: bool) -> list[int]:
    """Token links computed the slow way: tokenise and link the whole text, then keep `kept` tokens."""
    offsets = ds.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    offsets = offsets[-kept:] if from_end else offsets[:kept]
    mentions = ds.linker.link(text)
    return [next((m.entity for m in mentions if s < m.end and m.start < e and s < e), -1) for s, e in offsets]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(st.sampled_from(WORDS_OF_TEXT), min_size=1, max_size=50),
    repeats=st.integers(1, 3000),
    max_length=st.integers(4, 40),
    task=st.sampled_from(["causal_lm", "classification"]),
)
@example(words=["dog", "the", "big", "cat"], repeats=3000, max_length=8, task="causal_lm")
@example(words=["dog", "the", "big", "cat"], repeats=3000, max_length=8, task="classification")
def test_any_row_length_aligns_at_most_max_length_tokens_to_the_mentions_among_them(
    kg, tokenizer, words, repeats, max_length, task
):
    """However long the text, the (tokens x mentions) table is at most `max_length` x the mentions in the
    kept span, the text linked is bounded by `max_length`, and the links are those of the whole text."""
    import importlib

    from kgpeft.data import CHARS_PER_TOKEN

    align_module = importlib.import_module("kgpeft.linking.align")

    tables = []
    build = align_module._mention_table

    def spy(mentions, offsets, target):
        table = build(mentions, offsets, target)
        low, high = offsets[0, :, 0][offsets[0, :, 0] < offsets[0, :, 1]], offsets[0, :, 1]
        in_span = [m for m in mentions[0] if low.numel() and m.start < int(high.max()) and int(low.min()) < m.end]
        tables.append((offsets.size(1), table.size(1), len(in_span)))
        return table

    text = " ".join(words * repeats)
    row = {"text": text, "label": 1} if task == "classification" else {"text": text, "answer": "pet"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(align_module, "_mention_table", spy)
        ds = _dataset(kg, tokenizer, [row], task=task, max_length=max_length)
        feature = ds[0]
    (tokens, table_mentions, in_span), *_ = tables
    assert tokens <= max_length and table_mentions <= in_span
    room = max_length * CHARS_PER_TOKEN  # the characters linked: the end of a prompt, the start of other text
    lo, hi = (max(0, len(text) - room), len(text)) if task == "causal_lm" else (0, min(room, len(text)))
    assert all(lo <= m.start and m.end <= hi for m in ds.mentions[0])
    assert len(ds.mentions[0]) <= max_length * CHARS_PER_TOKEN // 2
    # The words are at most 5 characters, far fewer than CHARS_PER_TOKEN: no kept token comes from the cut.
    if task == "causal_lm":
        kept = max_length - 1  # the target " pet" is one token; the tiny tokenizer has no end-of-sequence token
        expected = _reference_token_entity(ds, text, kept, from_end=True)
        assert feature["token_entity"] == [*expected, -1]
    else:
        assert feature["token_entity"] == _reference_token_entity(ds, text, max_length, from_end=False)


ROW_MEMORY = """
import resource, sys
sys.path.insert(0, {tests!r})
from tiny_models import tiny_kg, tiny_tokenizer
from kgpeft.retrieval import SubgraphRetriever
from kgpeft.data import DataError, KnowledgeDataset

kg, tokenizer = tiny_kg(), tiny_tokenizer()
retriever = SubgraphRetriever(kg, num_neighbors=[-1], max_nodes=8)
prose = "the dog saw the big cat near the river bank " * 500_000
rows = [
    ("causal_lm", {{"text": prose[:200_000], "answer": "pet"}}),
    ("causal_lm", {{"text": prose[:20_000_000], "answer": "pet"}}),
    ("seq2seq", {{"text": "the dog", "answer": prose[:20_000_000]}}),
    ("causal_lm", {{"text": "the dog", "answer": prose[:20_000_000]}}),
]
for task, row in rows:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        feature = KnowledgeDataset([row], tokenizer, kg, task=task, retriever=retriever, max_length=64)[0]
        outcome = len(feature["input_ids"] if task == "causal_lm" else feature["labels"])
    except DataError as e:
        outcome = str(e).replace(" ", "_")
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(outcome, grew // 1024)
"""


def test_a_long_row_needs_memory_for_max_length_tokens_only():
    """A 200 KB document peaked at GBs (a tokens x mentions table over the whole text), a 20 MB row asked for
    TBs, and a 20 MB answer was tokenised whole; the peak memory a row adds is measured in a fresh process."""
    import subprocess
    import sys
    from pathlib import Path

    script = ROW_MEMORY.format(tests=str(Path(__file__).parents[1]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines()]
    too_long = "Row_0:_the_target_has_20,000,000_characters,_too_many_for_`max_length`_(64)_tokens."
    assert [outcome for outcome, _ in rows] == ["64", "64", "64", too_long]
    assert all(int(megabytes) < 50 for _, megabytes in rows), rows
