r"""Fact memory: graph-selected facts read by attention as the model's own key/value states.

The knowledge path that works is the one the model can copy from. Each selected fact
(``"dog hypernym canine"``) is run once through the frozen base model, and its tokens'
key and value states of every layer become memory slots of that layer. Each text token
then attends over its sample's slots, beside (not inside) its ordinary attention, and
the result enters through the layer's output projection behind a per-head gate:

.. math::
    \mathrm{out} = W_o\big(\mathrm{Attn}(q, K, V) + \tanh(s g) \odot
    \mathrm{softmax}\big(q K_{mem}^\top / \sqrt{d_h} + \beta\big) V_{mem}\big)

(the scores scaled, and capped, as the layer scores its own keys) as LLaMA-Adapter's
zero-initialised gated attention does. The gate :math:`g` starts at zero, so a fresh
adapter computes exactly the base model; a sample without memory slots adds exactly
nothing (plain LoRA). By default queries and memory keys are taken before the rotary
position embedding: slots carry no position of the text (their dot products are those
of two tokens at the same position), so no text position moves. ``memory_positions='prefix'``
places them where the fact's tokens would sit as text just before the prompt, and
``memory_softmax='shared'`` reads them in the text's own softmax
(:mod:`kgpeft.tuners.shared_softmax`). :math:`\beta` is an optional per-slot bias, the
log-probability the fact scorer gives the slot's fact (fed when the scorer trains jointly).

It hooks the attention's query, key and output projections (``q_proj`` / ``k_proj`` /
``o_proj`` in Llama-style models, ``attention.self.query`` / ``key`` / ``attention.output.dense``
in BERT-style encoders; a fused projection, ``qkv_proj`` / ``query_key_value`` / ``c_attn``, read
through split views of its output); :func:`attention_layout` finds them in the shared table
(:mod:`kgpeft.tuners.sites`) and refuses, naming what is missing, what it cannot read.
Queries and keys go through the layer's own normalisation, score scale, soft cap and rotary
embedding (:mod:`kgpeft.tuners.geometry`). In an encoder every token reads the slots.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kgpeft.errors import KGPeftError
from kgpeft.tuners.fact_memory import FactMemory, encode_memory, fact_encoder
from kgpeft.tuners.gate import MemoryGate
from kgpeft.tuners.inline_read import extend, head_bias, install
from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import KnowledgeState, in_decoder
from kgpeft.tuners.mode import KnowledgeMode
from kgpeft.tuners.shared_softmax import drops_weights, past_states, shared_read, text_mask, text_states
from kgpeft.tuners.sites import AttentionSite, attention_sites, known_attention


class FactMemoryError(KGPeftError, ValueError):
    """The model's attention is not one memory slots can be read in (the message says what it lacks)."""


def _refusal(model: nn.Module, sites: list[AttentionSite], positions: str, softmax: str) -> str | None:
    """Why memory mode cannot read ``model``'s attention ``sites`` with ``memory_positions=positions`` and
    ``memory_softmax=softmax``, or None."""
    name, config = type(model).__name__, model.config
    if not sites:
        return (
            f"knowledge_mode='memory' reads facts at each self-attention's query, key, value and output projections; "
            f"none of {name}'s modules looks like one (known: {known_attention()})."
        )
    if getattr(config, "is_encoder_decoder", False) and getattr(fact_encoder(model), "embed_tokens", None) is None:
        return (
            f"knowledge_mode='memory' encodes facts by running {name}'s encoder over their tokens, and its encoder "
            "reads no token ids (it embeds audio or image features); use a model whose encoder reads text."
        )
    if positions == "prefix" and _alibi(config):
        return (
            f"`memory_positions='prefix'` places memory slots with the model's rotary position embedding, and {name} "
            "places its keys with ALiBi, a bias by distance outside the keys; use memory_positions='none'."
        )
    if positions == "prefix":
        rotary_embedding(model)
    elif softmax in ("shared", "inline"):
        return _shared_refusal(model)
    return None


def _alibi(config: Any) -> bool:
    """Whether the model biases its scores by distance (ALiBi: BLOOM, Falcon's variant)."""
    return bool(getattr(config, "alibi", False)) or getattr(config, "model_type", None) == "bloom"


