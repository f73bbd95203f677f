"""Label tokens: batched tokenisation equals one call, and the disk cache is reused, checked and keyed."""

from itertools import pairwise

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from kgpeft import KnowledgeGraph
from kgpeft.graph.strings import string_table
from kgpeft.nn import label_tokens
from kgpeft.nn.label_tokens import label_token_ids, tokenize_labels, tokenizer_digest

VOCAB = {"[UNK]": 0, "big": 1, "dog": 2, "cat": 3, "small": 4}
LABELS = ["big dog", "cat", "", "small cat dog", "zebra"] * 7


def word_tokenizer(vocab=VOCAB) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def make_kg(labels) -> KnowledgeGraph:
    n = len(labels)
    return KnowledgeGraph([f"e{i}" for i in range(n)], ["r"], torch.tensor([[0], [0], [1]]), labels=labels)


def test_batches_equal_one_call(monkeypatch):
    tokenizer = word_tokenizer()
    whole = tokenizer(LABELS, add_special_tokens=False)["input_ids"]
    monkeypatch.setattr(label_tokens, "_BATCH", 3)
    ids, ptr = tokenize_labels(LABELS, tokenizer)
    assert ids.dtype == np.int32 and ptr.dtype == np.int64
    assert [ids[a:b].tolist() for a, b in pairwise(ptr.tolist())] == whole
    # a string table (as a saved KG holds) gives the same
    table_ids, table_ptr = tokenize_labels(string_table(LABELS), tokenizer)
    assert np.array_equal(table_ids, ids) and np.array_equal(table_ptr, ptr)
    empty_ids, empty_ptr = tokenize_labels([], tokenizer)
    assert empty_ids.size == 0 and empty_ptr.tolist() == [0]


def test_cache_is_written_then_reused(tmp_path, monkeypatch):
    kg, tokenizer = make_kg(LABELS), word_tokenizer()
    ids, ptr = label_token_ids(kg, tokenizer, cache_dir=tmp_path, min_entities=1)
    (folder,) = tmp_path.iterdir()
    assert {p.name for p in folder.iterdir()} == {"ids.npy", "ptr.npy", "meta.json"}

    def refuse(*args, **kwargs):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(label_tokens, "tokenize_labels", refuse)
    again_ids, again_ptr = label_token_ids(kg, tokenizer, cache_dir=tmp_path, min_entities=1)
    assert torch.equal(again_ids, ids) and torch.equal(again_ptr, ptr)
    again_ids[0] = 99  # copy-on-write: the file is untouched
    assert torch.equal(label_token_ids(kg, tokenizer, cache_dir=tmp_path, min_entities=1)[0], ids)


def test_cache_keys_on_labels_and_tokenizer_and_skips_small_kgs(tmp_path):
    kg = make_kg(LABELS)
    label_token_ids(kg, word_tokenizer(), cache_dir=tmp_path, min_entities=1)
    other_vocab = {**VOCAB, "zebra": 5}
    ids, _ = label_token_ids(kg, word_tokenizer(other_vocab), cache_dir=tmp_path, min_entities=1)
    assert 5 in ids.tolist()  # not the first tokenizer's cached [UNK]
    label_token_ids(make_kg([*LABELS[:-1], "dog"]), word_tokenizer(), cache_dir=tmp_path, min_entities=1)
    assert len(list(tmp_path.iterdir())) == 3
    label_token_ids(kg, word_tokenizer(), cache_dir=tmp_path / "small", min_entities=len(LABELS) + 1)
    assert not (tmp_path / "small").exists()
    assert tokenizer_digest(word_tokenizer()) == tokenizer_digest(word_tokenizer())
    assert tokenizer_digest(object()) is None


def test_a_changed_cache_file_is_rebuilt_with_a_warning(tmp_path):
    kg, tokenizer = make_kg(LABELS), word_tokenizer()
    ids, ptr = label_token_ids(kg, tokenizer, cache_dir=tmp_path, min_entities=1)
    (folder,) = tmp_path.iterdir()
    data = bytearray((folder / "ids.npy").read_bytes())
    data[-1] ^= 1
    (folder / "ids.npy").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="does not match its SHA-256 digest"):
        again_ids, again_ptr = label_token_ids(kg, tokenizer, cache_dir=tmp_path, min_entities=1)
    assert torch.equal(again_ids, ids) and torch.equal(again_ptr, ptr)
    # and the rebuilt entry is good again
    assert torch.equal(label_token_ids(kg, tokenizer, cache_dir=tmp_path, min_entities=1)[0], ids)
