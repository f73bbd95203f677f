"""Encoding facts into memory slots: the model run over each sample's facts, every layer's keys and values kept.

:func:`encode_memory` is what ``memory`` mode's state is made of (:mod:`kgpeft.tuners.memory` reads it); a
:class:`FactMemory` holds the slots of a batch, and ``prefix`` mode builds one from its soft tokens.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from peft.tuners.lora import LoraLayer
from torch import Tensor, nn

from kgpeft.tuners.packing import Packing, accepts, pack
from kgpeft.tuners.sites import AttentionSite


def fact_encoder(model: nn.Module) -> nn.Module:
    """The layers that encode the facts: a decoder-only model's body, an encoder's, an encoder-decoder's encoder.

    An encoder-decoder reads memory in its encoder's self-attention only: the encoder computes the facts' keys and
    values from their tokens alone, as it would for text, while its decoder's would depend on a source the facts
    do not have; the decoder reads the facts through its cross-attention to the encoder's states.
    """
    if getattr(model.config, "is_encoder_decoder", False):
        return model.get_encoder()
    # the layers alone: a causal LM's vocabulary projection of the fact tokens is never read
    return model.get_decoder() if hasattr(model, "get_decoder") else model


@dataclass
class FactMemory:
    """Per-layer memory slots of a batch.

    Attributes:
        keys: per layer ``(B, M, H_kv, d_h)``, before the rotary embedding.
        values: per layer ``(B, M, H_kv, d_h)``.
        mask: ``(B, M)``, ``True`` for real slots.
        bias: ``(B, M)`` additive attention bias per slot, or ``None``.
    """

    keys: list[Tensor]
    values: list[Tensor]
    mask: Tensor
    bias: Tensor | None = None

    def expand_to(self, batch_size: int) -> FactMemory:
        b = self.mask.size(0)
        if batch_size == b:
            return self
        k = batch_size // b

        def rep(t):
            return None if t is None else t.repeat_interleave(k, dim=0)

        return FactMemory([rep(t) for t in self.keys], [rep(t) for t in self.values], rep(self.mask), rep(self.bias))


def _lora_delta(module: nn.Module, x: Tensor) -> Tensor | None:
    """What the active LoRA adapters of ``module`` add to its output for the input ``x``; ``None``: not a LoRA layer,
    or none of its adapters active."""
    if not isinstance(module, LoraLayer) or module.disable_adapters:
        return None
    deltas = [
        module.lora_B[a](module.lora_A[a](module.lora_dropout[a](x.to(module.lora_A[a].weight.dtype))))
        * module.scaling[a]
        for a in module.active_adapters
        if a in module.lora_A
    ]
    return sum(deltas) if deltas else None


def encode_memory(
    base_model: nn.Module,
    sites: list[AttentionSite],
    fact_ids: Tensor,
    fact_mask: Tensor,
    grad: bool = False,
    together: bool = False,
    projection_grad: bool = False,
) -> FactMemory:
    """Run the model over each sample's facts and keep every layer's keys and values.

    Args:
        base_model: the model that encodes the facts (the caller disables its adapters for a frozen encoder).
        sites: from :func:`attention_layout`, on the same model.
        fact_ids: ``(B, F, L)`` token ids of up to ``F`` facts per sample, ``L`` tokens each.
        fact_mask: ``(B, F, L)``, ``True`` for real tokens (a fact of no tokens is no fact).
        grad: keep the graph of the encoding (when grad is enabled), so the slots pass gradients to the encoder.
        together: encode a sample's facts as one sequence of its real tokens, in order (each fact reads the
            ones before it); else each fact alone.
        projection_grad: without ``grad``, keep the gradient of the key and value projections' LoRA (when grad is
            enabled): the slots pass gradients to each layer's key and value LoRA, not to the layers below.

    Returns:
        :class:`FactMemory` with ``M = F * L`` slots per sample.
    """
    b, f, length = fact_ids.shape
    keep_projections = projection_grad and not grad and torch.is_grad_enabled()
    # one row per fact, or per sample (its facts' padding inside the row, skipped by the positions)
    n = b if together else b * f
    flat_ids, flat_mask = fact_ids.reshape(n, -1), fact_mask.reshape(n, -1)
    rows = flat_mask.any(-1)  # run only real facts
    encoder = fact_encoder(base_model)
    inputs, packing = _fact_pass(encoder, flat_ids[rows], flat_mask[rows], together) if bool(rows.any()) else ({}, None)
    captured: dict[int, dict[str, Tensor]] = {}
    deltas: dict[int, dict[str, Tensor | None]] = {}  # with projection_grad: each projection's LoRA part, with grad
    handles = []
    for i, site in enumerate(sites):  # a fused projection's output ("k") holds the values too
        for kind, proj in (("k", site.key), ("v", site.value)) if site.layout is None else (("k", site.key),):

            def hook(module, args, output, i=i, kind=kind):  # the tokens' call: DeBERTa's position calls come after
                if keep_projections and kind not in captured.get(i, {}):
                    with torch.enable_grad():
                        deltas.setdefault(i, {})[kind] = _lora_delta(module, args[0])
                captured.setdefault(i, {}).setdefault(kind, output)

            handles.append(proj.register_forward_hook(hook))
    try:
        with nullcontext() if grad else torch.no_grad():
            if inputs:
                encoder(**(packing.inputs() if packing is not None else inputs))
        # with the caller's gradient mode: a projection's gradient reaches its slots through the key norms
        with nullcontext() if grad or keep_projections else torch.no_grad():
            # keys normalised as the layer normalises them (Qwen3, OLMo-2); OLMo's clip_qkv clamps the projections'
            # outputs in place, so the hooks hold them clipped
            for i, site in enumerate(sites):
                if i in captured:
                    for kind, delta in deltas.get(i, {}).items():
                        if delta is not None:  # the same values (clipped in place, OLMo's); the LoRA's gradient
                            captured[i][kind] = captured[i][kind] + (delta - delta.detach()).to(captured[i][kind].dtype)
                    if site.layout is not None:
                        captured[i]["k"], captured[i]["v"] = site.split_keys_values(captured[i]["k"])
                    captured[i]["k"] = site.geometry.keys(captured[i]["k"], site.num_kv_heads)
    finally:
        for h in handles:
            h.remove()
    keys, values = [], []
    for i, site in enumerate(sites):
        for kind, out in (("k", keys), ("v", values)):
            full = fact_ids.new_zeros((n, flat_ids.size(1), site.num_kv_heads * site.head_dim), dtype=torch.float32)
            if i in captured:
                states = captured[i][kind]
                if packing is not None:  # back to the rows, zeros at their padding
                    states = packing.unpack(states, int(rows.sum()), flat_ids.size(1))
                full = full.to(states.dtype).index_put((rows.nonzero()[:, 0],), states)
            out.append(full.view(b, f * length, site.num_kv_heads, site.head_dim))
    return FactMemory(keys, values, fact_mask.reshape(b, f * length))


def _fact_pass(encoder: nn.Module, ids: Tensor, mask: Tensor, together: bool) -> tuple[dict, Packing | None]:
    """The padded fact pass's arguments for the rows ``ids`` ``(n, L)``, and their packing (``None``: run padded).

    Facts together: a sample's facts are one row with their padding inside it, the positions skipping the padding.
    """
    inputs = {"input_ids": ids, "attention_mask": mask.long()}
    if together:
        inputs["position_ids"] = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    if accepts(encoder, "use_cache"):  # no cache of the facts' keys and values: the hooks keep them
        inputs["use_cache"] = False
    return inputs, pack(encoder, inputs)