def _shared_refusal(model: nn.Module) -> str | None:
    """Why ``model``'s slots cannot share the text's softmax without positions of their own, or None.

    Where positions are added at the input (BERT, GPT-2, OPT), each slot's key already holds the position its
    token had in the fact's text, as a text token's does: the slots join the text's keys as they are. Where the
    attention itself places keys (a rotary embedding, ALiBi, T5's or DeBERTa's relative positions), an unplaced
    slot would be scored as if at every reader's own position, where no other text token can be."""
    name, config = type(model).__name__, model.config
    where = "`memory_softmax='shared'` with memory_positions='none' reads the slots in the text's softmax as they are"
    if _rotary(model) is not None:
        return f"{where}, and {name} places its text keys with a rotary embedding; set memory_positions='prefix'."
    if _alibi(config):
        reason = "adds ALiBi, a bias by distance, to its text's scores"
    elif any(hasattr(m, "relative_attention_bias") for m in model.modules()):
        reason = "adds a relative-position bias (T5's) to its text's scores"
    elif getattr(config, "relative_attention", False):
        reason = "adds relative-position terms (DeBERTa's) to its text's scores"
    else:
        return None
    return f"{where}, and {name} {reason}, which slots have no distance for; use memory_softmax='own'."


def attention_layout(model: nn.Module, positions: str = "none", softmax: str = "own") -> list[AttentionSite]:
    """The self-attention layers of ``model`` in order, with their query, key, value and output projections
    (separate or fused).

    Raises:
        FactMemoryError: naming what the model lacks: known attention projections, a decoder that runs alone (an
            encoder-decoder), or a rotary embedding for ``positions='prefix'`` (ALiBi models, absolute positions at
            the input, DeBERTa's relative positions), or, for ``softmax='shared'`` with ``positions='none'``,
            positions added at the input (not rotary, ALiBi or relative ones).
    """
    sites = attention_sites(model, "memory", FactMemoryError)
    message = _refusal(model, sites, positions, softmax)
    if message is not None:
        raise FactMemoryError(message)
    if getattr(model.config, "is_encoder_decoder", False):  # see fact_encoder
        sites = [site for site in sites if not in_decoder(site.name)]
    return sites


