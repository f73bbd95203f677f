"""`knowledge_mode="memory"`: selected facts as key/value slots, on every architecture that has q/k/v/o."""

import copy
import dataclasses
import functools

import pytest
import torch
import torch.nn.functional as F
from tiny_models import ARCHITECTURES, MORE_ARCHITECTURES, build_model, make_inputs, make_knowledge
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

import kgpeft.tuners.memory as memory_module
from kgpeft.model import KGPeftModel, get_kg_peft_model
from kgpeft.tuners import KGLoraConfig
from kgpeft.tuners.config import KGLoraConfigError
from kgpeft.tuners.memory import FactMemoryError, MemoryGate, attention_layout

#: Decoders with a rotary embedding, their q/k/v separate or fused: every read
MEMORY_ARCHS = {
    "llama",
    "qwen2",
    "mistral",
    "gemma",
    "phi",
    "phi3",
    "falcon",
    "falcon_mha",
    "falcon_gqa",
    "gpt_neox",
} | {a[0] for a in MORE_ARCHITECTURES if a[0] not in ("electra", "whisper")}
#: Encoders and decoders without rotary embedding (positions added to the input, or ALiBi): the default read
#: (slots without positions, in their own softmax)
NO_ROTARY = {"bert", "roberta", "distilbert", "electra", "deberta_v2", "opt", "gpt2", "gpt_bigcode", "bloom"}
NO_ROTARY |= {"gpt_bigcode_mha", "t5", "bart"}
#: ... of which those whose positions are added at the input: the shared reads too, their slots in the text's
#: softmax as they were encoded (memory_positions='none'); BART's encoder takes no position ids (no 'together')
ABSOLUTE = {"bert", "roberta", "distilbert", "electra", "opt", "gpt2", "gpt_bigcode", "gpt_bigcode_mha", "bart"}
ARCH = {a[0]: a for a in ARCHITECTURES + MORE_ARCHITECTURES}
ABSOLUTE_TYPES = {ARCH[n][1].model_type for n in ABSOLUTE}
#: The decoders whose own attention the shared read must reproduce: Llama's, and each other geometry (q/k norms
#: per head, over all heads and one module per head, Gemma's and Granite's scales, Gemma-2's soft cap, Gemma-3's
#: rotary per layer type, GPT-J's and Cohere's pairs, Phi's and StableLM's partial rotary, OLMo's clipping,
#: SmolLM3's layer without rotary)
GEOMETRIES = ["llama", "qwen2", "gemma", "phi", *sorted(MEMORY_ARCHS - {"llama", "qwen2", "gemma", "phi", "mistral"})]
READS = {
    "own": {},
    "prefix": {"memory_positions": "prefix"},
    "shared": {"memory_positions": "prefix", "memory_softmax": "shared"},
    "adapter": {"memory_positions": "prefix", "memory_softmax": "shared", "memory_encoder": "adapter"},
    "trained": {"memory_positions": "prefix", "memory_softmax": "shared", "memory_encoder": "trained"},
    "together": {
        "memory_positions": "prefix",
        "memory_softmax": "shared",
        "memory_encoder": "trained",
        "memory_facts_together": True,
    },
    # the joint softmax computed by the attention function itself (gates half open: an opening of 0 is refused)
    "inline": {"memory_positions": "prefix", "memory_softmax": "inline", "memory_gate_opening": 0.5},
    # the main job's design
    "main": {
        "memory_positions": "prefix",
        "memory_softmax": "inline",
        "memory_encoder": "trained",
        "memory_facts_together": True,
        "memory_gate_opening": 0.5,
    },
}
#: The reads in the text's softmax
SHARED = ("shared", "inline")
BART_TOGETHER = {("bart", "together"), ("bart", "main")}  # BART's encoder takes no position ids
CASES = [
    pytest.param(n, c, a, read, id=f"{n}-{read}")
    for n, c, a in ARCH.values()
    for read in READS
    if n in MEMORY_ARCHS
    or (n in NO_ROTARY and read == "own")
    or (n in ABSOLUTE and READS[read].get("memory_softmax") in SHARED and (n, read) not in BART_TOGETHER)
]


def _settings(config, read: str) -> dict:
    """The adapter settings of ``read`` for ``config``'s model: a model whose positions are added at the input reads
    its slots where they were encoded (memory_positions='none'), having no rotary embedding to place them with."""
    settings = READS[read]
    if config.model_type in ABSOLUTE_TYPES and settings.get("memory_softmax") in SHARED:
        return {**settings, "memory_positions": "none"}
    return settings


def _facts(knowledge, with_facts=(True, False)):
    """Two facts of 3 tokens for sample 0; none for sample 1 (its fact rows are all padding)."""
    ids = torch.tensor([[[2, 4, 5], [6, 7, 0]], [[0, 0, 0], [0, 0, 0]]])
    mask = torch.tensor([[[1, 1, 1], [1, 1, 0]], [[0, 0, 0], [0, 0, 0]]], dtype=torch.bool)
    for b, keep in enumerate(with_facts):
        mask[b] &= keep
    return dataclasses.replace(knowledge, fact_ids=ids, fact_mask=mask)


