r"""Graph prefix: pooled graph states as soft tokens that attention reads beside the text.

Each sample's subgraph node states are pooled and projected to ``m`` soft tokens
:math:`P = W_p \, \mathrm{mean}(Z)`. Every self-attention layer projects them with its own
key and value projections and each text token reads them beside (not inside) its ordinary
attention, behind a zero-initialised per-head gate, as LLaMA-Adapter's adaption prompts:

.. math::
    \mathrm{out} = W_o\big(\mathrm{Attn}(q, K, V) + \tanh(s g) \odot
    \mathrm{softmax}\big(q (W_k P)^\top / \sqrt{d_h}\big) W_v P\big)

The soft tokens are not part of the sequence, so no text position moves; the gate starts
at zero, so a fresh adapter computes exactly the base model; a sample without nodes reads
nothing, so it gets exactly plain LoRA. Queries and soft-token keys are taken before any
rotary embedding: the soft tokens carry no position.

As in :mod:`kgpeft.tuners.memory`, fused projections (GPT-2's ``c_attn``, GPT-NeoX's
``query_key_value``, Phi-3's ``qkv_proj``) are split as the model splits them
(:class:`~kgpeft.tuners.sites.AttentionSite`), with the head counts of the model's config
(multi-query and grouped-query layouts included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kgpeft.errors import KGPeftError
from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import KnowledgeState
from kgpeft.tuners.memory import FactMemory, MemoryGate
from kgpeft.tuners.mode import KnowledgeMode, node_states
from kgpeft.tuners.sites import AttentionSite, attention_sites, known_attention


class PrefixError(KGPeftError, ValueError):
    """The model's attention projections are not ones ``prefix`` mode knows how to read."""


def prefix_layout(model: nn.Module) -> list[AttentionSite]:
    """The self-attention layers of ``model`` in order, with their projections and head layout.

    Raises:
        PrefixError: for a model whose self-attention projections are none of the known kinds.
    """
    sites = attention_sites(model, "prefix", PrefixError)
    if not sites:
        raise PrefixError(
            f"knowledge_mode='prefix' reads soft tokens through each self-attention's query, key, value and output "
            f"projections; none of {type(model).__name__}'s modules looks like one (known: {known_attention()})."
        )
    if len({site.width for site in sites}) > 1:
        raise PrefixError(f"knowledge_mode='prefix' needs one layer width, {type(model).__name__} has several.")
    return sites


def encode_prefix(sites: list[AttentionSite], soft: Tensor, has_nodes: Tensor) -> FactMemory:
    """Every layer's keys and values of the soft tokens ``(B, m, width)``; ``has_nodes`` ``(B,)`` masks them."""
    keys, values = zip(*(site.keys_values(soft.to(_dtype(site.key))) for site in sites), strict=True)
    return FactMemory(list(keys), list(values), has_nodes[:, None].expand(-1, soft.size(1)))


def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def prefix_hooks(sites: list[AttentionSite], gates: nn.ModuleList, context, is_active=lambda: True) -> list:
    """Hooks that let each layer read the soft tokens of ``context.state.prefix`` (a :class:`KnowledgeContext`).

    A forward hook on each query projection keeps its queries (not those of relative-position
    embeddings, see :meth:`KnowledgeContext.positions`); a pre-hook on the output projection
    of the same layer adds the gated read to its input. ``is_active()`` says whether these
    gates' adapter is the one running.

    Returns:
        The hook handles, to remove them.
    """
    queries: dict[int, Tensor] = {}

    def active_prefix() -> FactMemory | None:
        state = context.state
        return None if state is None or not is_active() else state.prefix

    def stash(i: int, site: AttentionSite):
        def hook(module, args, output):
            if active_prefix() is not None and not context.reading_positions:
                queries[i] = site.queries(output)

        return hook

    def read(i: int, gate: MemoryGate):
        def hook(module, args):
            prefix, q = active_prefix(), queries.pop(i, None)
            if prefix is None or q is None:
                return None
            x, *rest = args
            prefix = prefix.expand_to(x.size(0))
            return (x + gate(q, prefix.keys[i], prefix.values[i], prefix.mask, None).to(x.dtype), *rest)

        return hook

    handles = []
    for i, (site, gate) in enumerate(zip(sites, gates, strict=True)):
        handles.append(site.query.register_forward_hook(stash(i, site)))
        handles.append(site.output.register_forward_pre_hook(read(i, gate)))
    return handles


@dataclass
class PrefixState(KnowledgeState):
    """Every layer's keys and values of the soft tokens, as slots (a sample without nodes has none)."""

    prefix: FactMemory | None = None


class PrefixMode(KnowledgeMode):
    name = "prefix"
    help = (
        "pooled graph states become soft tokens every self-attention reads beside the text, behind "
        "zero-initialised gates (no text position moves)"
    )
    modules = ("prefix_projections", "prefix_gates")

    @classmethod
    def outdated(cls, missing: set[str]) -> str | None:
        if missing and all(k.startswith("prefix_gates.") for k in missing):
            return (
                "a `prefix` adapter of an older kgpeft, whose soft tokens entered the input and moved the text "
                "positions; the current `prefix` mode reads them in attention behind gates. Retrain it."
            )
        return None

    @classmethod
    def sites(cls, model: nn.Module, config: Any) -> list[AttentionSite]:
        return prefix_layout(model)

    @classmethod
    def build(
        cls, tuner: Any, adapter_name: str, config: Any, sites: list[AttentionSite]
    ) -> list[torch.utils.hooks.RemovableHandle]:
        width = sites[0].width
        tuner.prefix_projections[adapter_name] = nn.Linear(config.graph_channels, config.num_prefix_tokens * width)
        gates = nn.ModuleList([MemoryGate(site.num_heads, config.memory_gate_scale) for site in sites])
        tuner.prefix_gates[adapter_name] = gates
        return prefix_hooks(sites, gates, tuner.context, lambda: tuner.active_adapter == adapter_name)

    @classmethod
    def encode(cls, tuner: Any, adapter_name: str, knowledge: KnowledgeBatch) -> PrefixState:
        """Pool each sample's node states into soft tokens and project them with every self-attention's key and
        value projections."""
        b = knowledge.batch_size
        states, mask = node_states(tuner, adapter_name, knowledge)  # (B, M, d), (B, M)
        count = mask.sum(1, keepdim=True)  # (B, 1)
        pooled = states.sum(1) / count.clamp(min=1)  # (B, d_graph)
        config = tuner.kg_configs[adapter_name]
        soft = tuner.prefix_projections[adapter_name](pooled).view(b, config.num_prefix_tokens, -1)
        return PrefixState(b, encode_prefix(tuner.sites[adapter_name], soft, count.view(b) > 0))