def _rotary(model: nn.Module) -> nn.Module | None:
    return next((m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding")), None)


def rotary_embedding(model: nn.Module) -> nn.Module:
    """The module that gives ``model``'s rotary ``(cos, sin)`` for position ids (``LlamaRotaryEmbedding``, ...).

    Raises:
        FactMemoryError: a model without one (``memory_positions='prefix'`` needs it).
    """
    module = _rotary(model)
    if module is not None:
        return module
    raise FactMemoryError(
        f"`memory_positions='prefix'` places memory slots where the facts would sit as text before the prompt with "
        f"the model's rotary position embedding, and {type(model).__name__} has none (its positions, if any, are "
        "added to the input, where slots are not); use memory_positions='none'."
    )


def prefix_positions(mask: Tensor) -> Tensor:
    """Each slot's position ``(B, M)`` were its sample's real slots text just before the prompt's first token
    (position 0): the last real slot at -1, the first at ``-n``."""
    counts = mask.long().cumsum(-1)
    return counts - 1 - counts[:, -1:]


def place_as_prefix(memory: FactMemory, rotary: nn.Module, sites: list[AttentionSite]) -> FactMemory:
    """``memory`` with every layer's keys rotated to :func:`prefix_positions` of its slots, by the rotary embedding
    of each layer's type (``sites``, from which the memory was encoded)."""
    if not memory.keys:
        return memory
    positions, embeddings = prefix_positions(memory.mask), {}
    keys = []
    for site, k in zip(sites, memory.keys, strict=True):
        kind = (site.geometry.rotary, site.geometry.layer_type)
        if kind not in embeddings:
            embeddings[kind] = site.geometry.position_embeddings(rotary, memory.keys[0], positions)
        keys.append(site.geometry.rotate(k, embeddings[kind]))
    return FactMemory(keys, memory.values, memory.mask, memory.bias)


def _visible_slots(site: AttentionSite, memory: FactMemory, positions: Tensor | None, t: int, s: int) -> Tensor:
    """The slots each query reads ``(B, T or 1, M)``: every real slot, and in a sliding-window layer (Gemma-2/3,
    Mistral) those a text token at their position would be in the window of: ``p - s < window`` for a query at
    position ``p`` and a slot at ``s``; ``positions``: the queries' (default: the last ``t`` of ``s`` keys)."""
    slots = memory.mask[:, None, :]  # (B, 1, M)
    window = site.geometry.sliding_window
    if window is None:
        return slots
    if positions is None:
        positions = torch.arange(s - t, s, device=memory.mask.device)[None]
    return slots & (positions[..., None] - prefix_positions(memory.mask)[:, None, :] < window)  # (B, T, M)


def _shared_read(
    site: AttentionSite,
    gate: MemoryGate,
    call: dict[str, Any],
    q: Tensor,
    k: Tensor,
    v: Tensor,
    x: Tensor,
    memory: FactMemory,
    i: int,
    inline: bool = False,
) -> Tensor:
    """Layer ``i``'s change to the attention output ``x`` when its slots share the text's softmax, from the rotated
    queries ``q (B, T, H, d)``, this call's keys ``k`` and values ``v`` and the attention call's keyword arguments
    ``call``; ``inline``: the gates are biases of the slots' scores (:mod:`kgpeft.tuners.inline_read`), read here
    where the attention function could not read them."""
    text, values = text_states(site, call, k, v)
    t = q.size(1)
    mask = text_mask(call.get("attention_mask"), t, text.size(-2), q.dtype, q.device, site.geometry.causal)
    slots = _visible_slots(site, memory, call.get("position_ids"), t, text.size(-2))
    opened = torch.ones_like(gate.gate) if inline else torch.tanh(gate.scale * gate.gate)
    recording = gate.record is not None
    change, share = shared_read(
        q,
        x,
        text,
        values,
        mask,
        memory.keys[i],
        memory.values[i],
        slots,
        memory.bias,
        opened,
        site.geometry,
        shares=recording,
        dropped=drops_weights(call["module"]),
        heads=head_bias(gate) if inline else None,
    )
    if recording:  # each slot's share of the heads' output, as for the own softmax
        gate.record.append((share * opened.abs()[None, :, None, None]).mean(1).detach())
    return change


def _attention_read(active_memory, reading, site: AttentionSite, gate: MemoryGate, i: int):
    """Layer ``i``'s read inside its attention function (:mod:`kgpeft.tuners.inline_read`): the slots of
    ``active_memory()`` prefixed to its keys and values; ``reading()`` tells the output projection's pre-hook."""

    def read(attention, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, kwargs: dict[str, Any]):
        memory = active_memory()
        if memory is None or gate.record is not None:  # a recorded read is the output projection's pre-hook's
            return None
        memory = memory.expand_to(query.size(0))
        slots = _visible_slots(site, memory, kwargs.get("position_ids"), query.size(-2), key.size(-2))
        reading()
        keys, values = memory.keys[i], memory.values[i]
        return extend(attention, query, key, value, mask, kwargs, keys, values, slots, head_bias(gate), memory.bias)

    return read


def memory_hooks(
    sites: list[AttentionSite],
    gates: nn.ModuleList,
    context,
    is_active=lambda: True,
    attentions: list | None = None,
    shared: bool = False,
    inline: bool = False,
) -> list:
    """Hooks that let each layer read the memory of ``context.state`` (a :class:`KnowledgeContext`).

    A forward hook on each query projection keeps its output; a pre-hook on the output
    projection of the same layer adds the gated memory read to its input. Outside a call
    with memory, both do nothing. The memory lives in the context's state, so gradient
    checkpointing replays it when it recomputes a layer.

    ``is_active()`` says whether these gates' adapter is the one running. With ``attentions`` (the
    attention module of each site), queries are rotated to their own positions, with the rotary
    ``position_embeddings`` each attention call receives (none where positions are added at the input),
    to read slots placed by :func:`place_as_prefix`; ``shared`` (which needs them) reads the slots in the
    text's softmax (:mod:`kgpeft.tuners.shared_softmax`), from the keys, mask and cache of the call; with
    ``inline`` too, the attention function itself reads them where it can (:mod:`kgpeft.tuners.inline_read`),
    and the output projection's pre-hook only where it could not.

    Returns:
        The hook handles, to remove them.
    """
    # each projection's output and the part of it the output projection's pre-hook takes, if it reads
    queries: dict[int, tuple[Callable, Tensor]] = {}
    keys: dict[int, tuple[Callable, Tensor]] = {}
    values: dict[int, tuple[Callable, Tensor]] = {}
    calls: dict[int, dict[str, Any]] = {}
    read_inline: set[int] = set()  # the layers whose attention function read the slots in this call

    def active_memory() -> FactMemory | None:
        state = context.state
        return None if state is None or not is_active() else state.memory

    def stash(i: int, store: dict[int, Tensor], part):
        def hook(module, args, output):
            if active_memory() is not None and not context.reading_positions:
                store[i] = (part, output)

        return hook

    def attention_call(i: int, attention: nn.Module):
        # BERT's layers pass the mask by position: the call's positional arguments by name
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names = [p.name for p in inspect.signature(attention.forward).parameters.values() if p.kind in kinds]

        def hook(module, args, kwargs):
            if active_memory() is not None:
                calls[i] = {**dict(zip(names, args, strict=False)), **kwargs, "module": module}
                calls[i]["past_states"] = past_states(calls[i])

        return hook

    def read(i: int, site: AttentionSite, gate: MemoryGate):
        def hook(module, args):
            memory = active_memory()
            q, k, v = (store.pop(i, None) for store in (queries, keys, values))
            call = calls.pop(i, None)
            if i in read_inline:  # the attention function read the slots
                read_inline.discard(i)
                return None
            if memory is None or q is None:
                return None
            q, k, v = (None if kept is None else kept[0](kept[1]) for kept in (q, k, v))
            (x,) = args
            memory = memory.expand_to(x.size(0))
            q = site.geometry.queries(q, site.num_heads)
            if site.geometry.position_query is not None:  # DeBERTa: slots at the reader's position
                with context.positions():
                    q = q + site.geometry.position_query().to(q.dtype)
            if attentions is not None:  # no position_embeddings where positions are added at the input
                q = q.unflatten(-1, (site.num_heads, site.head_dim))
                q = site.geometry.rotate(q, call.get("position_embeddings"))
                if shared:
                    return (x + _shared_read(site, gate, call, q, k, v, x, memory, i, inline).to(x.dtype),)
                q = q.flatten(-2)
            read = gate(q, memory.keys[i], memory.values[i], memory.mask, memory.bias, site.geometry)
            return (x + read.to(x.dtype),)

        return hook

    handles = []
    for i, (site, gate) in enumerate(zip(sites, gates, strict=True)):
        handles.append(site.query.register_forward_hook(stash(i, queries, site.queries)))
        handles.append(site.output.register_forward_pre_hook(read(i, site, gate)))
        if attentions is not None:
            handles.append(attentions[i].register_forward_pre_hook(attention_call(i, attentions[i]), with_kwargs=True))
        if shared:
            handles.append(site.key.register_forward_hook(stash(i, keys, site.keys)))
            value = site.key if site.layout is not None else site.value
            handles.append(value.register_forward_hook(stash(i, values, site.values)))
        if inline:
            handle = install(
                attentions[i], _attention_read(active_memory, lambda i=i: read_inline.add(i), site, gate, i)
            )
            handles.extend([] if handle is None else [handle])
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
    def sites(cls, model: nn.Module, config: Any) -> list[AttentionSite]:
        sites = attention_layout(model, config.memory_positions, config.memory_softmax)
        encoder = fact_encoder(model)
        if config.memory_facts_together and "position_ids" not in inspect.signature(encoder.forward).parameters:
            raise FactMemoryError(
                f"`memory_facts_together` encodes a sample's facts as one text, each after the previous one's "
                f"positions, and {type(encoder).__name__} takes no `position_ids`; set memory_facts_together=False."
            )
        return sites

    @classmethod
    def build(
        cls, tuner: Any, adapter_name: str, config: Any, sites: list[AttentionSite]
    ) -> list[torch.utils.hooks.RemovableHandle]:
        gates = nn.ModuleList(
            [MemoryGate(site.num_heads, config.memory_gate_scale, config.memory_gate_opening) for site in sites]
        )
        tuner.memory_gates[adapter_name] = gates
        attentions = None
        shared = config.memory_softmax in ("shared", "inline")
        if config.memory_positions == "prefix" or shared:
            attentions = [tuner.base_model.get_submodule(site.name) for site in sites]
        active = lambda: tuner.active_adapter == adapter_name  # noqa: E731
        return memory_hooks(sites, gates, tuner.context, active, attentions, shared, config.memory_softmax == "inline")

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
                projection_grad=config.memory_encoder == "projections",
            )
        if knowledge.fact_bias is not None:  # each fact's bias on every one of its slots
            memory.bias = knowledge.fact_bias.repeat_interleave(knowledge.fact_ids.size(2), dim=1)
        if config.memory_positions == "prefix":
            memory = place_as_prefix(memory, rotary_embedding(tuner.base_model), tuner.sites[adapter_name])
        return MemoryState(knowledge.batch_size, memory)