def _wrap(config, auto, kg, tokenizer, read="own"):
    base = build_model(config, auto)
    reference = copy.deepcopy(base)
    adapter = KGLoraConfig(r=4, knowledge_mode="memory", **_settings(config, read))
    model = get_kg_peft_model(base, adapter, kg, tokenizer=tokenizer)
    return model, reference


def _knowledge(kg, inputs):
    tokens = torch.full(inputs["input_ids"].shape, -1)
    return _facts(make_knowledge(kg, [[0], []], tokens))


def _inputs(auto):
    """:func:`make_inputs`, with the decoder's first three tokens for an encoder-decoder."""
    inputs = make_inputs()
    if auto is AutoModelForSeq2SeqLM:
        inputs["decoder_input_ids"] = inputs["input_ids"][:, :3]
    return inputs


def _perturb(model: KGPeftModel):
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize(("name", "config", "auto", "read"), CASES)
def test_fresh_memory_adapter_equals_base(name, config, auto, read, kg, tokenizer):
    model, reference = _wrap(config, auto, kg, tokenizer, read)
    inputs = _inputs(auto)
    got = model(**inputs, knowledge=_knowledge(kg, inputs)).logits
    want = reference(**inputs).logits
    assert not model.graph_encoders, "memory mode has no graph encoder"
    if READS[read].get("memory_gate_opening", 0) > 0:  # gates open: a fresh adapter reads its facts as text
        assert torch.allclose(got[1], want[1], atol=1e-6), "sample 1 has no facts, and lora_B starts at zero"
        # the last hidden states: a tiny random classifier's logits barely move
        hidden = model(**inputs, knowledge=_knowledge(kg, inputs), output_hidden_states=True)
        hidden = (hidden.decoder_hidden_states if auto is AutoModelForSeq2SeqLM else hidden.hidden_states)[-1]
        plain = reference(**inputs, output_hidden_states=True)
        plain = (plain.decoder_hidden_states if auto is AutoModelForSeq2SeqLM else plain.hidden_states)[-1]
        assert (hidden[0] - plain[0]).abs().max() > 1e-5, "sample 0 reads its facts through the open gates"
        return
    assert torch.allclose(got, want, atol=1e-6), "gates and lora_B start at zero"


@pytest.mark.parametrize(("name", "config", "auto", "read"), CASES)
def test_sample_without_facts_is_plain_lora_and_facts_matter(name, config, auto, read, kg, tokenizer):
    model, _ = _wrap(config, auto, kg, tokenizer, read)
    _perturb(model)
    inputs = _inputs(auto)
    knowledge = _knowledge(kg, inputs)
    got = model(**inputs, knowledge=knowledge).logits
    plain = model.peft_model(**inputs).logits
    assert torch.allclose(got[1], plain[1], atol=1e-6), "sample 1 has no facts: plain LoRA"
    # a tiny random classifier's logits are ~1e-2 or less (a language model's ~0.3): a share of them
    floor = 1e-3 if auto is AutoModelForCausalLM else 2e-3 * plain[0].abs().max()
    assert (got[0] - plain[0]).abs().max() > floor, "sample 0 reads its facts"
    other = dataclasses.replace(knowledge, fact_ids=knowledge.fact_ids.flip(1), fact_mask=knowledge.fact_mask.flip(1))
    flipped = model(**inputs, knowledge=other).logits
    settings = _settings(config, read)
    if settings.get("memory_positions", "none") == "none" and not settings.get("memory_facts_together"):
        assert torch.allclose(flipped, got, atol=1e-5), "slots have no order"
    else:
        assert (flipped[0] - got[0]).abs().max() > 1e-4, "slots placed as a prefix or encoded together: order read"


@pytest.mark.parametrize(("name", "config", "auto", "read"), CASES)
def test_memory_gradients_reach_gates_and_lora_only(name, config, auto, read, kg, tokenizer):
    model, _ = _wrap(config, auto, kg, tokenizer, read)
    model.train()
    _perturb(model)
    inputs = _inputs(auto)
    model(**inputs, knowledge=_knowledge(kg, inputs)).logits.pow(2).mean().backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable
    gates = [p for n, p in model.named_parameters() if n.startswith("memory_gates.")]
    assert gates and all(p.grad.abs().sum() > 0 for p in gates)


@pytest.mark.parametrize(("name", "config", "auto", "read"), CASES)
def test_memory_save_load_and_generate(name, config, auto, read, kg, tokenizer, tmp_path):
    model, reference = _wrap(config, auto, kg, tokenizer, read)
    _perturb(model)
    model.eval()
    inputs = _inputs(auto)
    knowledge = _knowledge(kg, inputs)
    with torch.no_grad():  # a trainable gate's bias in the mask takes the math kernel of attention, not the fused
        want = model(**inputs, knowledge=knowledge).logits
    model.save_pretrained(tmp_path / "ckpt")
    loaded = KGPeftModel.from_pretrained(reference, tmp_path / "ckpt", kg, tokenizer=tokenizer)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs, knowledge=knowledge).logits, want)
    if auto is AutoModelForSequenceClassification:  # an encoder's classifier generates nothing
        return
    out = loaded.generate(**inputs, knowledge=knowledge, max_new_tokens=3, do_sample=False)
    no_cache = loaded.generate(**inputs, knowledge=knowledge, max_new_tokens=3, do_sample=False, use_cache=False)
    assert torch.equal(out, no_cache)
    assert loaded.context.state is None


