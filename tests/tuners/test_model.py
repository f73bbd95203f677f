"""`KGLoraModel`, the tuner: one registry of per-adapter knowledge modules read by training, saving and loading."""

import copy
import dataclasses
import warnings

import pytest
import torch
from tiny_models import ARCHITECTURES, MORE_ARCHITECTURES, build_model, make_inputs, make_knowledge
from transformers import AutoModelForCausalLM, MptConfig

from kgpeft.checkpoint import CheckpointError
from kgpeft.model import KGPeftModel, get_kg_peft_model
from kgpeft.tuners import KGLoraConfig, KGLoraModel, KnowledgeBatch, PrefixState, TokenState
from kgpeft.tuners.memory import FactMemoryError
from kgpeft.tuners.prefix import PrefixError
from kgpeft.tuners.targets import TargetModulesError

LLAMA = next(a for a in ARCHITECTURES if a[0] == "llama")
# Every kind of knowledge module exists: "default" has fusions, "prefix" a prefix projection and gates,
# both a graph encoder and a relation decoder; "memory" has memory gates.
ADAPTERS = {
    "default": KGLoraConfig(knowledge_mode="token", r=4, graph_channels=8, relation_loss_weight=0.5),
    "prefix": KGLoraConfig(r=4, graph_channels=8, knowledge_mode="prefix", relation_loss_weight=0.5),
    "memory": KGLoraConfig(r=4, knowledge_mode="memory"),
}
KINDS = {"graph_encoders", "fusions", "prefix_projections", "prefix_gates", "relation_decoders", "memory_gates"}


def _tuner(kg, tokenizer) -> KGLoraModel:
    (first, config), *others = ADAPTERS.items()
    model = KGLoraModel(build_model(*LLAMA[1:]), config, kg, tokenizer, adapter_name=first)
    for name, other in others:
        model.add_adapter(name, other)
    return model


def _assert_only_active_trains(model: KGLoraModel, active: str) -> None:
    kinds = set()
    for name, p in model.named_parameters():
        if name.startswith("peft_model."):
            if "lora_" in name:
                adapter = next(a for a in ADAPTERS if f".{a}." in name)
                assert p.requires_grad == (adapter == active), f"{name} with {active!r} active"
            else:
                assert not p.requires_grad, f"{name}: the base model stays frozen"
            continue
        kind, adapter = name.split(".")[:2]
        kinds.add(kind)
        assert p.requires_grad == (adapter == active), f"{name} with {active!r} active"
    assert kinds == KINDS


def test_only_the_active_adapters_modules_train(kg, tokenizer):
    model = _tuner(kg, tokenizer)
    assert model.active_adapter == "default"
    _assert_only_active_trains(model, "default")
    for active in ("prefix", "default", "memory", "prefix"):
        model.set_adapter(active)
        _assert_only_active_trains(model, active)


def test_one_registry_for_training_saving_and_loading(kg, tokenizer):
    model = _tuner(kg, tokenizer)
    registry = set(KGLoraModel.KNOWLEDGE_MODULES)
    assert registry == KINDS
    assert set(model.knowledge_modules()) == registry
    # every module beside peft's is a registered kind, so none escapes set_adapter or saving
    assert {name for name, _ in model.named_children()} == registry | {"peft_model"}
    assert {key.split(".")[0] for key in model.knowledge_state_dict()} == registry


def test_knowledge_state_dict_round_trip(kg, tokenizer):
    model = _tuner(kg, tokenizer)
    with torch.no_grad():
        for p in model.parameters():
            if not p.requires_grad:
                continue
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    state = model.knowledge_state_dict()
    other = _tuner(kg, tokenizer)
    assert any(not torch.equal(v, other.knowledge_state_dict()[k]) for k, v in state.items())
    other.load_knowledge_state_dict(state)
    loaded = other.knowledge_state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())

    del state["relation_decoders.prefix.weight"]
    state["relation_decoders.other.weight"] = torch.ones(1)
    with pytest.raises(CheckpointError, match=r"ckpt does not fit the config: missing \['relation_decoders.prefix"):
        other.load_knowledge_state_dict(state, source="ckpt")


