"""Joint training: the fact scorer picks a memory adapter's facts per batch and learns from the task loss."""

import copy
import math

import pytest
import torch
from tiny_models import ARCHITECTURES, build_model
from torch import nn

from kgpeft.checkpoint import CheckpointError
from kgpeft.data import KnowledgeCollator, KnowledgeDataset
from kgpeft.model import KGPeftModel, get_kg_peft_model
from kgpeft.retrieval import RetrievalConfig, format_fact, memory_fact_texts
from kgpeft.selection import (
    FactScorerConfig,
    FactScorerConfigError,
    build_fact_scorer,
    fact_probabilities,
    select_facts,
    select_memory_facts,
    selected_triples,
)
from kgpeft.tasks import TaskExample
from kgpeft.tuners import KGLoraConfig
from kgpeft.tuners.layer import KnowledgeError
from kgpeft.tuners.memory import MemoryGate

QUESTIONS = [("dog", "animal"), ("cat", "pet"), ("bank", "money"), ("tree", "river")]
LLAMA = next((config, auto) for name, config, auto in ARCHITECTURES if name == "llama")


def _dataset(kg, tokenizer, framing="fact"):
    examples = [TaskExample(f"the {s}", answer=a, answer_entities=(a,)) for s, a in QUESTIONS]
    retrieval = RetrievalConfig(num_neighbors=[-1, -1], memory_facts=2, memory_framing=framing)
    return KnowledgeDataset(examples, tokenizer, kg, retrieval=retrieval, max_length=16)


def _model(kg, tokenizer, perturb=True):
    """A tiny llama with a memory adapter and a fact scorer attached; its adapter perturbed, so the gates are open."""
    base = build_model(*LLAMA)
    reference = copy.deepcopy(base)
    model = get_kg_peft_model(base, KGLoraConfig(r=4, knowledge_mode="memory"), kg, tokenizer=tokenizer)
    if perturb:
        g = torch.Generator().manual_seed(2)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=g) * 0.3)
    config = FactScorerConfig(hidden_channels=8, seed=0, training="joint")
    model.attach_fact_scorer(build_fact_scorer(kg, tokenizer, model.base_model.get_input_embeddings(), config))
    return model, reference


def _batch(dataset):
    return KnowledgeCollator(0)([dataset[i] for i in range(len(dataset))])