@pytest.mark.parametrize("read", list(READS))
def test_memory_survives_gradient_checkpointing(kg, tokenizer, read):
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "llama")
    model, _ = _wrap(config, auto, kg, tokenizer, read)
    _perturb(model)
    model.train()
    inputs = make_inputs()
    knowledge = _knowledge(kg, inputs)

    def grads():
        model.zero_grad()
        model(**inputs, knowledge=knowledge).logits.pow(2).mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.gradient_checkpointing_enable()
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys()
    assert all(torch.allclose(plain[n], checkpointed[n], atol=1e-6) for n in plain)


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("gpt2", {"memory_positions": "prefix"}, "rotary position embedding, and GPT2LMHeadModel has none"),
        ("bloom", {"memory_positions": "prefix"}, "BloomForCausalLM places its keys with ALiBi"),
        ("falcon", {"memory_positions": "prefix"}, None),  # rotary: accepted
        ("bart", {"memory_positions": "prefix"}, "BartForConditionalGeneration has none"),
        ("whisper", {}, "WhisperForConditionalGeneration's encoder over their tokens, and its encoder reads no token"),
        ("deberta_v2", {"memory_positions": "prefix"}, "DebertaV2ForSequenceClassification has none"),
        (
            "bert",
            {"memory_positions": "prefix"},
            r"rotary position embedding, and BertForSequenceClassification has none",
        ),
        ("electra", {"memory_positions": "prefix"}, "ElectraForSequenceClassification has none"),
        ("t5", {"memory_facts_together": True}, "T5Stack takes no `position_ids`"),
        ("llama", {"memory_softmax": "shared"}, "LlamaForCausalLM places its text keys with a rotary embedding; set "),
        ("bloom", {"memory_softmax": "shared"}, "BloomForCausalLM adds ALiBi"),
        ("t5", {"memory_softmax": "shared"}, r"T5ForConditionalGeneration adds a relative-position bias \(T5's\)"),
        ("deberta_v2", {"memory_softmax": "shared"}, r"adds relative-position terms \(DeBERTa's\)"),
        ("bart", {"memory_positions": "prefix", "memory_softmax": "shared"}, "BartForConditionalGeneration has none"),
    ],
)
def test_refusals_name_what_is_missing(name, settings, message, kg, tokenizer):
    """Each refusal says what the model lacks, not "no separate projections" where it has them (a refused model is
    left as it was: tests/tuners/test_model.py)."""
    config = copy.deepcopy(ARCH[name][1])
    if message is None:  # Falcon's ALiBi variant is refused, its rotary one accepted
        get_kg_peft_model(build_model(config, ARCH[name][2]), KGLoraConfig(knowledge_mode="memory", **settings), kg)
        config.alibi, message = True, "FalconForCausalLM places its keys with ALiBi"
    with pytest.raises(FactMemoryError, match=message):
        get_kg_peft_model(build_model(config, ARCH[name][2]), KGLoraConfig(knowledge_mode="memory", **settings), kg)


def test_memory_mode_refuses_the_relation_loss():
    with pytest.raises(KGLoraConfigError, match="relation_loss_weight"):
        KGLoraConfig(knowledge_mode="memory", relation_loss_weight=0.5)


def test_gate_reads_only_real_slots():
    gate = MemoryGate(num_heads=2)
    with torch.no_grad():
        gate.gate.fill_(1.0)
    q = torch.randn(1, 3, 2 * 4)
    keys, values = torch.randn(1, 5, 1, 4), torch.randn(1, 5, 1, 4)
    mask = torch.tensor([[True, True, False, False, False]])
    out = gate(q, keys, values, mask, None)
    changed = values.clone()
    changed[:, 2:] = 100.0  # padding slots: never read
    assert torch.allclose(gate(q, keys, changed, mask, None), out)
    assert torch.equal(gate(q, keys, values, torch.zeros_like(mask), None), torch.zeros_like(out))


def test_attention_layout_of_llama():
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "llama")
    sites = attention_layout(build_model(config, auto))
    assert len(sites) == config.num_hidden_layers
    assert (sites[0].num_heads, sites[0].num_kv_heads, sites[0].head_dim) == (4, 2, 8)


def _keep(saved: list, tensor: torch.Tensor) -> torch.Tensor:
    saved.append(tensor)
    return tensor


def _plain_read(gate: MemoryGate, q, keys, values, mask, bias):
    """The gate's read through plain autograd (the path ``kgpeft.explain`` records on)."""
    gate.record = []
    try:
        return gate(q, keys, values, mask, bias)
    finally:
        gate.record = None


