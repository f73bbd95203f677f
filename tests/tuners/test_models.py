"""One parametrised suite over many tiny architectures and every knowledge mode."""

import copy

import pytest
import torch
from peft import PeftModel
from tiny_models import ARCHITECTURES, DEBERTA, build_model, make_inputs, make_knowledge
from transformers import AutoModelForSequenceClassification, DebertaV2Config

from kgpeft.model import KGPeftModel, get_kg_peft_model
from kgpeft.tuners import KGLoraConfig, KnowledgeBatch

MODES = ["token", "cross", "prefix"]
CASES = [pytest.param(name, config, auto, id=name) for name, config, auto in ARCHITECTURES]


def _outputs(model, inputs, **kwargs):
    out = model(**inputs, **kwargs)
    return out.logits


def _seq2seq(config) -> bool:
    return bool(getattr(config, "is_encoder_decoder", False))


def _inputs(config):
    inputs = make_inputs()
    if _seq2seq(config):
        inputs["decoder_input_ids"] = inputs["input_ids"][:, :3]
    return inputs


def _knowledge(kg, inputs):
    # sample 0 mentions "dog" (token 1) and "bank" (token 3); sample 1 links nothing and has no subgraph
    t = inputs["input_ids"].size(1)
    tokens = torch.full((2, t), -1)
    tokens[0, 1], tokens[0, 3] = 0, 4
    return make_knowledge(kg, [[0, 4], []], tokens)


def _wrap(name, config, auto, kg, tokenizer, mode, **kwargs):
    base = build_model(config, auto)
    reference = copy.deepcopy(base)
    kg_config = KGLoraConfig(r=4, knowledge_mode=mode, graph_channels=16, num_prefix_tokens=2, **kwargs)
    model = get_kg_peft_model(base, kg_config, kg, tokenizer=tokenizer)
    return model, reference


