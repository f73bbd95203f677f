import json
import os
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import kgpeft.kge.embeddings as embeddings_module
from kgpeft.datasets import load
from kgpeft.graph import KnowledgeGraph
from kgpeft.kge import EmbeddingFileError, KGEConfig, KGEmbeddings, build_model


@pytest.fixture(scope="module")
def nations() -> KnowledgeGraph:
    return load("nations")


def _embeddings(kg: KnowledgeGraph, model: str = "complex", reciprocal: bool = False, **kwargs) -> KGEmbeddings:
    config = KGEConfig(model=model, hidden_channels=8, reciprocal=reciprocal, **kwargs)
    torch.manual_seed(0)
    relations = kg.num_relations * (2 if reciprocal else 1)
    net = build_model(model, kg.num_entities, relations, 8, **config.model_kwargs())
    return KGEmbeddings(net.eval(), config, kg.num_relations, kg.fingerprint, kg.relation_keys)


def _path_pattern(path) -> str:
    return re.escape(str(path))


@pytest.mark.parametrize("reciprocal", [False, True])
@pytest.mark.parametrize("model", ["transe", "distmult", "complex", "rotate"])
def test_round_trip_is_bit_exact(nations, tmp_path, model, reciprocal):
    emb = _embeddings(nations, model, reciprocal, margin=2.5, p_norm=2.0, learning_rate=0.01)
    path = tmp_path / "sub" / "emb.safetensors"  # the folder is created
    emb.save(path)
    loaded = KGEmbeddings.load(path, nations)
    assert type(loaded.model) is type(emb.model)
    before, after = emb.model.state_dict(), loaded.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    assert loaded.config == emb.config
    assert (loaded.num_relations, loaded.kg_fingerprint) == (nations.num_relations, nations.fingerprint)
    assert loaded.relation_keys == nations.relation_keys and loaded.num_entities == nations.num_entities
    r, e = torch.arange(6) % nations.num_relations, torch.arange(6)
    assert torch.equal(loaded.score_tails(e, r), emb.score_tails(e, r))
    assert torch.equal(loaded.score_heads(r, e), emb.score_heads(r, e))
    assert torch.equal(loaded.entity_embeddings(), emb.entity_embeddings())
    assert not loaded.model.training
    assert loaded.evaluate(nations, "test").mrr == emb.evaluate(nations, "test").mrr
    assert os.listdir(path.parent) == ["emb.safetensors"]  # no temporary file left


def test_files_with_the_old_config_names_still_load(nations, tmp_path):
    emb = _embeddings(nations, "distmult", learning_rate=0.02, num_epochs=7)
    path = tmp_path / "old.safetensors"
    emb.save(path)
    with safe_open(path, framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    saved = json.loads(meta["config"])
    saved["lr"], saved["epochs"] = saved.pop("learning_rate"), saved.pop("num_epochs")
    save_file(tensors, path, metadata={**meta, "config": json.dumps(saved)})
    loaded = KGEmbeddings.load(path, nations)
    assert (loaded.config.learning_rate, loaded.config.num_epochs) == (0.02, 7)
    assert loaded.config == emb.config
    assert torch.equal(loaded.entity_embeddings(), emb.entity_embeddings())


def test_load_without_kg_skips_the_check(nations, tmp_path):
    _embeddings(nations).save(tmp_path / "e.safetensors")
    loaded = KGEmbeddings.load(tmp_path / "e.safetensors")
    assert loaded.kg_fingerprint == nations.fingerprint
    with pytest.raises(EmbeddingFileError, match="fingerprint"):
        loaded.evaluate(load("kinships"))


def _renamed_relation(kg: KnowledgeGraph) -> KnowledgeGraph:
    keys = list(kg.relation_keys)
    keys[3] = keys[3] + "_renamed"
    return KnowledgeGraph(kg.entity_keys, keys, kg.triples, splits=kg.splits)


@pytest.mark.parametrize("other", ["kinships", "renamed"])
def test_load_with_another_kg(nations, tmp_path, other):
    path = tmp_path / "e.safetensors"
    _embeddings(nations).save(path)
    kg = load("kinships") if other == "kinships" else _renamed_relation(nations)
    with pytest.raises(EmbeddingFileError, match=r"fingerprint") as info:
        KGEmbeddings.load(path, kg)
    message = str(info.value)
    assert str(path) in message
    assert nations.fingerprint[:12] in message and kg.fingerprint[:12] in message


def test_not_safetensors(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("hello, these are not tensors\n")
    with pytest.raises(EmbeddingFileError, match=_path_pattern(path) + ".*not a readable safetensors file"):
        KGEmbeddings.load(path)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(EmbeddingFileError, match=_path_pattern(empty)):
        KGEmbeddings.load(empty)


def test_safetensors_without_kgpeft_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"node_emb.weight": torch.zeros(3, 2)}, path)
    with pytest.raises(EmbeddingFileError, match=_path_pattern(path) + ".*not a kgpeft KG embedding file"):
        KGEmbeddings.load(path)
    save_file({"node_emb.weight": torch.zeros(3, 2)}, path, metadata={"format": "something else"})
    with pytest.raises(EmbeddingFileError, match=_path_pattern(path)):
        KGEmbeddings.load(path)