@pytest.mark.parametrize("with_bias", [False, True])
def test_gate_read_is_bit_identical_to_autograd_and_keeps_only_the_softmax(with_bias):
    g = torch.Generator().manual_seed(0)
    gate = MemoryGate(num_heads=4, scale=3.0)
    with torch.no_grad():
        gate.gate.copy_(torch.randn(4, generator=g))
    b, t, m, kv, d = 3, 5, 6, 2, 8
    keys, values = torch.randn(b, m, kv, d, generator=g), torch.randn(b, m, kv, d, generator=g)
    mask = torch.rand(b, m, generator=g) > 0.3
    mask[2] = False  # a sample without slots
    bias = torch.randn(b, m, generator=g) if with_bias else None
    q0 = torch.randn(b, t, 4 * d, generator=g)
    grad_out = torch.randn(b, t, 4 * d, generator=g)
    results = []
    for read in (gate, lambda *a: _plain_read(gate, *a)):
        q = q0.clone().requires_grad_()
        saved: list[torch.Tensor] = []
        with torch.autograd.graph.saved_tensors_hooks(functools.partial(_keep, saved), lambda x: x):
            out = read(q, keys, values, mask, bias)
        gate.gate.grad = None
        out.backward(grad_out)
        floats = {x.untyped_storage().data_ptr(): x.numel() for x in saved if x.is_floating_point()}
        results.append((out, q.grad, gate.gate.grad.clone(), sum(floats.values())))
    (out, grad_q, grad_gate, kept), (ref, ref_q, ref_gate, ref_kept) = results
    assert torch.equal(out, ref)
    assert torch.equal(grad_q, ref_q)
    assert torch.equal(grad_gate, ref_gate)
    assert grad_q[2].abs().sum() == 0 and grad_q[0].abs().sum() > 0
    # kept for backward: the softmax (B, H, T, M) and the slots, not the (B, H, T, d) read nor the query
    assert kept < ref_kept - b * 4 * t * d


FACT, PROMPT = torch.tensor([[2, 4, 5, 9, 3]]), torch.tensor([[6, 7, 8, 10]])


def _text_attentions(config, auto):
    """The eager ``config`` copy and the base model's outputs, attention weights too, on the fact before the prompt."""
    config = copy.deepcopy(config)
    config._attn_implementation = "eager"  # to return attention weights
    inputs = torch.cat([FACT, PROMPT], 1)
    return config, build_model(config, auto)(
        input_ids=inputs, attention_mask=torch.ones_like(inputs), output_attentions=True
    )


def _one_fact(kg, length: int):
    """Knowledge for a row of ``length`` tokens whose one fact is :data:`FACT`."""
    knowledge = make_knowledge(kg, [[0]], torch.full((1, length), -1))
    return dataclasses.replace(knowledge, fact_ids=FACT[:, None], fact_mask=torch.ones(1, 1, 5, dtype=torch.bool))


def test_prefix_slots_meet_the_queries_as_the_fact_text_before_the_prompt(kg, tokenizer):
    """memory_positions='prefix': in the first layer (whose inputs are the embeddings in both runs), each head's
    attention over the slots is the base model's attention from the prompt to the same fact written just before
    it, renormalised over the fact's tokens; with 'none' it is not."""
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "llama")
    config = copy.deepcopy(config)
    config._attn_implementation = "eager"  # to return attention weights
    fact, prompt = torch.tensor([[2, 4, 5, 9, 3]]), torch.tensor([[6, 7, 8, 10]])
    text = build_model(config, auto)(
        input_ids=torch.cat([fact, prompt], 1),
        attention_mask=torch.ones(1, 9, dtype=torch.long),
        output_attentions=True,
    )
    to_fact = text.attentions[0][0, :, 5:, :5]  # (H, prompt, fact)
    want = (to_fact / to_fact.sum(-1, keepdim=True)).mean(0)
    got = {}
    for read in ("own", "prefix"):
        model, _ = _wrap(config, auto, kg, tokenizer, read)
        gates = model.memory_gates["default"]
        with torch.no_grad():
            for gate in gates:
                gate.gate.fill_(0.05)  # every head's gate equally open; LoRA still zero: the base model's queries
            gates[0].record = []
        inputs = {"input_ids": prompt, "attention_mask": torch.ones_like(prompt)}
        knowledge = make_knowledge(kg, [[0]], torch.full(prompt.shape, -1))
        knowledge = dataclasses.replace(
            knowledge, fact_ids=fact[:, None], fact_mask=torch.ones(1, 1, 5, dtype=torch.bool)
        )
        model(**inputs, knowledge=knowledge)
        got[read] = gates[0].record[0][0] / torch.tanh(torch.tensor(gates[0].scale * 0.05))  # (prompt, slots)
    torch.testing.assert_close(got["prefix"], want, atol=1e-5, rtol=1e-4)
    assert (got["own"] - want).abs().max() > 1e-3


@pytest.mark.parametrize("name", GEOMETRIES)
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("read", SHARED)
def test_open_shared_memory_of_one_fact_is_the_fact_written_before_the_prompt(
    name, attention, padded, read, kg, tokenizer
):
    """memory_softmax='shared' with every gate open and LoRA at zero: the prompt's logits are the base model's
    with the fact's text before the prompt, in every layer, not only the first (the slots are the fact's own
    keys and values, at a prefix's positions, in the text's softmax); with generation's left padding too."""
    if (name, attention) == ("gemma2", "sdpa"):
        pytest.skip("transformers runs Gemma-2's soft-capped attention eagerly only")
    _, config, auto = ARCH[name]
    _check_open_shared_memory_is_the_text(copy.deepcopy(config), auto, attention, padded, kg, tokenizer, read)


