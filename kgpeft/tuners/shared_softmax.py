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


def past_keys(call: dict[str, Any]) -> Tensor | None:
    """Before the attention call: the keys a sliding-window cache layer holds, which the call reads before its own
    and then trims to the window; ``None`` for any other layer (its cache keeps every key)."""
    layer = _cache_layer(call)
    if layer is None or not getattr(layer, "is_sliding", False) or not getattr(layer, "is_initialized", False):
        return None
    return layer.keys if layer.keys.numel() else None


def text_keys(site: AttentionSite, call: dict[str, Any], keys: Tensor) -> Tensor:
    """The post-rotary keys ``(B, H_kv, S, d)`` the attention call read: its cache's keys of the layer (this
    call's appended) when it has one, else this call's keys ``(B, T, H_kv * d)`` (the key projection's output)
    normalised and rotated to their positions as the layer does, after what a sliding-window cache held before
    the call (``call["past_keys"]``, from :func:`past_keys`)."""
    layer, past = _cache_layer(call), call.get("past_keys")
    if layer is not None:
        held = 0 if past is None else past.size(-2)
        if not getattr(layer, "is_sliding", False) or layer.keys.size(-2) == held + keys.size(1):  # none trimmed
            return layer.keys
    keys = site.geometry.keys(keys, site.num_kv_heads).unflatten(-1, (site.num_kv_heads, site.head_dim))
    keys = site.geometry.rotate(keys, call.get("position_embeddings")).transpose(1, 2)
    return keys if past is None else torch.cat([past.to(keys.dtype), keys], dim=-2)


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


def _heads(slots: Tensor, num_heads: int) -> Tensor:
    """``(B, H_kv, n, d)`` repeated for each query head that reads it: ``(B, H, n, d)``."""
    return slots.repeat_interleave(num_heads // slots.size(1), dim=1)


def shared_read(
    q: Tensor,
    attended: Tensor,
    keys: Tensor,
    mask: Tensor,
    memory_keys: Tensor,
    memory_values: Tensor,
    slot_mask: Tensor,
    bias: Tensor | None,
    gate: Tensor,
    geometry: Geometry,
) -> tuple[Tensor, Tensor]:
    """What the slots change in the attention's output (see the module's docstring).

    Args:
        q: rotated queries ``(B, T, H, d)``.
        attended: the attention's output over the text ``(B, T, H * d)`` (the output projection's input).
        keys: the text's rotated keys ``(B, H_kv, S, d)``; mask: from :func:`text_mask`.
        memory_keys, memory_values: the slots ``(B, M, H_kv, d)`` (keys placed as a prefix); slot_mask ``(B, T or 1,
            M)``, the slots each query reads.
        bias: ``(B, M)`` or ``None``; gate: ``(H,)``, the opened gate :math:`\\tanh(s_g g)`; geometry: the
            attention's scale and soft cap of scores.

    Returns:
        The change ``(B, T, H * d)``, and each slot's share of the joint softmax ``(B, H, T, M)``.
    """
    b, t, h, d = q.shape
    q = q.transpose(1, 2)  # (B, H, T, d)
    lse_text = torch.logsumexp(geometry.scores(q, _heads(keys.to(q.dtype), h)) + mask, dim=-1)
    mk, mv = (_heads(x.to(q.dtype).transpose(1, 2), h) for x in (memory_keys, memory_values))  # (B, H, M, d)
    logits = geometry.scores(q, mk)  # (B, H, T, M)
    if bias is not None:
        logits = logits + bias.to(q.dtype)[:, None, None, :]
    logits = logits.masked_fill(~slot_mask[:, None], _min(logits.dtype))  # bf16 under autocast, whatever q is
    share = torch.sigmoid(torch.logsumexp(logits, dim=-1) - lse_text)  # (B, H, T): the slots' part of the softmax
    share = share * slot_mask.any(-1).to(q.dtype)[:, None]  # a query without slots to read: exactly nothing
    softmax = torch.softmax(logits, dim=-1)
    text = attended.view(b, t, h, d).transpose(1, 2)
    change = gate.to(q.dtype)[None, :, None, None] * share[..., None] * (softmax @ mv - text)
    return change.transpose(1, 2).reshape(b, t, h * d), softmax * share[..., None]
