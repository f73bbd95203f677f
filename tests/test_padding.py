"""`kgpeft.padding.skip_padding`: frozen linear layers skip padding, and nothing changes, bit for bit."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tiny_models import ARCHITECTURES, build_model
from torch import nn

from kgpeft.padding import skip_padding

# DeBERTa's projections also read relative-position embeddings: its layers compute every row
CASES = [pytest.param(n, c, a, id=n) for n, c, a in ARCHITECTURES if n != "deberta_v2"]


def _batch(config, padding_side="right"):
    """Three rows of 7, 4 and 2 real tokens (a padded batch of 3 x 7), with labels."""
    g = torch.Generator().manual_seed(3)
    lengths = [7, 4, 2]
    ids = torch.randint(5, 40, (3, 7), generator=g)
    mask = torch.zeros(3, 7, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1 if padding_side == "right" else 0
        if padding_side == "left":
            mask[i, 7 - n :] = 1
    ids = ids.masked_fill(mask == 0, getattr(config, "pad_token_id", None) or 0)
    return {"input_ids": ids, "attention_mask": mask}


# Each family's query and value projections, or fused ones; GPT-2's c_attn is a Conv1D, not found by type
_QUERY_VALUE = {"q_proj", "v_proj", "query", "value", "q", "v", "q_lin", "v_lin", "query_proj"}
_FUSED = {"query_key_value", "qkv_proj"}


def _lora(base: nn.Module) -> nn.Module:
    names = {n.rsplit(".", 1)[-1] for n, m in base.named_modules() if isinstance(m, nn.Linear)}
    targets = sorted(names & (_QUERY_VALUE | _FUSED))
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, target_modules=targets or ["c_attn"]))
    with torch.no_grad():  # lora_B away from zero, so the adapters matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model


def _run(model, batch, labels):
    torch.manual_seed(0)  # the same dropout masks in both runs
    model.zero_grad(set_to_none=True)
    out = model(**batch, labels=labels)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), out.logits.detach(), grads


@pytest.mark.parametrize(("name", "config", "auto"), CASES)
def test_training_step_is_bit_identical_with_fewer_rows(name, config, auto):
    model = _lora(build_model(config, auto)).train()
    batch = _batch(config)
    if auto.__name__ == "AutoModelForSequenceClassification":
        labels = torch.tensor([0, 1, 0])
    else:
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    padding = batch["attention_mask"] == 0
    with skip_padding(model):
        inside = [m for m in model.modules() if "forward" in vars(m)]  # the layers that skip padding
    at_padding = []  # per call of such a layer over the tokens: the sum of what it gave at padding

    def record(module, args, out):
        if out.shape[:2] == padding.shape:
            at_padding.append(float(out[padding].abs().sum()))

    hooks = [m.register_forward_hook(record) for m in inside]
    plain = _run(model, batch, labels)
    computed, at_padding[:] = list(at_padding), []
    with skip_padding(model):
        skipped = _run(model, batch, labels)
    for hook in hooks:
        hook.remove()
    assert len(at_padding) == len(computed)
    # the padding rows were not computed (all of them in decoder-only and encoder models)
    assert sum(c > 0 and a == 0 for c, a in zip(computed, at_padding, strict=True)) > 0
    if not getattr(config, "is_encoder_decoder", False):
        assert not any(at_padding)
    assert torch.equal(plain[0], skipped[0])
    real = batch["attention_mask"].bool()
    if plain[1].dim() == 3 and plain[1].shape[:2] == real.shape:
        assert torch.equal(plain[1][real], skipped[1][real])
    else:
        assert torch.equal(plain[1], skipped[1])
    assert plain[2].keys() == skipped[2].keys() and plain[2]
    for key, grad in plain[2].items():
        assert torch.equal(grad, skipped[2][key]), key
    # outside the block the model is as before
    assert not any("forward" in vars(m) for m in model.modules())


@pytest.mark.parametrize("name", ["llama", "gpt_neox"])
def test_left_padded_generation_is_unchanged(name):
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == name)
    model = _lora(build_model(config, auto)).eval()
    batch = _batch(config, padding_side="left")
    kwargs = {"max_new_tokens": 5, "do_sample": False, "pad_token_id": 0}
    plain = model.generate(**batch, **kwargs)
    with skip_padding(model):
        skipped = model.generate(**batch, **kwargs)
    assert torch.equal(plain, skipped)


def test_the_patch_is_removed_when_the_block_raises():
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "llama")
    model = build_model(config, auto)
    model.requires_grad_(False)
    with pytest.raises(RuntimeError, match="inside"), skip_padding(model):
        assert any("forward" in vars(m) for m in model.modules())
        raise RuntimeError("inside")
    assert not any("forward" in vars(m) for m in model.modules() if isinstance(m, nn.Linear))


def test_deberta_with_relative_positions_is_left_alone():
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "deberta_v2")
    model = build_model(config, auto)
    model.requires_grad_(False)
    with skip_padding(model):
        assert not any("forward" in vars(m) for m in model.modules())


def test_nested_blocks_keep_the_outer_one_working():
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "llama")
    model = build_model(config, auto)
    model.requires_grad_(False)
    with skip_padding(model):
        patched = {id(m) for m in model.modules() if "forward" in vars(m)}
        with skip_padding(model):  # e.g. generate_texts in an `evaluate` callback of `train`
            pass
        assert patched and {id(m) for m in model.modules() if "forward" in vars(m)} == patched
    assert not any("forward" in vars(m) for m in model.modules())
