"""``memory_softmax='inline'``: the attention function itself reads ``[slots; text]`` (one attention call), and what
it computes is what the read after the attention computes where the function cannot read them (the fallback)."""

import copy
import dataclasses

import pytest
import torch
from tiny_models import ARCHITECTURES, MORE_ARCHITECTURES, build_model, make_knowledge
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaAttention

import kgpeft.tuners.memory as memory_module
from kgpeft.model import get_kg_peft_model
from kgpeft.tuners import KGLoraConfig
from kgpeft.tuners.inline_read import INLINE, install

ARCH = {a[0]: a for a in ARCHITECTURES + MORE_ARCHITECTURES}
#: Positions added at the input: the slots keep the positions they were encoded at
ABSOLUTE = {"gpt2", "bert"}
#: Each geometry the fast path must reproduce: Llama's (both attention functions), q/k norms (Qwen3, OLMo-2),
#: Gemma-2's soft cap (eager only), sliding windows (Mistral; Gemma-3's per layer type), SmolLM3's layer without
#: rotary, positions added at the input (GPT-2's fused projection, BERT's encoder)
CASES = [
    ("llama", "sdpa"),
    ("llama", "eager"),
    ("qwen3", "sdpa"),
    ("olmo2", "sdpa"),
    ("gemma2", "eager"),
    ("mistral", "sdpa"),
    ("gemma3_text", "eager"),
    ("smollm3", "sdpa"),
    ("gpt2", "sdpa"),
    ("bert", "eager"),
]


def _settings(name: str, **more) -> dict:
    positions = "none" if name in ABSOLUTE else "prefix"
    return {
        "knowledge_mode": "memory",
        "memory_positions": positions,
        "memory_softmax": "inline",
        "memory_encoder": "trained",
        "memory_facts_together": True,
        "memory_gate_opening": 0.5,
        **more,
    }


def _config(name: str, attention: str):
    _, config, auto = ARCH[name]
    config = copy.deepcopy(config)
    config._attn_implementation = attention
    for field in ("attention_dropout", "attention_probs_dropout_prob", "hidden_dropout_prob", "attn_pdrop"):
        if hasattr(config, field):
            setattr(config, field, 0.0)  # a dropped weight is drawn anew in each path
    if hasattr(config, "resid_pdrop"):
        config.resid_pdrop = config.embd_pdrop = 0.0
    if getattr(config, "sliding_window", None) is not None:
        config.sliding_window = 3  # the first fact tokens fall out of the last queries' windows
    return config, auto


