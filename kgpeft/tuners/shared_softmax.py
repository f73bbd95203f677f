r"""Memory slots that share the text's softmax: the facts read as a key/value prefix of attention.

With ``memory_softmax='own'`` (LLaMA-Adapter's design) the slots get a softmax of their own,
whose read is added to the attention's output: every query takes a full unit of attention
from the slots, whether or not it needs them, and the pretrained heads, which learned to
share one unit of attention between everything before them, never see the slots beside the
text. With ``memory_softmax='shared'`` the slots join the text's keys in one softmax, as if
the facts were text written before the prompt (their keys rotated there by
:func:`~kgpeft.tuners.memory.place_as_prefix`; where positions are added at the input, as in BERT or GPT-2,
each slot's key already holds its token's position in the fact's own text, and joins the text's as it is):

.. math::
    w = \sigma\big(\mathrm{lse}(q K_{mem}^\top s + \beta) - \mathrm{lse}(q K_{text}^\top s + m)\big), \qquad
    \mathrm{out} = W_o\big(a + \tanh(s_g g) \odot w \odot (\mathrm{softmax}(q K_{mem}^\top s + \beta) V_{mem} - a)\big)

where :math:`a` is the attention's output over the text, :math:`s` its scaling and :math:`m` its
mask: :math:`w` is the share of attention the slots take in the joint softmax, so with the gate
open (:math:`\tanh = 1`) the output is exactly the attention over ``[slots; text]``, the model
reading the facts' own keys and values at the positions of a prefix, and with the gate closed
it is exactly the model's own attention.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kgpeft.tuners.geometry import Geometry
from kgpeft.tuners.sites import AttentionSite


def _min(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).min


def _cache_layer(call: dict[str, Any]) -> Any:
    """The attention call's cache layer (``None`` without a cache)."""
    cache = next((call[k] for k in ("cache", "past_key_values", "layer_past") if call.get(k) is not None), None)
    layer = getattr(call["module"], "layer_idx", None)
    if cache is not None and layer is not None and hasattr(cache, "layers") and layer < len(cache.layers):
        return cache.layers[layer]
    return None


def past_states(call: dict[str, Any]) -> tuple[Tensor, Tensor] | None:
    """Before the attention call: the keys and values a sliding-window cache layer holds, which the call reads
    before its own and then trims to the window; ``None`` for any other layer (its cache keeps every key)."""
    layer = _cache_layer(call)
    if layer is None or not getattr(layer, "is_sliding", False) or not getattr(layer, "is_initialized", False):
        return None
    return (layer.keys, layer.values) if layer.keys.numel() else None


def text_states(site: AttentionSite, call: dict[str, Any], keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """The post-rotary keys and the values ``(B, H_kv, S, d)`` the attention call read: its cache's of the layer
    (this call's appended) when it has one, else this call's keys and values ``(B, T, H_kv * d)`` (the
    projections' outputs), the keys normalised and rotated to their positions as the layer does, after what a
    sliding-window cache held before the call (``call["past_states"]``, from :func:`past_states`)."""
    layer, past = _cache_layer(call), call.get("past_states")
    if layer is not None:
        held = 0 if past is None else past[0].size(-2)
        if not getattr(layer, "is_sliding", False) or layer.keys.size(-2) == held + keys.size(1):  # none trimmed
            return layer.keys, layer.values
    keys = site.geometry.keys(keys, site.num_kv_heads).unflatten(-1, (site.num_kv_heads, site.head_dim))
    keys = site.geometry.rotate(keys, call.get("position_embeddings")).transpose(1, 2)
    values = values.unflatten(-1, (site.num_kv_heads, site.head_dim)).transpose(1, 2)
    if past is None:
        return keys, values
    return torch.cat([past[0].to(keys.dtype), keys], dim=-2), torch.cat([past[1].to(values.dtype), values], dim=-2)


def text_mask(
    mask: Tensor | None, t: int, s: int, dtype: torch.dtype, device: torch.device, causal: bool = True
) -> Tensor:
    """The attention call's mask as an additive ``(B or 1, 1, T, S)`` bias; ``None``: every key for a bidirectional
    attention (an encoder's, unpadded), else causal, the last ``T`` of ``S`` keys being the queries'."""
    if mask is None and not causal:
        return torch.zeros(1, 1, t, s, dtype=dtype, device=device)
    if mask is None:
        rows = torch.arange(t, device=device)[:, None] + (s - t)
        keep = torch.arange(s, device=device)[None, :] <= rows
        return torch.zeros(t, s, dtype=dtype, device=device).masked_fill(~keep, _min(dtype))[None, None]
    mask = mask[..., -t:, :s]
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, _min(dtype))
    return mask.to(dtype).clamp(min=_min(dtype))


def drops_weights(attention: Any) -> bool:
    """Whether an attention module may drop attention weights in this call: in training, with a dropout probability
    above 0 (Llama's ``attention_dropout``, GPT-2's ``attn_pdrop``, ...) or an ``nn.Dropout`` inside it other than
    LoRA's (BERT's ``self.dropout``; also a dropout of the output, which the read does not mind: the check errs on
    the side of the slower, always right path)."""
    if not attention.training:
        return False
    for name in ("attention_dropout", "attn_pdrop", "dropout_p"):
        p = getattr(attention, name, None)
        if isinstance(p, int | float) and p > 0:
            return True
    return any(
        isinstance(m, torch.nn.Dropout) and m.p > 0 and not any(part.startswith("lora_") for part in n.split("."))
        for n, m in attention.named_modules()
    )