def _perturb(model: KGPeftModel):
    """Give every trainable weight a non-trivial value (lora_B starts at zero)."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize(("name", "config", "auto"), CASES)
@pytest.mark.parametrize("mode", MODES)
def test_fresh_model_equals_base(name, config, auto, kg, tokenizer, mode):
    model, reference = _wrap(name, config, auto, kg, tokenizer, mode)
    inputs = _inputs(config)
    want = _outputs(reference, inputs)
    for knowledge in (_knowledge(kg, inputs), KnowledgeBatch.empty(2, inputs["input_ids"].size(1))):
        got = _outputs(model, inputs, knowledge=knowledge)
        assert (got - want).abs().max() <= 1e-6


@pytest.mark.parametrize(("name", "config", "auto"), CASES)
@pytest.mark.parametrize("mode", MODES)
def test_sample_without_entities_is_plain_lora(name, config, auto, kg, tokenizer, mode):
    model, _ = _wrap(name, config, auto, kg, tokenizer, mode)
    _perturb(model)
    inputs = _inputs(config)
    got = _outputs(model, inputs, knowledge=_knowledge(kg, inputs))
    plain = model.peft_model(**inputs).logits  # no knowledge context: exactly peft's LoRA
    assert (got[1] - plain[1]).abs().max() <= 1e-6, "sample 1 links nothing: plain LoRA"
    assert (got[0] - plain[0]).abs().max() > 1e-4, "sample 0 is linked: the graph changes its output"


@pytest.mark.parametrize(("name", "config", "auto"), CASES)
@pytest.mark.parametrize("mode", MODES)
def test_backward_reaches_only_trainable_parts(name, config, auto, kg, tokenizer, mode):
    model, _ = _wrap(name, config, auto, kg, tokenizer, mode)
    model.train()
    _perturb(model)
    inputs = _inputs(config)
    out = model(**inputs, knowledge=_knowledge(kg, inputs))
    out.logits.float().pow(2).mean().backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable
    assert all(("lora_" in n) or not n.startswith("peft_model.") for n in trainable), "base model stays frozen"
    assert any(n.startswith("graph_encoders.") for n in trainable)
    encoder_grad = sum(p.grad.abs().sum() for n, p in model.named_parameters() if n.startswith("graph_encoders."))
    assert encoder_grad > 0, "the loss reaches the graph encoder"


@pytest.mark.parametrize(("name", "config", "auto"), CASES)
@pytest.mark.parametrize("mode", MODES)
def test_save_load_round_trip(name, config, auto, kg, tokenizer, mode, tmp_path):
    model, reference = _wrap(name, config, auto, kg, tokenizer, mode)
    _perturb(model)
    model.eval()
    inputs = _inputs(config)
    knowledge = _knowledge(kg, inputs)
    want = _outputs(model, inputs, knowledge=knowledge)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = KGPeftModel.from_pretrained(reference, tmp_path / "ckpt", kg, tokenizer=model.tokenizer)
    assert torch.equal(_outputs(loaded, inputs, knowledge=knowledge), want)


@pytest.mark.parametrize(
    ("name", "config", "auto"), [c for c in CASES if c.values[2].__name__ != "AutoModelForSequenceClassification"]
)
@pytest.mark.parametrize("mode", MODES)
def test_generate_with_knowledge(name, config, auto, kg, tokenizer, mode):
    model, _ = _wrap(name, config, auto, kg, tokenizer, mode)
    _perturb(model)
    inputs = make_inputs()
    knowledge = _knowledge(kg, inputs)
    out = model.generate(**inputs, knowledge=knowledge, max_new_tokens=3, do_sample=False)
    assert out.size(0) == 2
    # the KV-cache path gives the same greedy tokens as recomputing the full sequence each step
    no_cache = model.generate(**inputs, knowledge=knowledge, max_new_tokens=3, do_sample=False, use_cache=False)
    assert torch.equal(out, no_cache)
    assert model.context.state is None, "the knowledge context is cleared after generate"


def test_plain_peft_loads_the_lora_part(kg, tokenizer, tmp_path):
    name, config, auto = ARCHITECTURES[1]
    model, reference = _wrap(name, config, auto, kg, tokenizer, "token")
    _perturb(model)
    model.eval()
    model.save_pretrained(tmp_path / "ckpt")
    inputs = make_inputs()
    plain = PeftModel.from_pretrained(reference, tmp_path / "ckpt")
    assert torch.equal(plain(**inputs).logits, model(**inputs, knowledge=KnowledgeBatch.empty(2, 6)).logits)


@pytest.mark.parametrize("share_att_key", [True, False])
@pytest.mark.parametrize("mode", ["token", "cross"])
def test_deberta_relative_positions_get_lora_but_no_knowledge(kg, tokenizer, mode, share_att_key):
    # DeBERTa passes its relative-position embeddings through query_proj/key_proj (or pos_*_proj):
    # the knowledge path must see only the token stream, and LoRA still trains on every call
    config = DebertaV2Config(**{**DEBERTA, "share_att_key": share_att_key})
    model, _ = _wrap("deberta_v2", config, AutoModelForSequenceClassification, kg, tokenizer, mode)
    _perturb(model)
    seen = []
    for fusion in model.fusions["default"].values():
        fusion.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[:2])))
    inputs = _inputs(config)
    model.train()
    out = model(**inputs, knowledge=_knowledge(kg, inputs))
    assert seen and set(seen) == {(2, 6)}, "the knowledge path reads the tokens only"
    assert not any("pos_" in name for name in model.fusions["default"]), "position projections get no fusion"
    out.logits.pow(2).mean().backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n, p in model.named_parameters() if p.grad is not None} == trainable
    if not share_att_key:
        assert any("pos_key_proj.lora_A" in n for n in trainable), "LoRA adapts the position projections"
    model.eval()
    got = model(**inputs, knowledge=_knowledge(kg, inputs)).logits
    plain = model.peft_model(**inputs).logits
    assert (got[1] - plain[1]).abs().max() <= 1e-6, "sample 1 links nothing: plain LoRA"
    assert (got[0] - plain[0]).abs().max() > 1e-4, "sample 0 is linked: the graph changes its output"
    with pytest.warns(UserWarning, match="merges only the plain LoRA part"):
        merged = model.merge_and_unload()
    assert not any("disentangled_attention_bias" in vars(m) for m in merged.modules()), "the base model is restored"