@pytest.mark.parametrize("name", ["mistral", "gemma2", "gemma3_text"])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("read", SHARED)
def test_open_shared_memory_keeps_the_sliding_window(name, padded, read, kg, tokenizer):
    """As above with a window of 3 tokens in the sliding-window layers (all of Mistral's, every other of Gemma's):
    a slot is read only by the queries whose window its position is in, as the fact's text would be; and a prompt
    read in two calls, the second's keys after those the cache trimmed to the window, reads as in one."""
    _, config, auto = ARCH[name]
    config = copy.deepcopy(config)
    config.sliding_window = 3
    model, inputs, knowledge = _check_open_shared_memory_is_the_text(config, auto, "eager", padded, kg, tokenizer, read)
    whole = model(**inputs, knowledge=knowledge).logits
    cut = inputs["input_ids"].size(1) - 3  # the last 3 tokens in a second call; the first of them reads slot -1
    first = {k: v[:, :cut] for k, v in inputs.items()}
    second = {k: v if k == "attention_mask" else v[:, cut:] for k, v in inputs.items()}
    cache = model(**first, knowledge=_one_fact(kg, cut), use_cache=True).past_key_values
    got = model(**second, knowledge=_one_fact(kg, 3), cache=cache, use_cache=True).logits
    torch.testing.assert_close(got, whole[:, cut:], atol=1e-5, rtol=1e-5)


def _check_open_shared_memory_is_the_text(config, auto, attention, padded, kg, tokenizer, read):
    config._attn_implementation = attention
    base = build_model(config, auto)
    text = base(input_ids=torch.cat([FACT, PROMPT], 1), attention_mask=torch.ones(1, 9, dtype=torch.long))
    model, _ = _wrap(config, auto, kg, tokenizer, read)
    with torch.no_grad():
        for gate in model.memory_gates["default"]:
            gate.gate.fill_(1.0)  # tanh(scale) == 1 in float32
    inputs = {"input_ids": PROMPT, "attention_mask": torch.ones_like(PROMPT)}
    if padded:  # two pad tokens on the left, as batched generation pads
        inputs = {"input_ids": F.pad(PROMPT, (2, 0)), "attention_mask": F.pad(inputs["attention_mask"], (2, 0))}
        inputs["position_ids"] = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    knowledge = _one_fact(kg, inputs["input_ids"].size(1))
    got = model(**inputs, knowledge=knowledge).logits[:, -4:]
    torch.testing.assert_close(got, text.logits[:, 5:], atol=1e-4, rtol=1e-4)
    return model, inputs, knowledge