def slot_bias(mask: Tensor, bias: Tensor | None, heads: Tensor | None, dtype: torch.dtype) -> Tensor:
    """The slots' additive scores ``(B, H or 1, T or 1, M)`` from the slots each query reads ``mask (B, T or 1, M)``,
    the per-slot ``bias (B, M)`` and the heads' ``(H,)`` (``memory_softmax='inline'``'s gates); an unread slot at
    the dtype's least value."""
    scores = torch.zeros(mask.shape, dtype=dtype, device=mask.device)[:, None]
    if heads is not None:
        scores = scores + heads.to(dtype)[None, :, None, None]
    if bias is not None:
        scores = scores + bias.to(dtype)[:, None, None, :]
    return scores.masked_fill(~mask[:, None], _min(dtype))


def _heads(slots: Tensor, num_heads: int) -> Tensor:
    """``(B, H_kv, n, d)`` repeated for each query head that reads it: ``(B, H, n, d)``."""
    return slots.repeat_interleave(num_heads // slots.size(1), dim=1)


def shared_read(
    q: Tensor,
    attended: Tensor,
    keys: Tensor,
    values: Tensor,
    mask: Tensor,
    memory_keys: Tensor,
    memory_values: Tensor,
    slot_mask: Tensor,
    bias: Tensor | None,
    gate: Tensor,
    geometry: Geometry,
    shares: bool = False,
    dropped: bool = False,
    heads: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """What the slots change in the attention's output (see the module's docstring).

    Args:
        q: rotated queries ``(B, T, H, d)``.
        attended: the attention's output over the text ``(B, T, H * d)`` (the output projection's input).
        keys, values: the text's rotated keys and its values ``(B, H_kv, S, d)``; mask: from :func:`text_mask`.
        memory_keys, memory_values: the slots ``(B, M, H_kv, d)`` (keys placed as a prefix); slot_mask ``(B, T or 1,
            M)``, the slots each query reads.
        bias: ``(B, M)`` or ``None``; gate: ``(H,)``, the opened gate :math:`\\tanh(s_g g)`; geometry: the
            attention's scale and soft cap of scores.
        shares: also return each slot's share of the joint softmax.
        dropped: the attention dropped some of its weights (training with attention dropout), so ``attended`` is
            not the attention the text's keys and values give.
        heads: ``(H,)``, a bias of each head's slot scores (``memory_softmax='inline'``'s gates,
            :mod:`kgpeft.tuners.inline_read`, read here where the attention function cannot read them).

    Returns:
        The change ``(B, T, H * d)``, and with ``shares`` each slot's share of the joint softmax ``(B, H, T, M)``
        (else ``None``).

    The change is ``gate * (joint - attended)``, where ``joint`` is the attention over ``[slots; text]``: one fused
    :func:`~torch.nn.functional.scaled_dot_product_attention` call, which costs about what the layer's own attention
    does (the same function of the queries, keys and values as the fallback, so the same gradients). Computing the
    slots' share from the text's log-sum-exp instead (the fallback, for a soft cap of scores, a bias that takes a
    gradient, recorded shares, or an attention that drops weights, whose dropout a recomputed ``joint`` would
    undo) recomputes every text score outside a fused kernel.
    """
    b, t, h, d = q.shape
    q = q.transpose(1, 2)  # (B, H, T, d)
    mk, mv = (x.to(q.dtype).transpose(1, 2) for x in (memory_keys, memory_values))  # (B, H_kv, M, d)
    reads = slot_mask.any(-1).to(q.dtype)[:, None, :, None]  # (B, 1, T or 1, 1): a query without slots reads nothing
    text = attended.view(b, t, h, d).transpose(1, 2)
    opened = gate.to(q.dtype)[None, :, None, None]
    grad_bias = bias is not None and bias.requires_grad
    if geometry.softcap is None and not (shares or grad_bias or dropped):
        scores = slot_bias(slot_mask, bias, heads, q.dtype)  # (B, H or 1, T or 1, M)
        n = scores.size(1)
        full = torch.cat([scores.expand(b, n, t, -1), mask.to(q.dtype).expand(b, n, t, -1)], dim=-1)
        k, v = (_heads(torch.cat([m, x.to(q.dtype)], dim=-2), h) for m, x in ((mk, keys), (mv, values)))
        joint = F.scaled_dot_product_attention(q, k, v, attn_mask=full, scale=geometry.scaling)
        change = opened * reads * (joint - text)
        return change.transpose(1, 2).reshape(b, t, h * d), None
    lse_text = torch.logsumexp(geometry.scores(q, _heads(keys.to(q.dtype), h)) + mask, dim=-1)
    mk, mv = _heads(mk, h), _heads(mv, h)  # (B, H, M, d)
    logits = geometry.scores(q, mk)  # (B, H, T, M)
    if bias is not None:
        logits = logits + bias.to(q.dtype)[:, None, None, :]
    if heads is not None:
        logits = logits + heads.to(q.dtype)[None, :, None, None]
    logits = logits.masked_fill(~slot_mask[:, None], _min(logits.dtype))  # bf16 under autocast, whatever q is
    share = torch.sigmoid(torch.logsumexp(logits, dim=-1) - lse_text)  # (B, H, T): the slots' part of the softmax
    share = share * reads[..., 0]
    softmax = torch.softmax(logits, dim=-1)
    change = opened * share[..., None] * (softmax @ mv - text)
    return change.transpose(1, 2).reshape(b, t, h * d), softmax * share[..., None] if shares else None
