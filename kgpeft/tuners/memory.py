r"""Fact memory: graph-selected facts read by attention as the model's own key/value states.

The knowledge path that works is the one the model can copy from. Each selected fact
(``"dog hypernym canine"``) is run once through the frozen base model, and its tokens'
key and value states of every layer become memory slots of that layer. Each text token
then attends over its sample's slots, beside (not inside) its ordinary attention, and
the result enters through the layer's output projection behind a per-head gate:

.. math::
    \mathrm{out} = W_o\big(\mathrm{Attn}(q, K, V) + \tanh(s g) \odot
    \mathrm{softmax}\big(q K_{mem}^\top / \sqrt{d_h} + \beta\big) V_{mem}\big)

as LLaMA-Adapter's zero-initialised gated attention does. The gate :math:`g` starts at
zero, so a fresh adapter computes exactly the base model; a sample without memory slots
adds exactly nothing (plain LoRA). By default queries and memory keys are taken before the
rotary position embedding: slots carry no position of the text (their dot products are those
of two tokens at the same position), so no text position moves. ``memory_positions='prefix'``
places them where the fact's tokens would sit as text just before the prompt, and
``memory_softmax='shared'`` reads them in the text's own softmax
(:mod:`kgpeft.tuners.shared_softmax`). :math:`\beta` is an optional per-slot bias, the
log-probability the fact scorer gives the slot's fact (fed when the scorer trains jointly).

It hooks the attention's query and output projections (``q_proj`` / ``o_proj`` in
Llama-style models), so the architecture needs separate ones; :func:`attention_layout`
finds them in the shared table (:mod:`kgpeft.tuners.sites`) and refuses others with a message.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgpeft.errors import KGPeftError
from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import KnowledgeState
from kgpeft.tuners.mode import KnowledgeMode
from kgpeft.tuners.shared_softmax import rotate, shared_read, text_keys, text_mask
from kgpeft.tuners.sites import QKVO, AttentionSite, attention_sites


class FactMemoryError(KGPeftError, ValueError):
    """The model's attention has no separate query and output projections for memory slots."""


def attention_layout(model: nn.Module) -> list[AttentionSite]:
    """The attention layers of ``model`` in order, with separate q/k/v/o projections.

    Raises:
        FactMemoryError: for a model with fused or differently named projections.
    """
    sites = [site for site in attention_sites(model, "memory", FactMemoryError) if site.paths == QKVO]
    if not sites or getattr(model.config, "num_attention_heads", None) is None:
        raise FactMemoryError(
            f"knowledge_mode='memory' reads facts through separate q_proj/k_proj/v_proj/o_proj attention "
            f"projections (Llama, Mistral, Qwen2, Gemma, ...); {type(model).__name__} has none."
        )
    return sites


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


