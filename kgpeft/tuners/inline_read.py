r"""Memory slots read inside the attention itself: one attention over ``[slots; text]``.

``memory_softmax='shared'`` reads the slots after the layer's attention: it computes the attention
over ``[slots; text]`` a second time and moves the layer's output towards it behind the gate, so
every layer attends twice (measured: the main job's step 1.23x plain LoRA's with the facts encoded
by the frozen model, of which the second attention and its backward are half). With
``memory_softmax='inline'`` the layer's own attention function reads the slots: the keys and values
the layer hands it are prefixed with the slots', and its mask with the slots' scores' bias

.. math::
    \mathrm{out} = W_o\,\mathrm{Attn}\big(q, [K_{mem}; K], [V_{mem}; V];\ [\beta + \log\tanh(s g);\ m]\big)

where :math:`\beta` is the per-slot bias (the fact scorer's log-probabilities, trained jointly) and
each head's gate :math:`\tanh(s g)` scales the slots' weight before the softmax normalises it (a
share :math:`w` becomes :math:`\tanh(s g)\,w / (1 - w + \tanh(s g)\,w)`, against ``shared``'s
:math:`\tanh(s g)\,w`): an open gate (1) reads the facts as a key/value prefix, exactly ``shared``'s
open gate; a gate at 0 would be a bias of :math:`-\infty` that no gradient opens, so ``inline``
needs an opening above 0 (the main job's 0.99). One attention call, the cost of the facts' length
as prompt text, without its tokens.

How: each attention module that reads the memory gets a copy of its config whose
``_attn_implementation`` is :data:`INLINE`, a function registered with transformers'
``AttentionInterface`` that extends the keys, values and mask and calls the implementation the
model had (``sdpa`` or ``eager``: those take an additive mask). Without memory it is that
implementation, unchanged. A layer that never calls its attention through the interface, or under
another implementation (flash, flex), or whose read is recorded (:mod:`kgpeft.explain`), reads the
same function after its attention instead (:func:`~kgpeft.tuners.shared_softmax.shared_read`), at
the cost of ``shared``.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AttentionInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from kgpeft.tuners.gate import MemoryGate
from kgpeft.tuners.shared_softmax import slot_bias, text_mask

#: The attention implementation name of a layer that reads its memory inline.
INLINE = "kgpeft_inline"
#: The implementations :data:`INLINE` wraps: those given an additive mask tensor.
KERNELS = ("sdpa", "eager")
#: A gate's least opening: below it the slots' bias is held at log(1e-12), a closed gate.
_CLOSED = 1e-12

#: A layer's read: from the attention function's module, queries, keys, values, mask and keyword arguments, what it
#: reads instead (:class:`Extended`), or ``None`` (no memory, or another adapter's).
Read = Callable[[nn.Module, Tensor, Tensor, Tensor, Tensor | None, dict[str, Any]], "Extended | None"]


def head_bias(gate: MemoryGate) -> Tensor:
    """Each head's bias on its slots' scores ``(H,)``: :math:`\\log\\tanh(s g)`."""
    return torch.log(torch.tanh(gate.scale * gate.gate).clamp_min(_CLOSED))


def _eager(module: nn.Module) -> Callable | None:
    return getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)


def _own_attention(module: nn.Module) -> Callable:
    """The attention function the module's model had before :func:`install`."""
    name = module._kgpeft_implementation
    return _eager(module) if name == "eager" else ALL_ATTENTION_FUNCTIONS.get_interface(name, _eager(module))


def inline_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask, **kwargs):
    """The :data:`INLINE` attention function: the module's own, over what the first memory read that reads (the
    active adapter's) gives it (:class:`Extended`)."""
    own = _own_attention(module)
    for read in module._kgpeft_reads:
        x = read(module, query, key, value, attention_mask, kwargs)
        if x is not None:
            call = _grouped_sdpa if _grouped(module, x) else own
            out, weights = call(module, x.query, x.key, x.value, x.mask, **x.kwargs)
            return (out if x.width is None else out[..., : x.width]), weights
    return own(module, query, key, value, attention_mask, **kwargs)


def _grouped(module: nn.Module, x: Extended) -> bool:
    """Whether ``sdpa`` reads ``x`` with grouped queries on a CPU: transformers' function copies each key/value
    head to its queries' heads (``repeat_kv``) whenever there is a mask, as CUDA's kernels need; the CPU's fused
    kernel takes a mask with grouped heads (a layer's forward and backward at 8 x 128 queries over 148 keys: 23.1
    against 27.8 ms, the same outputs, ``python -m benchmarks.grouped_sdpa``), so there the copies and their
    backward's sums are spared."""
    plain = not any(x.kwargs.get(k) for k in ("position_bias", "softcap", "output_attentions"))
    return (
        plain
        and module._kgpeft_implementation == "sdpa"
        and x.query.device.type == "cpu"
        and x.query.size(1) != x.key.size(1)
    )


def _grouped_sdpa(module, query, key, value, mask, dropout: float = 0.0, scaling: float | None = None, **_):
    """transformers' ``sdpa_attention_forward`` for a mask (so not causal by flag), its grouped queries read by the
    kernel (``enable_gqa``)."""
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling, enable_gqa=True
    )
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(INLINE, inline_attention)