def test_missing_file(tmp_path):
    path = tmp_path / "missing.safetensors"
    with pytest.raises(EmbeddingFileError, match=_path_pattern(path)):
        KGEmbeddings.load(path)
    with pytest.raises(EmbeddingFileError, match=_path_pattern(tmp_path)):  # a folder is not a file
        KGEmbeddings.load(tmp_path)


def test_tensors_that_do_not_fit_the_model(nations, tmp_path):
    path = tmp_path / "e.safetensors"
    _embeddings(nations, "distmult").save(path)
    # same metadata, a table of the wrong size
    with safe_open(path, framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors["node_emb.weight"] = tensors["node_emb.weight"][:5]
    save_file(tensors, path, metadata=meta)
    with pytest.raises(EmbeddingFileError, match=_path_pattern(path) + ".*do not fit a distmult model"):
        KGEmbeddings.load(path)


def test_newer_format_version(nations, tmp_path):
    path = tmp_path / "e.safetensors"
    _embeddings(nations).save(path)
    with safe_open(path, framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, path, metadata={**meta, "format_version": "99"})
    with pytest.raises(EmbeddingFileError, match=r"format version 99.*upgrade kgpeft"):
        KGEmbeddings.load(path)


def test_failed_save_keeps_the_previous_file(nations, tmp_path, monkeypatch):
    path = tmp_path / "e.safetensors"
    _embeddings(nations, "distmult").save(path)
    before = path.read_bytes()

    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")  # a partial write, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(embeddings_module, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        _embeddings(nations, "complex").save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["e.safetensors"]
    assert isinstance(KGEmbeddings.load(path, nations).model, type(_embeddings(nations, "distmult").model))


def test_saved_file_follows_the_umask(nations, tmp_path):
    old = os.umask(0o022)
    try:
        _embeddings(nations).save(tmp_path / "e.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "e.safetensors").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("model", ["transe", "distmult", "complex", "rotate"])
def test_reciprocal_heads_are_tails_of_the_inverse_relation(nations, model):
    emb = _embeddings(nations, model, reciprocal=True)
    num = nations.num_relations
    r, t = torch.tensor([0, 5, 54, 54]), torch.tensor([3, 0, 13, 2])
    candidates = torch.tensor([7, 1, 1])
    heads = emb.score_heads(r, t)
    assert torch.equal(heads, emb.model.score_tails(t, r + num))
    assert not torch.allclose(heads, emb.model.score_heads(r, t))  # not the direct relation's head scores
    assert torch.equal(emb.score_heads(r, t, candidates), emb.model.score_tails(t, r + num, candidates))
    assert torch.equal(emb.score_tails(t, r), emb.model.score_tails(t, r))


def test_plain_heads_use_score_heads(nations):
    emb = _embeddings(nations, "complex")
    r, t = torch.tensor([0, 5]), torch.tensor([3, 0])
    assert torch.equal(emb.score_heads(r, t), emb.model.score_heads(r, t))
    assert emb.entity_embeddings().shape == (nations.num_entities, 16)


def test_evaluate_errors_and_consistency(nations):
    emb = _embeddings(nations, "distmult")
    with pytest.raises(KeyError, match="'dev'"):
        emb.evaluate(nations, "dev")
    with pytest.raises(EmbeddingFileError, match="fingerprint"):
        emb.evaluate(_renamed_relation(nations))
    # evaluate() is evaluate_triples() with every split filtered, in any batch size
    result = emb.evaluate(nations, "test", batch_size=17)
    assert result.relation_keys == nations.relation_keys
    assert torch.equal(result.head_ranks, emb.evaluate(nations, "test").head_ranks)
    assert result.head_ranks.numel() == result.tail_ranks.numel() == nations.splits["test"].size(1)
    assert not emb.model.training  # left as it was
    emb.model.train()
    emb.evaluate(nations, "valid")
    assert emb.model.training