def encode_memory(
    base_model: nn.Module,
    sites: list[AttentionSite],
    fact_ids: Tensor,
    fact_mask: Tensor,
    grad: bool = False,
    together: bool = False,
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

    Returns:
        :class:`FactMemory` with ``M = F * L`` slots per sample.
    """
    b, f, length = fact_ids.shape
    captured: dict[int, dict[str, Tensor]] = {}
    handles = []
    for i, site in enumerate(sites):
        for kind, proj in (("k", site.key), ("v", site.value)):

            def hook(module, args, output, i=i, kind=kind):
                captured.setdefault(i, {})[kind] = output

            handles.append(proj.register_forward_hook(hook))
    # one row per fact, or per sample (its facts' padding inside the row, skipped by the positions)
    n = b if together else b * f
    flat_ids, flat_mask = fact_ids.reshape(n, -1), fact_mask.reshape(n, -1)
    rows = flat_mask.any(-1)  # run only real facts
    try:
        with nullcontext() if grad else torch.no_grad():
            if bool(rows.any()):
                mask = flat_mask[rows].long()
                # the layers alone: a causal LM's vocabulary projection of the fact tokens is never read
                body = base_model.get_decoder() if hasattr(base_model, "get_decoder") else base_model
                positions = {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)} if together else {}
                body(input_ids=flat_ids[rows], attention_mask=mask, **positions)
    finally:
        for h in handles:
            h.remove()
    keys, values = [], []
    for i, site in enumerate(sites):
        for kind, out in (("k", keys), ("v", values)):
            full = fact_ids.new_zeros((n, flat_ids.size(1), site.num_kv_heads * site.head_dim), dtype=torch.float32)
            if i in captured:
                full = full.to(captured[i][kind].dtype).index_put((rows.nonzero()[:, 0],), captured[i][kind])
            out.append(full.view(b, f * length, site.num_kv_heads, site.head_dim))
    return FactMemory(keys, values, fact_mask.reshape(b, f * length))


def rotary_embedding(model: nn.Module) -> nn.Module:
    """The module that gives ``model``'s rotary ``(cos, sin)`` for position ids (``LlamaRotaryEmbedding``, ...).

    Raises:
        FactMemoryError: a model without one (``memory_positions='prefix'`` needs it).
    """
    for module in model.modules():
        if type(module).__name__.endswith("RotaryEmbedding") and hasattr(module, "inv_freq"):
            return module
    raise FactMemoryError(
        f"`memory_positions='prefix'` places memory slots with the model's rotary position embedding, and "
        f"{type(model).__name__} has none; use memory_positions='none'."
    )


def prefix_positions(mask: Tensor) -> Tensor:
    """Each slot's position ``(B, M)`` were its sample's real slots text just before the prompt's first token
    (position 0): the last real slot at -1, the first at ``-n``."""
    counts = mask.long().cumsum(-1)
    return counts - 1 - counts[:, -1:]


def place_as_prefix(memory: FactMemory, rotary: nn.Module) -> FactMemory:
    """``memory`` with every layer's keys rotated to :func:`prefix_positions` of its slots."""
    if not memory.keys:
        return memory
    cos, sin = rotary(memory.keys[0], prefix_positions(memory.mask))
    return FactMemory([rotate(k, cos, sin) for k in memory.keys], memory.values, memory.mask, memory.bias)


def _heads(slots: Tensor, num_heads: int, dtype: torch.dtype) -> Tensor:
    """Slots ``(B, M, H_kv, d)`` repeated for each query head that reads them: ``(B, H, M, d)``."""
    return slots.to(dtype).repeat_interleave(num_heads // slots.size(2), dim=2).transpose(1, 2)


def _gated_read(
    q: Tensor, keys: Tensor, values: Tensor, mask: Tensor, bias: Tensor | None, has_slots: Tensor, gate: Tensor
) -> tuple[Tensor, Tensor]:
    """The attention of the queries ``q (B, T, H * d)`` over the slots ``keys, values (B, M, H_kv, d)``,
    gated per head by ``gate (1, H, 1, 1)``.

    Returns the softmax of the attention logits ``(B, H, T, M)`` and the gated read
    ``(B, H, T, d)``, to which a sample without slots (``has_slots`` 0) gives zero.
    """
    b, t, _ = q.shape
    h, d = gate.size(1), keys.size(-1)
    k, v = _heads(keys, h, q.dtype), _heads(values, h, q.dtype)  # (B, H, M, d)
    q = q.view(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
    logits = q @ k.transpose(-1, -2) * d**-0.5  # (B, H, T, M)
    if bias is not None:
        logits = logits + bias
    logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    softmax = F.softmax(logits, dim=-1)
    return softmax, ((softmax * has_slots) @ v) * gate


class _GatedRead(torch.autograd.Function):
    """:func:`_gated_read` keeping only the softmax weights for backward, for frozen slots.

    Autograd would keep, per layer until backward, the softmax, the weights times
    ``has_slots``, the slots repeated per query head and the ungated read ``(B, H, T, d)``:
    3.8 MiB per layer in the overhead benchmark's batch. Here only the softmax
    ``(B, H, T, M)`` is kept, beside the slots the memory holds anyway; backward rebuilds the
    rest and runs autograd's own derivative of each operation on the same values, so the
    gradients are bit-identical to autograd's (tested). The query is not kept: the derivative
    of ``q @ k^T`` with respect to ``q`` reads only ``k``, so it runs on a zero stand-in.
    """

    @staticmethod
    def forward(ctx, q, keys, values, mask, bias, has_slots, gate):
        softmax, out = _gated_read(q, keys, values, mask, bias, has_slots, gate)
        ctx.save_for_backward(softmax, keys, values, mask, has_slots, gate)
        ctx.q_shape, ctx.q_dtype = q.shape, q.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        softmax, keys, values, mask, has_slots, gate = ctx.saved_tensors
        h = gate.size(1)
        k, v = _heads(keys, h, ctx.q_dtype), _heads(values, h, ctx.q_dtype)  # (B, H, M, d)
        with torch.enable_grad():
            leaf = softmax.detach().requires_grad_()
            gate_leaf = gate.detach().requires_grad_(ctx.needs_input_grad[6])
            out = ((leaf * has_slots) @ v) * gate_leaf
            inputs = (leaf, gate_leaf) if gate_leaf.requires_grad else (leaf,)
            grads = torch.autograd.grad(out, inputs, grad_out)
        grad_gate = grads[1] if gate_leaf.requires_grad else None
        grad_logits = torch._softmax_backward_data(grads[0], softmax, -1, softmax.dtype)
        grad_logits = grad_logits.masked_fill(~mask, 0) * k.size(-1) ** -0.5
        grad_q = None
        if ctx.needs_input_grad[0]:
            b, t, _ = ctx.q_shape
            d = k.size(-1)
            with torch.enable_grad():
                stand_in = k.new_zeros(ctx.q_shape).requires_grad_()
                logits = stand_in.view(b, t, h, d).transpose(1, 2) @ k.transpose(-1, -2)
                (grad_q,) = torch.autograd.grad(logits, stand_in, grad_logits)
        return grad_q, None, None, None, None, None, grad_gate


class MemoryGate(nn.Module):
    r"""The zero-initialised per-head gate :math:`\tanh(s \cdot g)` and the read of one layer's memory.

    The scale :math:`s` is a learning-rate multiplier in disguise: Adam moves :math:`g` by about
    the learning rate per step whatever the gradient, so with :math:`s = 1` (LLaMA-Adapter's
    gate) a gate opens by only ~0.07 in the main job's 120 steps at 1e-3, and the memory barely
    speaks (measured: mean :math:`|g|` 0.02 after training).

    Args:
        num_heads (int): query heads of the layer.
        scale (float): the gate's scale :math:`s`. (default: ``1.0``)

    Shapes:
        - q: ``(B, T, H * d_h)`` (the query projection's output, before the rotary embedding)
        - memory keys / values: ``(B, M, H_kv, d_h)``; mask ``(B, M)``; bias ``(B, M)``
        - output: ``(B, T, H * d_h)``
    """

    def __init__(self, num_heads: int, scale: float = 1.0, opening: float = 0.0) -> None:
        super().__init__()
        self.scale = scale
        self.opening = opening
        self.gate = nn.Parameter(torch.full((num_heads,), math.atanh(opening) / scale))
        self.record: list[Tensor] | None = None  # set by kgpeft.explain to keep the gated attention weights

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gate, math.atanh(self.opening) / self.scale)

    def forward(self, q: Tensor, keys: Tensor, values: Tensor, mask: Tensor, bias: Tensor | None) -> Tensor:
        b, t, _ = q.shape
        h, d = self.gate.numel(), keys.size(-1)
        bias = None if bias is None else bias.to(q.dtype)[:, None, None, :]  # (B, 1, 1, M)
        mask = mask[:, None, None, :]  # (B, 1, 1, M)
        has_slots = mask.any(-1, keepdim=True).to(q.dtype)  # (B, 1, 1, 1): a sample without slots reads nothing
        gate = torch.tanh(self.scale * self.gate).to(q.dtype)[None, :, None, None]  # (1, H, 1, 1)
        # the custom backward gives no gradient to the slots nor to a bias (the fact scorer's, trained jointly)
        frozen_memory = not (keys.requires_grad or values.requires_grad or (bias is not None and bias.requires_grad))
        if self.record is None and frozen_memory and torch.is_grad_enabled():
            out = _GatedRead.apply(q, keys, values, mask, bias, has_slots, gate)  # (B, H, T, d)
        else:
            softmax, out = _gated_read(q, keys, values, mask, bias, has_slots, gate)
            if self.record is not None:  # each slot's share of the heads' output: attention times gate opening
                self.record.append((softmax * has_slots * gate.abs()).mean(1).detach())  # (B, T, M)
        return out.transpose(1, 2).reshape(b, t, h * d)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_heads={self.gate.numel()}, scale={self.scale})"


def _shared_read(
    site: AttentionSite,
    gate: MemoryGate,
    call: dict[str, Any],
    q: Tensor,
    k: Tensor,
    x: Tensor,
    memory: FactMemory,
    i: int,
) -> Tensor:
    """Layer ``i``'s change to the attention output ``x`` when its slots share the text's softmax, from the rotated
    queries ``q (B, T, H, d)``, this call's keys ``k`` and the attention call's keyword arguments ``call``."""
    text = text_keys(site, call, k)
    mask = text_mask(call.get("attention_mask"), q.size(1), text.size(-2), q.dtype, q.device)
    scaling = getattr(call["module"], "scaling", site.head_dim**-0.5)
    opened = torch.tanh(gate.scale * gate.gate)
    change, share = shared_read(
        q, x, text, mask, memory.keys[i], memory.values[i], memory.mask, memory.bias, opened, scaling
    )
    if gate.record is not None:  # each slot's share of the heads' output, as for the own softmax
        gate.record.append((share * opened.abs()[None, :, None, None]).mean(1).detach())
    return change


def memory_hooks(
    sites: list[AttentionSite],
    gates: nn.ModuleList,
    context,
    is_active=lambda: True,
    attentions: list | None = None,
    shared: bool = False,
) -> list:
    """Hooks that let each layer read the memory of ``context.state`` (a :class:`KnowledgeContext`).

    A forward hook on each query projection keeps its output; a pre-hook on the output
    projection of the same layer adds the gated memory read to its input. Outside a call
    with memory, both do nothing. The memory lives in the context's state, so gradient
    checkpointing replays it when it recomputes a layer.

    ``is_active()`` says whether these gates' adapter is the one running. With ``attentions`` (the
    attention module of each site), queries are rotated to their own positions, with the rotary
    ``position_embeddings`` each attention call receives, to read slots placed by :func:`place_as_prefix`;
    ``shared`` (which needs them) reads the slots in the text's softmax
    (:mod:`kgpeft.tuners.shared_softmax`), from the keys, mask and cache of the call.

    Returns:
        The hook handles, to remove them.
    """
    queries: dict[int, Tensor] = {}
    keys: dict[int, Tensor] = {}
    calls: dict[int, dict[str, Any]] = {}

    def active_memory() -> FactMemory | None:
        state = context.state
        return None if state is None or not is_active() else state.memory

    def stash(i: int, store: dict[int, Tensor]):
        def hook(module, args, output):
            if active_memory() is not None:
                store[i] = output

        return hook

    def attention_call(i: int):
        def hook(module, args, kwargs):
            if active_memory() is not None:
                calls[i] = {**kwargs, "module": module}

        return hook

    def read(i: int, site: AttentionSite, gate: MemoryGate):
        def hook(module, args):
            memory = active_memory()
            q, k, call = queries.pop(i, None), keys.pop(i, None), calls.pop(i, None)
            if memory is None or q is None:
                return None
            (x,) = args
            memory = memory.expand_to(x.size(0))
            if attentions is not None:
                q = rotate(q.unflatten(-1, (site.num_heads, site.head_dim)), *call["position_embeddings"])
                if shared:
                    return (x + _shared_read(site, gate, call, q, k, x, memory, i).to(x.dtype),)
                q = q.flatten(-2)
            return (x + gate(q, memory.keys[i], memory.values[i], memory.mask, memory.bias).to(x.dtype),)

        return hook

    handles = []
    for i, (site, gate) in enumerate(zip(sites, gates, strict=True)):
        handles.append(site.query.register_forward_hook(stash(i, queries)))
        handles.append(site.output.register_forward_pre_hook(read(i, site, gate)))
        if attentions is not None:
            handles.append(attentions[i].register_forward_pre_hook(attention_call(i), with_kwargs=True))
        if shared:
            handles.append(site.key.register_forward_hook(stash(i, keys)))
    return handles


@dataclass
class MemoryState(KnowledgeState):
    """The fact slots every attention layer reads; ``None``: plain LoRA."""

    memory: FactMemory | None = None


class MemoryMode(KnowledgeMode):
    name = "memory"
    help = (
        "the selected facts (`RetrievalConfig.memory_facts`) become key/value slots of every attention layer, the "
        "frozen model's own states of the fact text, read behind a zero-initialised gate (no graph encoder in the "
        "adapter)"
    )
    modules = ("memory_gates",)
    graph_encoder = False
    reads_fact_memory = True

    @classmethod
    def check_config(cls, config: Any) -> str | None:
        if config.relation_loss_weight > 0:
            return (
                "`relation_loss_weight` trains the adapter's graph encoder, which `knowledge_mode='memory'` does not "
                f"have; set it to 0 (got {config.relation_loss_weight!r})."
            )
        return None

    @classmethod
    def sites(cls, model: nn.Module) -> list[AttentionSite]:
        return attention_layout(model)

    @classmethod
    def build(
        cls, tuner: Any, adapter_name: str, config: Any, sites: list[AttentionSite]
    ) -> list[torch.utils.hooks.RemovableHandle]:
        gates = nn.ModuleList(
            [MemoryGate(site.num_heads, config.memory_gate_scale, config.memory_gate_opening) for site in sites]
        )
        tuner.memory_gates[adapter_name] = gates
        attentions = None
        if config.memory_positions == "prefix":
            rotary_embedding(tuner.base_model)  # refuse a model without one before training
            attentions = [tuner.base_model.get_submodule(site.name) for site in sites]
        shared = config.memory_softmax == "shared"
        return memory_hooks(
            sites, gates, tuner.context, lambda: tuner.active_adapter == adapter_name, attentions, shared
        )

    @classmethod
    def encode(cls, tuner: Any, adapter_name: str, knowledge: KnowledgeBatch) -> MemoryState:
        """Run the frozen base model (adapters off; or the adapter's model, ``memory_encoder``) over the batch's
        selected facts, keeping every layer's keys and values as memory slots, each biased by its fact's
        ``fact_bias``; no facts: plain LoRA."""
        if knowledge.fact_ids is None:
            return MemoryState(knowledge.batch_size)
        config = tuner.kg_configs[adapter_name]
        with tuner.peft_model.disable_adapter() if config.memory_encoder == "base" else nullcontext():
            memory = encode_memory(
                tuner.base_model,
                tuner.sites[adapter_name],
                knowledge.fact_ids,
                knowledge.fact_mask,
                grad=config.memory_encoder == "trained",
                together=config.memory_facts_together,
            )
        if knowledge.fact_bias is not None:  # each fact's bias on every one of its slots
            memory.bias = knowledge.fact_bias.repeat_interleave(knowledge.fact_ids.size(2), dim=1)
        if config.memory_positions == "prefix":
            memory = place_as_prefix(memory, rotary_embedding(tuner.base_model))
        return MemoryState(knowledge.batch_size, memory)
