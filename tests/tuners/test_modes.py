"""Knowledge modes as objects: one registry read by the config and the tuner; the wrapper holds the tuner."""

import copy
import dataclasses
import typing

import pytest
import torch
from tiny_models import ARCHITECTURES, build_model

from kgpeft import padding
from kgpeft.model import get_kg_peft_model
from kgpeft.tuners import KNOWLEDGE_MODES, KGLoraConfig, KGLoraModel, sites
from kgpeft.tuners.config import KnowledgeMode
from kgpeft.tuners.memory import attention_layout
from kgpeft.tuners.prefix import prefix_layout

LLAMA = next(a for a in ARCHITECTURES if a[0] == "llama")


def test_the_config_knows_the_registered_modes_and_their_help():
    assert typing.get_args(KnowledgeMode) == tuple(KNOWLEDGE_MODES)
    help_text = next(f for f in dataclasses.fields(KGLoraConfig) if f.name == "knowledge_mode").metadata["help"]
    assert all(f"`{name}`: {mode.help}" in help_text for name, mode in KNOWLEDGE_MODES.items())
    kinds = {kind for mode in KNOWLEDGE_MODES.values() for kind in mode.modules}
    assert kinds | {"graph_encoders", "relation_decoders"} == set(KGLoraModel.KNOWLEDGE_MODULES)


def test_the_default_mode_is_the_one_that_carries_knowledge():
    assert KGLoraConfig().knowledge_mode == "memory"
    assert not KNOWLEDGE_MODES[KGLoraConfig().knowledge_mode].graph_encoder


def test_memory_and_prefix_read_the_same_attention_sites_of_the_shared_table():
    model = build_model(*LLAMA[1:])
    memory, prefix = attention_layout(model), prefix_layout(model)
    assert [(s.name, s.query, s.key, s.value, s.output) for s in memory] == [
        (s.name, s.query, s.key, s.value, s.output) for s in prefix
    ]
    assert padding.POSITION_METHODS is sites.POSITION_METHODS


@pytest.mark.parametrize("mode", sorted(KNOWLEDGE_MODES))
def test_the_model_holds_the_tuner_and_counts_its_weights_once(mode, kg, tokenizer):
    model = get_kg_peft_model(
        build_model(*LLAMA[1:]), KGLoraConfig(r=4, graph_channels=8, knowledge_mode=mode), kg, tokenizer
    )
    assert isinstance(model.tuner, KGLoraModel) and not isinstance(model, KGLoraModel)
    assert list(model.state_dict()) == list(model.tuner.state_dict())
    assert [id(p) for p in model.parameters()] == [id(p) for p in model.tuner.parameters()]
    model.eval()
    assert not any(m.training for m in model.tuner.children())
    copied = copy.deepcopy(model)
    assert copied.tuner is not model.tuner
    assert all(a is b for a, b in zip(copied.parameters(), copied.tuner.parameters(), strict=True))
    with torch.no_grad():
        next(p for p in copied.parameters() if p.requires_grad).add_(1.0)
    assert not torch.equal(
        next(p for p in copied.parameters() if p.requires_grad), next(p for p in model.parameters() if p.requires_grad)
    )