def test_old_prefix_adapter_is_refused_by_name(kg, tokenizer):
    model = _tuner(kg, tokenizer)
    state = {k: v for k, v in model.knowledge_state_dict().items() if not k.startswith("prefix_gates.")}
    with pytest.raises(CheckpointError, match=r"ckpt holds a `prefix` adapter of an older kgpeft.* Retrain it"):
        model.load_knowledge_state_dict(state, source="ckpt")


def test_encode_knowledge_lays_out_states_per_mode(kg, tokenizer):
    model = _tuner(kg, tokenizer)
    knowledge = make_knowledge(kg, [[0], [4]], [[-1, 0, -1, -1, -1, -1], [-1, -1, 4, -1, -1, -1]])
    z = model.graph_encoders["default"](knowledge.graph)  # (N, 8)
    state = model.encode_knowledge(knowledge)  # token mode
    assert isinstance(state, TokenState) and state.links_tokens
    assert state.token_states.shape == (2, 6, 8)
    assert torch.equal(state.token_states[0, 1], z[knowledge.token_node_index[0, 1]])
    assert not state.token_states[0, 0].any(), "an unlinked token gets zeros"
    model.set_adapter("prefix")
    knowledge = make_knowledge(kg, [[0], []], [[-1, 0, -1, -1, -1, -1], [-1] * 6])  # sample 1 has no nodes
    state = model.encode_knowledge(knowledge)
    assert isinstance(state, PrefixState) and not state.links_tokens and state.memory is None
    # each of llama's 2 layers projects the 4 soft tokens to its 2 key/value heads of width 8
    assert [tuple(k.shape) for k in state.prefix.keys] == [(2, 4, 2, 8)] * 2
    assert [tuple(v.shape) for v in state.prefix.values] == [(2, 4, 2, 8)] * 2
    assert state.prefix.mask.tolist() == [[True] * 4, [False] * 4], "a sample without nodes has no soft tokens"


def test_the_tuner_runs_through_peft_with_the_context(kg, tokenizer):
    model = _tuner(kg, tokenizer)
    inputs = make_inputs()
    knowledge = make_knowledge(kg, [[0], [4]], [[-1, 0, -1, -1, -1, -1], [-1, -1, 4, -1, -1, -1]])
    with torch.no_grad():
        for fusion in model.fusions["default"].values():
            fusion.proj.weight.fill_(1.0)
        for module in model.peft_model.modules():
            if hasattr(module, "lora_B") and "default" in module.lora_B:
                module.lora_B["default"].weight.fill_(0.1)
    plain = model.peft_model(**inputs).logits
    with model.context.activate(model.encode_knowledge(knowledge)):
        fused = model.peft_model(**inputs).logits
    assert model.context.state is None
    assert (fused - plain).abs().amax(-1)[0, 1:].max() > 0, "linked token 1 and what attends to it change"
    assert torch.equal(fused[:, 0], plain[:, 0]), "the first token sees no linked token"


def _mpt():
    return build_model(
        MptConfig(d_model=32, n_heads=4, n_layers=2, vocab_size=64, max_seq_len=64), AutoModelForCausalLM
    )


def _arch(name):
    return lambda: build_model(*next(a for a in ARCHITECTURES + MORE_ARCHITECTURES if a[0] == name)[1:])


def _small_vocabulary_llama():  # fewer token ids than the tiny tokenizer gives
    _, config, auto = LLAMA
    return build_model(dataclasses.replace(config, vocab_size=8), auto)