def _shake(scorer, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in scorer.parameters():
            p.add_(torch.randn(p.shape, generator=g))


def test_beta_enters_the_memory_read():
    torch.manual_seed(0)
    gate = MemoryGate(2)
    nn.init.normal_(gate.gate)
    q, keys, values = torch.randn(2, 3, 8), torch.randn(2, 4, 2, 4), torch.randn(2, 4, 2, 4)
    mask = torch.ones(2, 4, dtype=torch.bool)
    plain = gate(q, keys, values, mask, None)
    assert torch.allclose(gate(q, keys, values, mask, torch.zeros(2, 4)), plain), "beta = 0 is no bias"
    assert torch.allclose(gate(q, keys, values, mask, torch.full((2, 4), -1.7)), plain), "a constant beta cancels"
    bias = torch.zeros(2, 4)
    bias[:, 1] = -1e4  # slot 1 is not read, as if masked
    without = mask.clone()
    without[:, 1] = False
    assert torch.allclose(gate(q, keys, values, mask, bias), gate(q, keys, values, without, None), atol=1e-6)
    bias = torch.randn(2, 4, requires_grad=True)
    out = gate(q.requires_grad_(), keys, values, mask, bias)
    assert (out - plain).abs().max() > 1e-3, "a varying beta changes the read"
    out.pow(2).sum().backward()
    assert bias.grad is not None and bias.grad.abs().sum() > 0, "beta takes the autograd path and gets a gradient"


@pytest.mark.parametrize("framing", ["fact", "block"])
def test_joint_selection_follows_the_scorers_current_scores(framing, kg, tokenizer):
    """The picked facts are the scorer's current best, each written as the staged memory writes it: alone, or as
    its place's piece of the facts block (the first after "Facts: ", the last closing it)."""
    model, _ = _model(kg, tokenizer)
    data = _dataset(kg, tokenizer, framing)
    batch = _batch(data.with_fact_candidates())
    picks = []
    for seed in (None, 3, 4):
        if seed is not None:
            _shake(model.fact_scorer, seed)
        scorer = model.fact_scorer
        picked = selected_triples(scorer, batch["knowledge"])
        picks.append(picked)
        assert picked == select_facts(scorer, data, tokenizer, limit=2), "the staged ranking of the same scorer"
        knowledge = select_memory_facts(scorer, batch["knowledge"])
        probs = fact_probabilities(scorer, data, tokenizer, range(len(data)))
        for b, triples in enumerate(picked):
            texts = memory_fact_texts(kg, triples, framing=framing)
            assert framing == "fact" or (texts[0].startswith("Facts: ") and texts[-1].endswith(".\n"))
            for f, t in enumerate(triples):
                assert format_fact(kg, t) in texts[f]
                want = tokenizer(texts[f], add_special_tokens=False)["input_ids"]
                assert knowledge.fact_ids[b, f][knowledge.fact_mask[b, f]].tolist() == want
                assert knowledge.fact_bias[b, f].item() == pytest.approx(math.log(probs[b][t]), rel=1e-5)
    assert picks[0] != picks[1] != picks[2], "new scores, new facts: nothing was fixed beforehand"


def test_task_loss_trains_the_scorer_through_beta(kg, tokenizer):
    model, _ = _model(kg, tokenizer)
    model.train()
    batch = _batch(_dataset(kg, tokenizer).with_fact_candidates())
    model(**batch).loss.backward()
    scorer = {n: p for n, p in model.named_parameters() if n.startswith("fact_scorer.")}
    assert scorer and all(p.requires_grad for p in scorer.values()), "the scorer is a trainable part of the model"
    assert all(p.grad is not None for p in scorer.values())
    assert scorer["fact_scorer.mlp.2.weight"].grad.abs().sum() > 0
    assert scorer["fact_scorer.rgcn.convs.0.root"].grad.abs().sum() > 0, "the gradient reaches the R-GCN"


def test_candidates_without_a_scorer_or_of_another_batch_are_refused(kg, tokenizer):
    model, _ = _model(kg, tokenizer)
    model.fact_scorer = None
    batch = _batch(_dataset(kg, tokenizer).with_fact_candidates())
    with pytest.raises(KnowledgeError, match="attach_fact_scorer"):
        model(**batch)
    model, _ = _model(kg, tokenizer)
    batch["knowledge"].candidates.seed_mask = batch["knowledge"].candidates.seed_mask[:-1]
    with pytest.raises(KnowledgeError, match="one KnowledgeCollator call"):
        model(**batch)


def test_a_joint_adapter_saves_and_loads_its_scorer(kg, tokenizer, tmp_path):
    model, reference = _model(kg, tokenizer)
    _shake(model.fact_scorer, 5)
    model.eval()
    batch = _batch(_dataset(kg, tokenizer).with_fact_candidates())
    want = model(**batch).logits
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "fact_scorer.safetensors").is_file()
    loaded = KGPeftModel.from_pretrained(copy.deepcopy(reference), tmp_path / "adapter", kg, tokenizer=tokenizer)
    assert torch.equal(loaded(**batch).logits, want)
    assert selected_triples(loaded.fact_scorer, batch["knowledge"]) == selected_triples(
        model.fact_scorer, batch["knowledge"]
    )
    assert not any(p.requires_grad for p in loaded.fact_scorer.parameters()), "loaded for inference: frozen"
    out = loaded.generate(**{k: v for k, v in batch.items() if k != "labels"}, max_new_tokens=2, do_sample=False)
    assert out.shape[0] == len(QUESTIONS)
    with pytest.raises(CheckpointError, match="tokenizer="):
        KGPeftModel.from_pretrained(copy.deepcopy(reference), tmp_path / "adapter", kg)


def test_staged_batches_carry_no_bias(kg, tokenizer):
    knowledge = _batch(_dataset(kg, tokenizer))["knowledge"]
    assert knowledge.fact_ids is not None and knowledge.fact_bias is None and knowledge.candidates is None


def test_training_mode_is_checked():
    with pytest.raises(FactScorerConfigError, match="training"):
        FactScorerConfig(training="together")
