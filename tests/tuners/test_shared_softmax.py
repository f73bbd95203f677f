"""The shared softmax's two computations of the slots' read agree: the fused attention over ``[slots; text]`` (the
fast path) and the slots' share from the text's log-sum-exp (the path for soft caps and recorded shares)."""

import pytest
import torch
from transformers import BertConfig, GPT2Config, LlamaConfig
from transformers.models.bert.modeling_bert import BertSelfAttention
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention
from transformers.models.llama.modeling_llama import LlamaAttention

from kgpeft.tuners.geometry import Geometry
from kgpeft.tuners.shared_softmax import drops_weights, shared_read, text_mask


def _inputs(seed: int, per_query: bool, bias: bool):
    g = torch.Generator().manual_seed(seed)
    b, t, s, m, h, kv, d = 2, 5, 7, 4, 6, 2, 8  # grouped queries: 3 per key head; s - t = 2 keys from a cache

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    q, keys, values = rand(b, t, h, d), rand(b, kv, s, d), rand(b, kv, s, d)
    memory_keys, memory_values = rand(b, m, kv, d), rand(b, m, kv, d)
    attention = torch.ones(b, s, dtype=torch.bool)
    attention[1, :2] = False  # the second sample left-padded
    causal = torch.arange(s)[None, :] <= torch.arange(s - t, s)[:, None]
    mask = text_mask(attention[:, None, None, :] & causal, t, s, torch.float64, q.device)
    scores = (q.transpose(1, 2) @ keys.repeat_interleave(h // kv, 1).transpose(-1, -2)) * d**-0.5 + mask
    attended = (scores.softmax(-1) @ values.repeat_interleave(h // kv, 1)).transpose(1, 2).flatten(-2)
    slots = torch.ones(b, t if per_query else 1, m, dtype=torch.bool)
    slots[1, ..., 3:] = False  # the second sample has 3 real slots
    if per_query:  # a sliding window: the first query reads no slot, the second only the last
        slots[:, 0], slots[:, 1, :-1] = False, False
    slot_bias = torch.randn(b, m, generator=g, dtype=torch.float64) if bias else None
    gate = torch.tensor([1.0, 0.5, 0.0, -0.3, 0.9, 0.99], dtype=torch.float64)
    return (q, attended, keys, values, mask, memory_keys, memory_values, slots, slot_bias, gate)


@pytest.mark.parametrize("per_query", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("heads", [False, True])
def test_the_fused_read_is_the_read_from_the_log_sum_exp_in_value_and_gradient(per_query, bias, heads):
    """Also with each head's bias of its slots' scores (``memory_softmax='inline'``'s gates, read after the
    attention where its attention function cannot read them)."""
    inputs = _inputs(0, per_query, bias)
    geometry = Geometry(scaling=8**-0.5)
    by_head = {"heads": torch.linspace(-3.0, 0.0, 6, dtype=torch.float64)} if heads else {}
    fast, none = shared_read(*inputs, geometry, **by_head)
    slow, shares = shared_read(*inputs, geometry, shares=True, **by_head)
    assert none is None and shares.shape == (2, 6, 5, 4)
    torch.testing.assert_close(fast, slow)
    if per_query:  # a query without slots to read: exactly nothing
        assert fast[:, 0].abs().max() == 0
    leaves = [x for x in inputs if isinstance(x, torch.Tensor) and x.is_leaf and x.requires_grad]  # attended: from them
    weights = torch.randn(fast.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = torch.autograd.grad((fast * weights).sum(), leaves, retain_graph=True)
    want = torch.autograd.grad((slow * weights).sum(), leaves)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_an_attention_that_drops_weights_in_training_takes_the_read_from_the_log_sum_exp():
    """The fused read recomputes the text's attention without its dropout, so an attention that drops weights
    (Llama's ``attention_dropout``, BERT's and GPT-2's ``nn.Dropout``) takes the other path, in training only."""
    small = {"hidden_size": 16, "num_attention_heads": 2}
    modules = [
        (LlamaAttention(LlamaConfig(**small, attention_dropout=0.1), 0), LlamaAttention(LlamaConfig(**small), 0)),
        (
            BertSelfAttention(BertConfig(**small)),
            BertSelfAttention(BertConfig(**small, attention_probs_dropout_prob=0.0)),
        ),
        (
            GPT2Attention(GPT2Config(n_embd=16, n_head=2)),
            GPT2Attention(GPT2Config(n_embd=16, n_head=2, attn_pdrop=0.0, resid_pdrop=0.0)),
        ),
    ]
    for dropping, not_dropping in modules:
        assert drops_weights(dropping.train()) and not drops_weights(dropping.eval())
        assert not drops_weights(not_dropping.train())