@pytest.mark.parametrize("name", sorted(ABSOLUTE))
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("read", SHARED)
def test_open_shared_memory_without_rotary_is_the_attention_over_the_fact_then_the_text(
    name, attention, padded, read, kg, tokenizer
):
    """Positions added at the input, memory_softmax='shared' (memory_positions='none'), every gate open, LoRA at zero,
    one layer: the logits are the base model's with its attention replaced by one computed here by hand over
    ``[the fact's keys and values, as the fact's text alone gets them; the prompt's]`` with an explicit mask: every
    real key for an encoder's query, the fact and the prompt up to itself for a decoder's (padded on the right for
    an encoder, whose classifier reads the first token, on the left for a decoder)."""
    _, config, auto = ARCH[name]
    config = copy.deepcopy(config)
    config.num_hidden_layers, config._attn_implementation = 1, attention
    base = build_model(config, auto)
    (site,) = attention_layout(base)
    causal = auto is AutoModelForCausalLM
    inputs = {"input_ids": PROMPT, "attention_mask": torch.ones_like(PROMPT)}
    if padded:
        inputs = {k: F.pad(v, (2, 0) if causal else (0, 2)) for k, v in inputs.items()}
    decoder = {"decoder_input_ids": PROMPT[:, :2]} if auto is AutoModelForSeq2SeqLM else {}
    layer_inputs, attended = [], []  # the layer's input, the fact's then the prompt's; the attention's output
    handles = [
        site.query.register_forward_hook(lambda module, args, output: layer_inputs.append(args[0])),
        site.output.register_forward_pre_hook(lambda module, args: attended.append(args[0])),
    ]
    with torch.no_grad():
        base(input_ids=FACT, attention_mask=torch.ones_like(FACT), **decoder)
        base(**inputs, **decoder)
    for handle in handles:
        handle.remove()
    fact, text = layer_inputs
    h, d, t = site.num_heads, site.head_dim, text.size(1)
    q = site.queries(site.query(text)).unflatten(-1, (h, d)).transpose(1, 2)  # (1, H, T, d)
    k, v = (
        torch.cat(pair, 1).transpose(1, 2) for pair in zip(site.keys_values(fact), site.keys_values(text), strict=True)
    )
    k, v = (x.repeat_interleave(h // site.num_kv_heads, dim=1) for x in (k, v))  # (1, H, 5 + T, d)
    keep = torch.ones(t, FACT.size(1) + t, dtype=torch.bool)
    keep[:, FACT.size(1) :] = inputs["attention_mask"][0].bool()[None, :]
    if causal:
        keep[:, FACT.size(1) :] &= torch.ones(t, t, dtype=torch.bool).tril()
    scores = (q @ k.transpose(-1, -2) * d**-0.5).masked_fill(~keep, float("-inf"))
    by_hand = (scores.softmax(-1) @ v).transpose(1, 2).flatten(-2)  # (1, T, H * d)
    handle = site.output.register_forward_pre_hook(lambda module, args: (by_hand,))
    with torch.no_grad():
        want = base(**inputs, **decoder).logits
    handle.remove()
    model, _ = _wrap(config, auto, kg, tokenizer, read)
    with torch.no_grad():
        for gate in model.memory_gates["default"]:
            gate.gate.fill_(1.0)  # tanh(scale) == 1 in float32
        read = []  # the attention's output, the memory's read added (the last call: the first encodes the fact)
        handle = model.sites["default"][0].output.register_forward_hook(lambda m, args, out: read.append(args[0]))
        got = model(**inputs, **decoder, knowledge=_one_fact(kg, t)).logits
        handle.remove()
    real = slice(2, None) if causal and padded else slice(0, 4)  # the prompt's rows, not the padding's
    torch.testing.assert_close(read[-1][:, real], by_hand[:, real], atol=1e-5, rtol=1e-5)
    rows = real if causal else slice(None)  # a classifier's logits have no rows
    torch.testing.assert_close(got[:, rows], want[:, rows], atol=1e-5, rtol=1e-5)
    assert (by_hand - attended[1])[:, real].abs().amax(-1).min() > 1e-3, (
        "every query reads the fact, not the text alone"
    )


@pytest.mark.parametrize("name", GEOMETRIES)
@pytest.mark.parametrize("read", SHARED)
def test_a_slot_gets_the_score_of_the_text_token_holding_its_key(name, read, kg, tokenizer):
    """memory_softmax='shared', gates open, LoRA at zero: in every layer the attention the prompt gives each slot
    is the attention the base model gives the same fact token written just before the prompt (the same key,
    normalised as the layer normalises keys, at the same position, scored with the layer's own scale and cap)."""
    _, config, auto = ARCH[name]
    config, text = _text_attentions(config, auto)
    model, _ = _wrap(config, auto, kg, tokenizer, read)
    gates = model.memory_gates["default"]
    with torch.no_grad():
        for gate in gates:
            gate.gate.fill_(1.0)  # tanh(scale) == 1 in float32
            gate.record = []
    model(input_ids=PROMPT, attention_mask=torch.ones_like(PROMPT), knowledge=_one_fact(kg, PROMPT.size(1)))
    for layer, gate in enumerate(gates):
        want = text.attentions[layer][0, :, 5:, :5].mean(0)  # (prompt, fact), the mean over heads as recorded
        torch.testing.assert_close(gate.record[0][0], want, atol=1e-6, rtol=1e-5)


def _first_read_of_the_prompt(config, auto, kg, tokenizer, **inputs) -> torch.Tensor:
    """The first layer's attention ``(T, M)`` (mean over heads), default read with the gates open, of the prompt
    over the slots of the prompt itself as its one fact."""
    model, _ = _wrap(config, auto, kg, tokenizer)
    gate = model.memory_gates["default"][0]
    with torch.no_grad():
        gate.gate.fill_(1.0)  # tanh(scale) == 1 in float32
    gate.record = []
    knowledge = make_knowledge(kg, [[0]], torch.full(PROMPT.shape, -1))
    knowledge = dataclasses.replace(
        knowledge, fact_ids=PROMPT[:, None], fact_mask=torch.ones(1, 1, 4, dtype=torch.bool)
    )
    model(input_ids=PROMPT, attention_mask=torch.ones_like(PROMPT), knowledge=knowledge, **inputs)
    return gate.record[0][0]


@pytest.mark.parametrize("name", ["bert", "roberta", "distilbert", "electra", "bart", "opt", "gpt2", "gpt_bigcode"])
def test_a_slot_without_rotary_reads_as_the_text_token_holding_its_key(name, kg, tokenizer):
    """Positions added to the input (encoders, BART's encoder, OPT, GPT-2, GPT-BigCode), default read: with the
    prompt itself as the one fact, each first-layer slot holds the key and value of the prompt token at its
    position, so a token that sees the whole prompt (every token of an encoder, the last of a decoder) attends over
    the slots as over the prompt (scaled as the layer scales it)."""
    _, config, auto = ARCH[name]
    config = copy.deepcopy(config)
    config._attn_implementation = "eager"  # to return attention weights
    text = build_model(config, auto)(input_ids=PROMPT, attention_mask=torch.ones_like(PROMPT), output_attentions=True)
    attentions = text.encoder_attentions if auto is AutoModelForSeq2SeqLM else text.attentions
    rows = slice(-1, None) if auto is AutoModelForCausalLM else slice(None)
    got = _first_read_of_the_prompt(config, auto, kg, tokenizer)[rows]
    torch.testing.assert_close(got, attentions[0][0].mean(0)[rows])


def test_a_t5_slot_scores_as_a_key_at_its_readers_position(kg, tokenizer):
    """T5's encoder, default read, the prompt as its own fact: each token's first-layer attention over the slots is
    its attention over the prompt without the relative-position bias, unscaled as T5 scores (a slot sits at its
    reader's position, where the bias is the same for every slot a query reads)."""
    _, config, auto = ARCH["t5"]
    config = copy.deepcopy(config)
    config._attn_implementation = "eager"  # to return attention weights
    base = build_model(config, auto)
    with torch.no_grad():
        base.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.zero_()
    mask = torch.ones_like(PROMPT)
    text = base(input_ids=PROMPT, attention_mask=mask, decoder_input_ids=PROMPT[:, :1], output_attentions=True)
    got = _first_read_of_the_prompt(config, auto, kg, tokenizer, decoder_input_ids=PROMPT[:, :1])
    torch.testing.assert_close(got, text.encoder_attentions[0][0].mean(0))


def test_a_deberta_slot_scores_as_a_key_at_its_readers_position(kg, tokenizer):
    """DeBERTa (relative attention, c2p and p2c), default read, the prompt as its own fact: each token's first-layer
    attention over the slots is its attention over the prompt with every relative distance set to 0, a slot's
    position: the same keys, DeBERTa's scale and position-to-content term (the content-to-position term is the
    same for every key a query reads)."""
    _, config, auto = ARCH["deberta_v2"]
    base = build_model(config, auto)
    mask = torch.ones_like(PROMPT)
    with torch.no_grad():
        embedded = base.deberta.embeddings(input_ids=PROMPT, mask=mask)
        zero = torch.zeros(1, 4, 4, dtype=torch.long)
        text = base.deberta.encoder(embedded, mask, output_attentions=True, relative_pos=zero)
    torch.testing.assert_close(_first_read_of_the_prompt(config, auto, kg, tokenizer), text.attentions[0][0].mean(0))


@pytest.mark.parametrize("name", ["llama", "qwen2"])
@pytest.mark.parametrize(
    ("facts", "mask", "reads"),
    [
        ([[2, 4, 5, 9, 3]], [[1, 1, 1, 1, 1]], ("trained", "adapter")),
        ([[2, 4, 5, 0], [9, 3, 0, 0]], [[1, 1, 1, 0], [1, 1, 0, 0]], ("together",)),  # padded inside the memory
    ],
    ids=["one-fact", "two-facts-together"],
)
def test_open_trained_memory_is_the_facts_as_text_in_value_and_gradient(name, facts, mask, reads, kg, tokenizer):
    """memory_encoder='trained', gates open: with any LoRA, a memory of one fact gives the logits of the same
    adapter reading that fact written before the prompt, and the same gradient for every LoRA weight (the
    facts' slots pass it back through the encoding); 'adapter' gives the logits but not the gradient. With
    memory_facts_together, two padded facts are their real tokens written one after the other."""
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == name)
    facts, mask = torch.tensor([facts]), torch.tensor([mask], dtype=torch.bool)  # (1, F, L)
    fact, prompt = facts[mask][None], torch.tensor([[6, 7, 8, 10]])
    grads = {}
    for read in reads:
        model, _ = _wrap(config, auto, kg, tokenizer, read)
        _perturb(model)
        with torch.no_grad():
            for gate in model.memory_gates["default"]:
                gate.gate.fill_(1.0)  # tanh(scale) == 1 in float32
        model.eval()  # no LoRA dropout: both reads see the same weights
        lora = {n: p for n, p in model.named_parameters() if "lora_" in n}

        def loss_grads(logits, model=model, lora=lora):
            model.zero_grad()
            logits.pow(2).mean().backward()
            return {n: p.grad.clone() for n, p in lora.items()}

        text_inputs = torch.cat([fact, prompt], 1)
        empty = make_knowledge(kg, [[]], torch.full(text_inputs.shape, -1))
        text_logits = model(input_ids=text_inputs, attention_mask=torch.ones_like(text_inputs), knowledge=empty).logits
        text = text_logits[:, fact.size(1) :]
        knowledge = make_knowledge(kg, [[0]], torch.full(prompt.shape, -1))
        knowledge = dataclasses.replace(knowledge, fact_ids=facts, fact_mask=mask)
        memory = model(input_ids=prompt, attention_mask=torch.ones_like(prompt), knowledge=knowledge).logits
        torch.testing.assert_close(memory, text, atol=1e-4, rtol=1e-4)
        grads[read] = (loss_grads(memory), loss_grads(text))
    got, want = grads[reads[0]]
    for n in want:
        torch.testing.assert_close(got[n], want[n], atol=1e-5, rtol=1e-3)
    if "adapter" in grads:
        got, want = grads["adapter"]
        assert any((got[n] - want[n]).abs().max() > 1e-4 for n in want)


def test_shared_softmax_values_are_checked():
    """The shared softmax without positions is the model's to refuse (rotary, ALiBi, relative positions:
    test_refusals_name_what_is_missing), not the config's: BERT's and GPT-2's slots carry their own."""
    assert KGLoraConfig(knowledge_mode="memory", memory_softmax="shared").memory_positions == "none"
    with pytest.raises(KGLoraConfigError, match="`memory_positions` should be 'none' or 'prefix'"):
        KGLoraConfig(knowledge_mode="memory", memory_positions="before")
    with pytest.raises(KGLoraConfigError, match="`memory_softmax` should be 'own', 'shared' or 'inline'"):
        KGLoraConfig(knowledge_mode="memory", memory_softmax="joint")
    with pytest.raises(KGLoraConfigError, match="an opening of 0 is a bias of -inf"):
        KGLoraConfig(knowledge_mode="memory", memory_softmax="inline", memory_positions="prefix")
    with pytest.raises(KGLoraConfigError, match="`memory_gate_opening` should be in"):
        KGLoraConfig(knowledge_mode="memory", memory_gate_opening=1.0)


def test_gate_opening_sets_the_fresh_gates():
    gate = MemoryGate(num_heads=3, scale=20.0, opening=0.75)
    torch.testing.assert_close(torch.tanh(gate.scale * gate.gate), torch.full((3,), 0.75))
    with torch.no_grad():
        gate.gate.zero_()
    gate.reset_parameters()
    torch.testing.assert_close(torch.tanh(gate.scale * gate.gate), torch.full((3,), 0.75))


@pytest.mark.parametrize("name", ["llama", "qwen3", "phi3"])
def test_shared_memory_trains_under_bf16_autocast(name, kg, tokenizer):
    # autocast computes the scores in bf16 while the queries stay float32: masking the slots must fit bf16
    _, config, auto = ARCH[name]
    model, _ = _wrap(config, auto, kg, tokenizer, "together")
    _perturb(model)
    inputs = _inputs(auto)
    knowledge = _knowledge(kg, inputs)
    reference = model(**inputs, knowledge=knowledge).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(**inputs, knowledge=knowledge).logits
    logits.float().square().mean().backward()
    assert all(p.grad.isfinite().all() for p in model.parameters() if p.grad is not None)
    torch.testing.assert_close(logits.float(), reference, atol=0.1, rtol=0.05)


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_the_shared_read_knows_when_the_attention_drops_weights(name, kg, tokenizer, monkeypatch):
    """In training, an attention with dropout (BERT's and GPT-2's tiny configs have 0.1; Llama's 0.1 set here) has
    the shared read told so, which then takes the path that keeps the dropped weights; in evaluation it is not."""
    _, config, auto = ARCH[name]
    config = copy.deepcopy(config)
    if name == "llama":
        config.attention_dropout = 0.1
    config._attn_implementation = "eager"
    model, _ = _wrap(config, auto, kg, tokenizer, "shared")
    seen = []
    real = memory_module.shared_read
    monkeypatch.setattr(memory_module, "shared_read", lambda *a, **k: seen.append(k["dropped"]) or real(*a, **k))
    inputs = {"input_ids": PROMPT, "attention_mask": torch.ones_like(PROMPT)}
    for training in (True, False):
        model.train(training)
        model(**inputs, knowledge=_one_fact(kg, PROMPT.size(1)))
        assert seen and set(seen) == {training}, (training, seen)
        seen.clear()


@pytest.mark.parametrize("name", ["llama", "phi3"])  # separate projections; one fused q/k/v projection
def test_projections_memory_is_the_facts_as_text_with_their_key_value_inputs_detached(name, kg, tokenizer):
    """memory_encoder='projections', gates open: the logits of the facts written before the prompt, and the
    gradient of that text when the fact tokens' inputs to every key and value projection are detached (the slots
    train each layer's key/value LoRA, not the layers below); not 'trained''s gradient."""
    _, config, auto = ARCH[name]
    fact, prompt = torch.tensor([[2, 4, 5, 9, 3]]), torch.tensor([[6, 7, 8, 10]])
    n = fact.size(1)
    model, _ = _wrap(config, auto, kg, tokenizer, "trained")
    model.tuner.kg_configs["default"].memory_encoder = "projections"
    _perturb(model)
    with torch.no_grad():
        for gate in model.memory_gates["default"]:
            gate.gate.fill_(1.0)  # tanh(scale) == 1 in float32
    model.eval()
    lora = {k: p for k, p in model.named_parameters() if "lora_" in k}

    def grads(logits):
        model.zero_grad()
        logits.pow(2).mean().backward()
        return {k: p.grad.clone() for k, p in lora.items()}

    knowledge = dataclasses.replace(
        make_knowledge(kg, [[0]], torch.full(prompt.shape, -1)), fact_ids=fact[:, None], fact_mask=fact[:, None] > 0
    )
    memory = model(input_ids=prompt, attention_mask=torch.ones_like(prompt), knowledge=knowledge).logits
    got = grads(memory)
    text_inputs = torch.cat([fact, prompt], 1)
    empty = make_knowledge(kg, [[]], torch.full(text_inputs.shape, -1))
    sites = model.sites["default"]
    projections = {site.key for site in sites} | {site.value for site in sites if site.value is not None}
    detach = lambda module, args: (torch.cat([args[0][:, :n].detach(), args[0][:, n:]], 1),)  # noqa: E731
    handles = [p.register_forward_pre_hook(detach) for p in projections]
    text = model(input_ids=text_inputs, attention_mask=torch.ones_like(text_inputs), knowledge=empty).logits[:, n:]
    want = grads(text)
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(memory, text, atol=1e-4, rtol=1e-4)
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-3)
    trained = grads(
        model(input_ids=text_inputs, attention_mask=torch.ones_like(text_inputs), knowledge=empty).logits[:, n:]
    )
    assert any((trained[k] - got[k]).abs().max() > 1e-4 for k in got), "the layers below learn only with 'trained'"
    assert any((got[k]).abs().max() > 0 for k in got if ".v_proj." in k or "qkv" in k)
