import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from kgpeft import KnowledgeGraph
from kgpeft.linking import EntityLinker, Mention, align, align_batch

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "ban", "##k", "##s", "of", "new", "york", "city", "dog"]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A tiny BERT-style WordPiece tokenizer, built offline."""
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    kg = KnowledgeGraph(
        ["bank", "ny", "nyc", "dog"],
        ["r"],
        torch.zeros(3, 0, dtype=torch.long),
        labels=["banks", "New York", "New York City", "dog"],
    )
    return EntityLinker(kg)


def test_align_with_a_fast_tokenizer(tokenizer, linker):
    text = "The banks of New York."
    enc = tokenizer(text, return_offsets_mapping=True)
    assert tokenizer.convert_ids_to_tokens(enc["input_ids"]) == [
        "[CLS]", "the", "ban", "##k", "##s", "of", "new", "york", "[UNK]", "[SEP]"
    ]  # fmt: skip
    mentions = linker.link(text)
    assert [(m.surface, m.entity) for m in mentions] == [("banks", 0), ("New York", 1)]
    assert align(mentions, enc["offset_mapping"]).tolist() == [-1, -1, 0, 0, 0, -1, 1, 1, -1, -1]
    assert align(mentions, enc["offset_mapping"], target="mention").tolist() == [-1, -1, 0, 0, 0, -1, 1, 1, -1, -1]
    assert align(mentions[1:], torch.tensor(enc["offset_mapping"]), target="mention").tolist() == [
        -1, -1, -1, -1, -1, -1, 0, 0, -1, -1
    ]  # fmt: skip


def test_align_batch_with_padding(tokenizer, linker):
    texts = ["The bank", "dog of New York City"]
    enc = tokenizer(texts, return_offsets_mapping=True, padding=True, return_tensors="pt")
    index = align_batch(linker.link_batch(texts), enc["offset_mapping"])
    assert index.dtype == torch.long
    assert index.tolist() == [
        [-1, -1, -1, -1, -1, -1, -1],  # "bank" is not a name here, only "banks"
        [-1, 3, -1, 2, 2, 2, -1],
    ]
    assert torch.equal(index[1], align(linker.link(texts[1]), enc["offset_mapping"][1]))


def test_token_overlapping_two_mentions_goes_to_the_first():
    mentions = [Mention(0, 3, "dog", (7,), (1.0,)), Mention(4, 7, "cat", (9,), (1.0,))]
    offsets = [(0, 0), (0, 2), (2, 5), (5, 7), (7, 9), (3, 4), (5, 5), (0, 0)]
    assert align(mentions, offsets).tolist() == [-1, 7, 7, 9, -1, -1, -1, -1]


def test_nothing_to_align():
    assert align([], [(0, 0), (0, 3)]).tolist() == [-1, -1]
    assert align([Mention(0, 3, "dog", (7,), (1.0,))], []).tolist() == []
    assert align_batch([[], []], torch.zeros(2, 3, 2, dtype=torch.long)).tolist() == [[-1, -1, -1], [-1, -1, -1]]


def test_invalid_arguments():
    with pytest.raises(ValueError, match=r"`offsets` should have shape \(T, 2\), got \(2, 3\)"):
        align([], torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"`offsets` should have shape \(B, T, 2\), got \(4, 2\)"):
        align_batch([[]], torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"one list per row of `offsets` \(2\), got 1"):
        align_batch([[]], torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="`target` should be 'entity' or 'mention', got 'token'"):
        align([], [(0, 1)], target="token")
