"""The KG-LoRA checks on the real packaged models, with WordNet and real linking (slower)."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from kgpeft import KnowledgeGraph
from kgpeft.datasets import load
from kgpeft.linking import EntityLinker, align_batch
from kgpeft.model import KGPeftModel, get_kg_peft_model
from kgpeft.pretrained import load_packaged_model
from kgpeft.retrieval import SubgraphRetriever, batch_node_index
from kgpeft.tuners import KGLoraConfig, KnowledgeBatch

pytestmark = pytest.mark.slow

TEXTS = [
    "The dog chased a cat across the river bank.",
    "It was what it was.",  # nothing to link: this sample must get plain LoRA
]
QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]


def _packaged(name, **kwargs):
    try:
        return load_packaged_model(name, **kwargs)
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def wordnet():
    return load("wordnet")


@pytest.fixture(scope="module")
def smollm2():
    model, tokenizer = _packaged("SmolLM2-135M-Instruct")
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def minilm():
    model, tokenizer = _packaged("all-MiniLM-L6-v2")
    return model.eval(), tokenizer


def _batch(kg, tokenizer, texts, padding_side="right"):
    tokenizer.padding_side = padding_side
    enc = tokenizer(texts, return_tensors="pt", padding=True, return_offsets_mapping=True)
    offsets = enc.pop("offset_mapping")
    linker = EntityLinker(kg, max_candidates=1)
    mentions = linker.link_batch(texts)
    token_entity = align_batch(mentions, offsets)  # (B, T)
    graph = SubgraphRetriever(kg, num_neighbors=[8, 4], max_nodes=32)([[m.entity for m in ms] for ms in mentions])
    index = batch_node_index(graph, torch.arange(len(texts))[:, None], token_entity)
    assert (index[0] >= 0).sum() >= 4 and (index[1] < 0).all(), "sample 0 is linked, sample 1 is not"
    return dict(enc), KnowledgeBatch(graph, index)


def _out(outputs):
    return outputs.logits if hasattr(outputs, "logits") else outputs.last_hidden_state


def _check_model(base, tokenizer, kg, tmp_path, generate):
    inputs, knowledge = _batch(kg, tokenizer, TEXTS)
    want_base = _out(base(**inputs))
    for mode in ("token", "cross", "prefix"):
        reference = copy.deepcopy(base)
        model = get_kg_peft_model(copy.deepcopy(base), KGLoraConfig(r=8, knowledge_mode=mode), kg, tokenizer)
        got = _out(model(**inputs, knowledge=knowledge))
        assert (got - want_base).abs().max() <= 1e-6, f"{mode}: a fresh adapter is the base model"
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=g) * 0.02)
        model.train()
        _out(model(**inputs, knowledge=knowledge)).pow(2).mean().backward()
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert {n for n, p in model.named_parameters() if p.grad is not None} == trainable, mode
        assert all("lora_" in n or not n.startswith("peft_model.") for n in trainable), mode
        model.eval()
        got = _out(model(**inputs, knowledge=knowledge))
        plain = _out(model.peft_model(**inputs))
        assert (got[1] - plain[1]).abs().max() <= 1e-5, f"{mode}: the unlinked sample gets plain LoRA"
        assert (got[0] - plain[0]).abs().max() > 1e-3, f"{mode}: the linked sample sees the graph"
        model.save_pretrained(tmp_path / mode)
        loaded = KGPeftModel.from_pretrained(reference, tmp_path / mode, kg, tokenizer=tokenizer)
        assert torch.equal(_out(loaded(**inputs, knowledge=knowledge)), got), f"{mode}: exact round trip"
        if generate:
            prompts, prompt_knowledge = _batch(kg, tokenizer, TEXTS, padding_side="left")
            kwargs = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
            out = model.generate(**prompts, knowledge=prompt_knowledge, **kwargs)
            again = model.generate(**prompts, knowledge=prompt_knowledge, use_cache=False, **kwargs)
            assert out.shape == (2, prompts["input_ids"].size(1) + 4) and torch.equal(out, again), mode


def test_smollm2(smollm2, wordnet, tmp_path):
    _check_model(*smollm2, wordnet, tmp_path, generate=True)


def test_minilm(minilm, wordnet, tmp_path):
    _check_model(*minilm, wordnet, tmp_path, generate=False)


def _size(folder):
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_checkpoint_size_does_not_grow_with_the_kg(smollm2, wordnet, tmp_path):
    base, tokenizer = smollm2
    plain = get_peft_model(copy.deepcopy(base), LoraConfig(r=8, target_modules=QKVO))
    plain.save_pretrained(tmp_path / "peft")
    keep = torch.arange(135)
    sub = wordnet.triples[:, (wordnet.triples[0] < 135) & (wordnet.triples[2] < 135)]
    small = KnowledgeGraph(
        [wordnet.entity_keys[i] for i in keep], wordnet.relation_keys, sub, labels=[wordnet.labels[i] for i in keep]
    )
    sizes = {}
    for name, kg in [("small", small), ("wordnet", wordnet)]:
        model = get_kg_peft_model(
            copy.deepcopy(base), KGLoraConfig(knowledge_mode="token", r=8, target_modules=QKVO), kg, tokenizer
        )
        model.save_pretrained(tmp_path / name)
        sizes[name] = _size(tmp_path / name)
        weights = (tmp_path / name / "kgpeft_model.safetensors").stat().st_size
        print(f"{name} ({kg.num_entities} entities): checkpoint {sizes[name]:,} B, kgpeft weights {weights:,} B")
    print(f"plain peft LoRA checkpoint: {_size(tmp_path / 'peft'):,} B")
    assert sizes["wordnet"] <= _size(tmp_path / "peft") + 2 * 1024 * 1024
    for file in ("kgpeft_model.safetensors", "adapter_model.safetensors"):
        assert (tmp_path / "small" / file).stat().st_size == (tmp_path / "wordnet" / file).stat().st_size
    assert abs(sizes["small"] - sizes["wordnet"]) < 64, "only the entity count's digits in the JSON differ"
