"""Relation-aware training (auxiliary link prediction on the R-GCN states) and `kge` node features from a file."""

import pytest
import torch
from tiny_models import ARCHITECTURES, build_model, make_inputs, make_knowledge, tiny_tokenizer

from kgpeft import KnowledgeGraph
from kgpeft.kge import EmbeddingFileError, KGEConfig, KGEmbeddings
from kgpeft.kge import build_model as build_kge
from kgpeft.model import KGPeftModel, get_kg_peft_model
from kgpeft.tuners import KGLoraConfig, KnowledgeBatch

LLAMA = next(a for a in ARCHITECTURES if a[0] == "llama")


def _model(kg, **config):
    return get_kg_peft_model(
        build_model(*LLAMA[1:]),
        KGLoraConfig(knowledge_mode="token", r=4, graph_channels=8, **config),
        kg,
        tiny_tokenizer(),
    )


def _batch(kg):
    inputs = make_inputs(batch_size=2, seq_len=6)
    knowledge = make_knowledge(kg, [[0], [4]], [[0, -1, -1, -1, -1, -1], [4, -1, -1, -1, -1, -1]])
    return inputs, knowledge


def test_relation_loss_by_hand_with_every_edge_held_out(kg):
    """holdout close to 1: every forward edge is scored; the encoder then sees no edges at all."""
    model = _model(kg, relation_loss_weight=1.0, relation_holdout=0.999, relation_negatives=3)
    _, knowledge = _batch(kg)
    graph = knowledge.graph
    g = torch.Generator().manual_seed(0)
    loss = model.relation_loss(knowledge, generator=torch.Generator().manual_seed(0))

    forward = (graph.edge_type < kg.num_relations).nonzero().view(-1)
    coin = torch.rand(forward.numel(), generator=g)
    assert (coin < 0.999).all()
    empty = graph.clone()
    empty.edge_index, empty.edge_type = graph.edge_index[:, :0], graph.edge_type[:0]
    z = model.graph_encoders["default"](empty)
    src, dst = graph.edge_index[:, forward]
    w = model.relation_decoders["default"](graph.edge_type[forward])
    sample = graph.batch[src]
    low, size = graph.ptr[sample], graph.ptr[sample + 1] - graph.ptr[sample]
    neg = low[:, None] + (torch.rand(src.numel(), 3, generator=g) * size[:, None]).long()
    scale = z.size(1) ** -0.5
    pos = (z[src] * w * z[dst]).sum(-1) * scale
    negs = ((z[src] * w)[:, None] * z[neg]).sum(-1) * scale
    negs = negs.masked_fill(neg == dst[:, None], float("-inf"))
    expected = torch.cat([torch.nn.functional.softplus(-pos), torch.nn.functional.softplus(negs).view(-1)]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # negatives are nodes of the same subgraph
    assert (graph.batch[neg] == sample[:, None]).all()


def test_relation_loss_joins_the_loss_in_training_only_and_trains_the_encoder(kg):
    model = _model(kg, relation_loss_weight=0.5)
    inputs, knowledge = _batch(kg)
    labels = inputs["input_ids"].clone()
    model.train()
    torch.manual_seed(0)
    out = model(**inputs, labels=labels, knowledge=knowledge)
    assert out.relation_loss.item() > 0
    model.eval()
    plain = model(**inputs, labels=labels, knowledge=knowledge)
    assert "relation_loss" not in plain
    model.train()
    torch.manual_seed(0)
    out = model(**inputs, labels=labels, knowledge=knowledge)
    out.loss.backward()
    decoder = model.relation_decoders["default"].weight
    assert decoder.grad is not None and decoder.grad.abs().sum() > 0
    rgcn = [p for n, p in model.graph_encoders.named_parameters() if p.requires_grad]
    assert all(p.grad is not None for p in rgcn)
    # the task loss is the rest: the same forward without the auxiliary term
    model.eval()
    assert out.loss.item() == pytest.approx(plain.loss.item() + 0.5 * out.relation_loss.item(), rel=1e-4)


def test_relation_loss_is_zero_without_edges_and_saved_with_the_adapter(kg, tmp_path):
    model = _model(kg, relation_loss_weight=0.5)
    empty = KnowledgeBatch.empty(2, 6)
    loss = model.relation_loss(empty)
    assert loss.item() == 0.0
    loss.backward()  # still connected to the graph
    with torch.no_grad():
        model.relation_decoders["default"].weight.mul_(1.5)
    model.save_pretrained(tmp_path / "a")
    loaded = KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "a", kg, tokenizer=tiny_tokenizer())
    assert torch.equal(loaded.relation_decoders["default"].weight, model.relation_decoders["default"].weight)
    assert "relation_decoders.default.weight" in model.knowledge_state_dict()
    assert "relation_decoders.default.weight" not in _model(kg).knowledge_state_dict()


def _kge_file(kg, path):
    torch.manual_seed(0)
    model = build_kge("complex", kg.num_entities, kg.num_relations, 6)
    KGEmbeddings(model, KGEConfig(model="complex", hidden_channels=6), kg.num_relations, kg.fingerprint).save(path)
    return model.entity_embeddings()


def test_kge_node_features_from_an_embedding_file(kg, tmp_path):
    vectors = _kge_file(kg, tmp_path / "e.safetensors")
    model = _model(kg, node_features="kge", kge_path=str(tmp_path / "e.safetensors"))
    assert torch.equal(model.graph_encoders["default"].features.embeddings, vectors)
    model.save_pretrained(tmp_path / "a")  # the config keeps the path; the frozen vectors are not copied
    loaded = KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "a", kg, tokenizer=tiny_tokenizer())
    inputs, knowledge = _batch(kg)
    assert torch.equal(loaded(**inputs, knowledge=knowledge).logits, model.eval()(**inputs, knowledge=knowledge).logits)


def test_kge_node_features_refuse_another_kgs_embeddings(kg, tmp_path):
    _kge_file(kg, tmp_path / "e.safetensors")
    other = KnowledgeGraph(kg.entity_keys, ["is_a", "near", "owns"], kg.triples, labels=kg.labels)
    with pytest.raises(EmbeddingFileError, match=r"e\.safetensors were trained on a KG with fingerprint"):
        _model(other, node_features="kge", kge_path=str(tmp_path / "e.safetensors"))
    with pytest.raises(ValueError, match="set `kge_path`"):
        _model(kg, node_features="kge")