class InlineHandle:
    """Undoes :func:`install` (a hook handle's ``remove``): the read goes, and with the module's last read, its
    config of its own."""

    def __init__(self, attention: nn.Module, read: Read) -> None:
        self.attention, self.read = attention, read

    def remove(self) -> None:
        reads = getattr(self.attention, "_kgpeft_reads", [])
        if self.read in reads:
            reads.remove(self.read)
        if not reads and hasattr(self.attention, "_kgpeft_reads"):
            self.attention.config = self.attention._kgpeft_config
            del self.attention._kgpeft_reads, self.attention._kgpeft_implementation, self.attention._kgpeft_config


def install(attention: nn.Module, read: Read) -> InlineHandle | None:
    """Let ``attention`` read its memory inside its attention function (``read`` gives the keys, values and mask
    with the slots, or ``None``: no memory, or another adapter's); ``None`` where its implementation is not one of
    :data:`KERNELS` (the caller reads after the attention)."""
    # the module that calls the attention function: the site's, or the first below it with a config (BERT's self)
    attention = next(
        (m for m in attention.modules() if hasattr(getattr(m, "config", None), "_attn_implementation")), attention
    )
    if not hasattr(attention, "_kgpeft_reads"):
        config = getattr(attention, "config", None)
        name = getattr(config, "_attn_implementation", None)
        if name not in KERNELS or (name == "eager" and _eager(attention) is None):
            return None
        attention._kgpeft_implementation, attention._kgpeft_config, attention._kgpeft_reads = name, config, []
        attention.config = copy.copy(config)  # the layer's own: the model's config (and its masks) stay as they were
        attention.config._attn_implementation_internal = INLINE  # not the setter: it renames the sub-configs' too
    attention._kgpeft_reads.append(read)
    return InlineHandle(attention, read)


@dataclass
class Extended:
    """What the attention function reads instead of the layer's own: queries, keys and values with the slots', the
    mask, the keyword arguments, and the width of the output to keep (``None``: all of it)."""

    query: Tensor
    key: Tensor
    value: Tensor
    mask: Tensor
    kwargs: dict[str, Any]
    width: int | None = None


def extend(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    kwargs: dict[str, Any],
    slot_keys: Tensor,
    slot_values: Tensor,
    visible: Tensor,
    heads: Tensor,
    bias: Tensor | None,
) -> Extended:
    """The keys and values ``(B, H_kv, M + S, d)`` with the slots' ``(B, M, H_kv, d)`` before them, and the mask
    ``(B, H or 1, T, M + S)``: the slots each query reads ``visible (B, T or 1, M)``, biased by each head's ``heads
    (H,)`` and each slot's ``bias (B, M)``, before the text's mask (the call's, or causal as ``sdpa`` makes it
    without one).

    A mask that takes a gradient (a gate or a fact scorer in training) would turn ``sdpa`` on a CPU to its unfused
    kernel (measured: 30.9 against 25.5 ms for a layer's forward and backward, 8 x 128 queries over 148 keys):
    there the biases are two more channels of the queries and keys instead, whose product is the bias (queries
    ``[q, b_h, 1]``, slot keys ``[k, 1/s, beta/s]``, text keys ``[k, 0, 0]``, values padded with zeros), and the
    mask only says which keys each query reads."""
    b, h, t, d = query.shape
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal
    if attention_mask is None and causal and t > 1 and key.size(-2) > t:  # sdpa's prefill of an empty static cache
        key, value = key[..., :t, :], value[..., :t, :]
    text = text_mask(attention_mask, t, key.size(-2), query.dtype, query.device, bool(causal))
    slot_keys, slot_values = slot_keys.transpose(1, 2).to(key.dtype), slot_values.transpose(1, 2).to(value.dtype)
    trained = torch.is_grad_enabled() and (heads.requires_grad or (bias is not None and bias.requires_grad))
    # CUDA's memory-efficient kernel takes a mask with a gradient (and wants a head size of a multiple of 8)
    channels = trained and query.device.type == "cpu" and module._kgpeft_implementation == "sdpa"
    if not channels or kwargs.get("softcap") is not None:
        slots = slot_bias(visible, bias, heads, query.dtype)  # (B, H, T or 1, M)
        mask = torch.cat([slots.expand(b, h, t, -1), text.expand(b, h, t, -1)], dim=-1)
        key, value = torch.cat([slot_keys, key], dim=-2), torch.cat([slot_values, value], dim=-2)
        return Extended(query, key, value, mask, kwargs)
    scaling = kwargs.get("scaling") or d**-0.5
    n, m = key.size(1), slot_keys.size(-2)
    ones = query.new_ones(b, h, t, 1)
    query = torch.cat([query, heads.to(query.dtype)[None, :, None, None] * ones, ones], dim=-1)
    beta = query.new_zeros(b, m) if bias is None else bias.to(query.dtype)
    slot_keys = torch.cat(
        [
            slot_keys,
            slot_keys.new_full((b, n, m, 1), 1 / scaling),
            (beta / scaling)[:, None, :, None].expand(b, n, m, 1),
        ],
        dim=-1,
    )
    key = torch.cat([slot_keys, F.pad(key, (0, 2))], dim=-2)
    value = F.pad(torch.cat([slot_values, value], dim=-2), (0, 2))
    slots = slot_bias(visible, None, None, query.dtype)  # (B, 1, T or 1, M): 0 or the least value
    mask = torch.cat([slots.expand(b, 1, t, -1), text.expand(b, 1, t, -1)], dim=-1)
    return Extended(query, key, value, mask, {**kwargs, "scaling": scaling}, width=d)