# (model, adapter config, tokenizer given, the refusal): each refused after the model was touched, before the fix
REFUSALS = {
    "memory-deberta-prefix": (
        _arch("deberta_v2"),
        {"knowledge_mode": "memory", "memory_positions": "prefix"},
        True,
        (FactMemoryError, "DebertaV2ForSequenceClassification has none"),
    ),
    "memory-bloom-prefix": (
        _arch("bloom"),
        {"knowledge_mode": "memory", "memory_positions": "prefix"},
        True,
        (FactMemoryError, "places its keys with ALiBi"),
    ),
    # refused by the model (no rotary embedding to place slots with), not by its projection names
    "memory-electra-prefix": (
        _arch("electra"),
        {"knowledge_mode": "memory", "memory_positions": "prefix"},
        True,
        (FactMemoryError, "ElectraForSequenceClassification has none"),
    ),
    "prefix-mpt": (_mpt, {"knowledge_mode": "prefix"}, True, (PrefixError, "none of MptForCausalLM's modules")),
    "text-without-tokenizer": (_arch("llama"), {"node_features": "text"}, False, (ValueError, "pass `tokenizer=`")),
    "kge-without-embeddings": (_arch("llama"), {"node_features": "kge"}, True, (ValueError, "needs KG embeddings")),
    "tokenizer-beyond-embeddings": (
        _small_vocabulary_llama,
        {"node_features": "text"},
        True,
        (ValueError, "`embedding` has only 8 rows"),
    ),
    # peft wraps the q_proj layers, then refuses the norm
    "unadaptable-target": (
        _arch("llama"),
        {"target_modules": ["q_proj", "input_layernorm"]},
        True,
        (ValueError, "LlamaRMSNorm.* is not supported"),
    ),
    "no-target": (_arch("llama"), {"target_modules": ["wq"]}, True, (TargetModulesError, "matches no linear module")),
}


def _untouched_state(model):
    """Everything a refusal must leave as it was, tensors apart."""
    modules = dict(model.named_modules())
    return {
        "modules": [(name, id(m), type(m)) for name, m in modules.items()],
        "attributes": {name: sorted(vars(m)) for name, m in modules.items()},
        "hooks": {name: (list(m._forward_hooks), list(m._forward_pre_hooks)) for name, m in modules.items()},
        "trainable": {name: p.requires_grad for name, p in model.named_parameters()},
        "config": model.config.to_dict(),
    }


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_model_is_left_as_it_was(kg, tokenizer, case):
    make, changes, with_tokenizer, (error, message) = REFUSALS[case]
    model = make()
    inputs = make_inputs()
    inputs["input_ids"] %= model.config.vocab_size
    before, tensors, logits = _untouched_state(model), copy.deepcopy(model.state_dict()), model(**inputs).logits
    with pytest.raises(error, match=message):
        get_kg_peft_model(
            model,
            KGLoraConfig(**{"knowledge_mode": "token", "r": 4, **changes}),
            kg,
            tokenizer if with_tokenizer else None,
        )
    assert _untouched_state(model) == before
    assert not hasattr(model, "peft_config")
    state = model.state_dict()
    assert state.keys() == tensors.keys() and all(torch.equal(state[k], v) for k, v in tensors.items())
    assert torch.equal(model(**inputs).logits, logits)
    # and it can still be wrapped, into a model that starts as the base model
    wrapped = get_kg_peft_model(
        model, KGLoraConfig(knowledge_mode="token", r=4, node_features="learned"), kg, tokenizer
    )
    assert torch.equal(wrapped(**inputs, knowledge=KnowledgeBatch.empty(2, 6)).logits, logits)


def test_wrapping_and_loading_show_users_no_futurewarning(kg, tokenizer, tmp_path):
    # peft asks transformers 5 for its deprecated `is_gradient_checkpointing`; pyproject's filter hides that in tests
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        model = get_kg_peft_model(build_model(*LLAMA[1:]), KGLoraConfig(knowledge_mode="token", r=4), kg, tokenizer)
        model.add_adapter("other", KGLoraConfig(r=4, knowledge_mode="memory"))
        model.save_pretrained(tmp_path / "adapter")
        KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "adapter", kg, tokenizer)
    with pytest.warns(FutureWarning, match="is_gradient_checkpointing"):  # the filter holds inside the call only
        _ = build_model(*LLAMA[1:]).is_gradient_checkpointing