def _batch(kg, causal: bool):
    """Two samples of 6 tokens, padded by 2 (on the left for a decoder): two facts for the first, none for the
    second (plain LoRA)."""
    ids = torch.tensor([[0, 0, 6, 7, 8, 10], [0, 0, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    if not causal:
        ids, mask = ids.roll(-2, 1), mask.roll(-2, 1)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if causal:
        inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    knowledge = make_knowledge(kg, [[0], []], torch.full(ids.shape, -1))
    fact_ids = torch.tensor([[[2, 4, 5], [6, 7, 0]], [[0, 0, 0], [0, 0, 0]]])
    fact_mask = torch.tensor([[[1, 1, 1], [1, 1, 0]], [[0, 0, 0], [0, 0, 0]]], dtype=torch.bool)
    return inputs, dataclasses.replace(knowledge, fact_ids=fact_ids, fact_mask=fact_mask)


def _model(name, attention, kg, tokenizer, dtype=torch.float32, perturb=True, **more):
    config, auto = _config(name, attention)
    base = build_model(config, auto).to(dtype)
    model = get_kg_peft_model(base, KGLoraConfig(r=4, **_settings(name, **more)), kg, tokenizer).to(dtype)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad and perturb:
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
        for gate in model.memory_gates["default"]:  # openings from 0.05 to 1, and a closed head
            opening = torch.linspace(0.05, 1.0, gate.gate.numel())
            opening[0] = 0.0
            gate.gate.copy_(torch.atanh(opening.clamp(max=1 - 1e-7)) / gate.scale)
    return model.train(), auto


def _step(model, inputs, knowledge):
    """The logits, and the gradients of a loss of the real tokens' logits (a padding query's attention is no one's)."""
    out = model(**inputs, knowledge=knowledge).logits
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype)
    if out.dim() == 3:  # a classifier's logits have no rows
        weights = weights * inputs["attention_mask"][..., None]
    (out * weights).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(("name", "attention"), CASES)
def test_the_attention_functions_read_is_the_read_after_the_attention(name, attention, kg, tokenizer, monkeypatch):
    """The same trained adapter, the same batch (left padding, a sample without facts, sliding windows): the read
    inside the attention function (one attention call per layer, no read after it) and the read after the attention
    (a second attention) give the same logits and the same gradients, gates and the facts' encoder included."""
    reads_after = []
    real = memory_module.shared_read
    monkeypatch.setattr(memory_module, "shared_read", lambda *a, **k: reads_after.append(1) or real(*a, **k))
    # float64 keeps the two paths' rounding apart; transformers' eager softmax runs in float32, where a padded
    # query's row of float64 least values is -inf and NaN (float32 then, to a float32 tolerance)
    dtype = torch.float64 if attention == "sdpa" else torch.float32
    tolerance = {"atol": 1e-10, "rtol": 1e-8} if attention == "sdpa" else {"atol": 2e-4, "rtol": 1e-2}
    model, _ = _model(name, attention, kg, tokenizer, dtype)
    inputs, knowledge = _batch(kg, causal=name != "bert")
    inline = [m for m in model.modules() if hasattr(m, "_kgpeft_reads")]
    assert len(inline) == len(model.sites["default"])
    assert all(m.config._attn_implementation == INLINE for m in inline)
    fast, fast_grads = _step(model, inputs, knowledge)
    assert reads_after == [], "every layer read its slots in its attention function"

    monkeypatch.setattr(memory_module, "install", lambda *args: None)
    after, _ = _model(name, attention, kg, tokenizer, dtype)
    assert not any(hasattr(m, "_kgpeft_reads") for m in after.modules())
    slow, slow_grads = _step(after, inputs, knowledge)
    assert len(reads_after) == len(model.sites["default"])
    rows = slice(2, None) if name != "bert" else slice(0, 4)  # the real tokens' rows
    torch.testing.assert_close(fast[:, rows], slow[:, rows], **tolerance)
    assert fast_grads.keys() == slow_grads.keys()
    assert any(n.startswith("memory_gates.") for n in fast_grads)
    for n in fast_grads:
        torch.testing.assert_close(fast_grads[n], slow_grads[n], **tolerance, msg=lambda m, n=n: f"{n}: {m}")


def test_a_closed_head_reads_no_slot_and_an_open_one_reads_them_as_a_prefix(kg, tokenizer):
    """A head's gate is a bias log(opening) of its slots' scores: closed (0), the head's attention is the text's
    alone; the other heads read the facts (the sample without facts is plain LoRA in every head). A fresh LoRA: the
    base model's scores, where a bias of log(1e-12) leaves a slot nothing."""
    model, _ = _model("llama", "sdpa", kg, tokenizer, perturb=False)
    inputs, knowledge = _batch(kg, causal=True)
    calls = []  # the first layer's attention outputs: without facts; the facts' own pass, then with them
    site = model.sites["default"][0]
    handle = site.output.register_forward_pre_hook(lambda m, args: calls.append(args[0]))
    with torch.no_grad():
        model.peft_model(**inputs)
        model(**inputs, knowledge=knowledge)
    handle.remove()
    text, read = (calls[i][:, 2:].unflatten(-1, (site.num_heads, site.head_dim)) for i in (0, -1))
    torch.testing.assert_close(read[:, :, 0], text[:, :, 0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(read[1], text[1], atol=1e-6, rtol=1e-6)
    assert (read[0, :, 1:] - text[0, :, 1:]).abs().amax() > 1e-3


def test_removing_the_knowledge_hooks_gives_each_attention_its_models_config_back(kg, tokenizer):
    model, _ = _model("llama", "sdpa", kg, tokenizer)
    config = model.base_model.config
    attentions = [m for m in model.modules() if hasattr(m, "_kgpeft_reads")]
    assert attentions and all(m.config is not config and m.config._attn_implementation == INLINE for m in attentions)
    assert config._attn_implementation == "sdpa", "the model's own config (and its masks) is left as it was"
    model.remove_knowledge_hooks()
    assert all(m.config is config and not hasattr(m, "_kgpeft_reads") for m in attentions)


def test_two_memory_adapters_each_read_their_own_gates(kg, tokenizer):
    """Two inline adapters share the attention function: the active one's read is the one read."""
    model, _ = _model("llama", "sdpa", kg, tokenizer)
    model.eval()
    inputs, knowledge = _batch(kg, causal=True)
    with torch.no_grad():
        first = model(**inputs, knowledge=knowledge).logits
    model.add_adapter("other", KGLoraConfig(r=4, **_settings("llama", memory_gate_opening=0.01)))
    attention = next(m for m in model.modules() if hasattr(m, "_kgpeft_reads"))
    assert len(attention._kgpeft_reads) == 2
    with torch.no_grad():
        assert torch.equal(model(**inputs, knowledge=knowledge).logits, first)
        model.set_adapter("other")
        other = model(**inputs, knowledge=knowledge).logits
        model.set_adapter("default")
        assert torch.equal(model(**inputs, knowledge=knowledge).logits, first)
    assert (other - first)[:, 2:].abs().max() > 1e-3


def test_an_attention_function_without_an_additive_mask_reads_after_the_attention():
    """Flash and flex attention take no additive mask of the slots: their layers keep their implementation."""
    attention = LlamaAttention(LlamaConfig(hidden_size=16, num_attention_heads=2), 0)
    attention.config._attn_implementation_internal = "flash_attention_2"
    assert install(attention, lambda *args: None) is None
    assert attention.config._attn_implementation == "flash_attention_2"


def test_a_decoder_generates_with_inline_memory_as_without_cache(kg, tokenizer):
    model, _ = _model("mistral", "sdpa", kg, tokenizer)
    model.eval()
    inputs, knowledge = _batch(kg, causal=True)
    inputs.pop("position_ids")
    cached = model.generate(**inputs, knowledge=knowledge, max_new_tokens=4, do_sample=False)
    uncached = model.generate(**inputs, knowledge=knowledge, max_new_tokens=4, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached) and cached.shape == (2, 10)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_fact_scorers_bias_trains_through_the_attention_functions_read(attention, kg, tokenizer, monkeypatch):
    """A jointly trained fact scorer's log-probabilities bias each fact's slots: the read inside the attention
    function (with sdpa, the biases as query and key channels, so that the mask takes no gradient) passes the
    scorer the gradient the read after the attention does."""
    dtype = torch.float64 if attention == "sdpa" else torch.float32
    tolerance = {"atol": 1e-10, "rtol": 1e-8} if attention == "sdpa" else {"atol": 2e-4, "rtol": 1e-2}
    inputs, knowledge = _batch(kg, causal=True)
    results = []
    for fallback in (False, True):
        if fallback:
            monkeypatch.setattr(memory_module, "install", lambda *args: None)
        model, _ = _model("llama", attention, kg, tokenizer, dtype)
        scores = torch.tensor([[-0.2, -1.7], [0.0, 0.0]], dtype=dtype, requires_grad=True)
        out, grads = _step(model, inputs, dataclasses.replace(knowledge, fact_bias=scores))
        results.append((out, scores.grad, grads))
    (fast, fast_scores, fast_grads), (slow, slow_scores, slow_grads) = results
    torch.testing.assert_close(fast[:, 2:], slow[:, 2:], **tolerance)
    assert fast_scores[0].abs().min() > 0, "both facts' scores take a gradient"
    torch.testing.assert_close(fast_scores, slow_scores, **tolerance)
    for n in fast_grads:
        torch.testing.assert_close(fast_grads[n], slow_grads[n], **tolerance, msg=lambda m, n=n: f"{n}: {m}")
