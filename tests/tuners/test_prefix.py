"""`prefix` mode's attention layout: which projections each architecture's soft tokens go through."""

import copy

import pytest
import torch
from tiny_models import ARCHITECTURES, build_model, make_inputs
from transformers import AttentionInterface, AutoModelForCausalLM, BloomConfig, MptConfig
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from kgpeft.tuners.prefix import PrefixError, prefix_layout

CAUSAL = [pytest.param(n, c, a, id=n) for n, c, a in ARCHITECTURES if a.__name__ == "AutoModelForCausalLM"]
_QUERIES = []  # the queries each attention call of a model set to "kgpeft_capture" received, with its scaling


def _capture(module, query, key, value, attention_mask, scaling=None, **kwargs):
    _QUERIES.append(query * (module.head_dim**-0.5 if scaling is None else scaling))
    return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)


AttentionInterface.register("kgpeft_capture", _capture)


def _arch(name):
    return next(a for a in ARCHITECTURES if a[0] == name)


@pytest.mark.parametrize(("name", "config", "auto"), CAUSAL)
def test_soft_tokens_are_projected_as_the_model_projects_tokens(name, config, auto):
    # fed a layer's own input, a site's keys and values are the ones the model caches (fused
    # projections split as the model splits them); rotary embeddings leave position 0 unchanged
    model = build_model(config, auto)
    sites = prefix_layout(model)
    layer_inputs = {}
    for i, site in enumerate(sites):
        site.query.register_forward_hook(lambda module, args, output, i=i: layer_inputs.__setitem__(i, args[0]))
    cache = model(**make_inputs(), use_cache=True).past_key_values
    assert len(sites) == len(cache.layers) == 2
    for i, site in enumerate(sites):
        keys, values = (t.transpose(1, 2) for t in site.keys_values(layer_inputs[i]))  # (B, H_kv, T, d)
        assert torch.equal(values, cache.layers[i].values)
        assert torch.equal(keys[:, :, 0], cache.layers[i].keys[:, :, 0])


@pytest.mark.parametrize(
    ("name", "config", "auto"),
    [c for c in CAUSAL if c.id != "bloom"],  # BLOOM has no attention interface to watch
)
def test_soft_token_logits_use_the_models_own_queries(name, config, auto):
    # the query heads a site takes from its projection, scaled as the read scales them, are those the model's attention
    # multiplies with its keys (at position 0, where rotary embeddings change nothing; OPT scales q_proj's output first)
    model = build_model(copy.deepcopy(config), auto)  # the model shares its config, which the next line changes
    model.set_attn_implementation("kgpeft_capture")
    sites = prefix_layout(model)
    queries = {}
    for i, site in enumerate(sites):
        site.query.register_forward_hook(lambda module, args, output, i=i: queries.__setitem__(i, output))
    _QUERIES.clear()
    model(**make_inputs())
    assert len(_QUERIES) == len(sites) == 2
    for i, (site, theirs) in enumerate(zip(sites, _QUERIES, strict=True)):  # theirs: (B, H, T, d)
        ours = site.queries(queries[i]).unflatten(-1, (site.num_heads, site.head_dim))  # (B, T, H, d)
        assert torch.allclose(ours[:, 0] * site.head_dim**-0.5, theirs[:, :, 0], atol=1e-6)


# (layout, query heads, key/value heads, head size) of each fused projection, from the tiny configs in tiny_models.py
FUSED = {
    "gpt2": ("blocks", 4, 4, 8),
    "gpt_neox": ("groups", 4, 4, 8),
    "gpt_bigcode": ("blocks", 4, 1, 8),  # multi_query=True: c_attn is [q | k | v], 32 + 8 + 8 wide
    "gpt_bigcode_mha": ("groups", 4, 4, 8),  # multi_query=False: c_attn is [q_h | k_h | v_h] per head
    "falcon": ("blocks", 4, 1, 8),
    "falcon_mha": ("groups", 4, 4, 8),
    "falcon_gqa": ("groups", 4, 2, 8),  # new_decoder_architecture, num_kv_heads=2: [q q k v] per key/value head
    "phi3": ("blocks", 4, 2, 8),
    "bloom": ("groups", 4, 4, 8),
}


@pytest.mark.parametrize("name", FUSED)
def test_fused_projections_are_split_by_the_configs_head_counts(name):
    sites = prefix_layout(build_model(*_arch(name)[1:]))
    assert [(s.layout, s.num_heads, s.num_kv_heads, s.head_dim, s.width) for s in sites] == [(*FUSED[name], 32)] * 2


def test_a_fused_projection_of_another_width_than_the_config_names_is_refused():
    _, config, auto = _arch("falcon_gqa")
    model = build_model(copy.deepcopy(config), auto)
    model.config.num_key_value_heads = 1
    with pytest.raises(PrefixError, match=r"num_key_value_heads=1, head_dim=8: 48 outputs\), but it has 64 outputs"):
        prefix_layout(model)


def test_bloom_that_skips_its_output_projection_is_refused():
    config = BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=64, pretraining_tp=2, slow_but_exact=True)
    with pytest.raises(PrefixError, match=r"transformer\.h\.0\.self_attention\.dense`.*slow_but_exact=False"):
        prefix_layout(build_model(config, AutoModelForCausalLM))


def test_fused_projection_of_an_unknown_model_type_is_refused():
    # MPT fuses q, k and v in `Wqkv`; prefix mode would have to guess how, so it says which types it knows
    config = MptConfig(d_model=32, n_heads=4, n_layers=2, vocab_size=64, max_seq_len=64)
    with pytest.raises(PrefixError, match=r"none of MptForCausalLM's .* fused ones of model types \['bloom', 'falcon'"):
        prefix_layout(build_model(config, AutoModelForCausalLM))


@pytest.mark.parametrize(("name", "expected"), [("bart", 4), ("t5", 4), ("bert", 2), ("distilbert", 2)])
def test_only_self_attention_reads_the_soft_tokens(name, expected):
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == name)
    sites = prefix_layout(build_model(config, auto))
    assert len(sites) == expected, "encoder and decoder self-attention, no cross-attention"
    assert not any("encoder_attn" in s.name or "EncDecAttention" in s.name for s in sites)


def test_unknown_attention_is_refused():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = torch.nn.ModuleDict({"wq": torch.nn.Linear(8, 8), "wo": torch.nn.Linear(8, 8)})
            self.config = None

    with pytest.raises(PrefixError, match=r"knowledge_mode='prefix' .* none of Net's modules looks like one"):
        prefix_layout(Net())
