"""`prefix` mode's attention layout: which projections each architecture's soft tokens go through."""

import pytest
import torch
from tiny_models import ARCHITECTURES, build_model, make_inputs

from kgpeft.tuners.prefix import PrefixError, prefix_layout

CAUSAL = [pytest.param(n, c, a, id=n) for n, c, a in ARCHITECTURES if a.__name__ == "AutoModelForCausalLM"]


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
