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

Unlike :mod:`kgpeft.tuners.memory` it needs no separate projections: fused ones (GPT-2's
``c_attn``, GPT-NeoX's ``query_key_value``, Phi-3's ``qkv_proj``) are split by :class:`PrefixSite`
as the model splits them, with the head counts of the model's config (multi-query and
grouped-query layouts included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import Tensor, nn
from transformers.pytorch_utils import Conv1D

from kgpeft.errors import KGPeftError
from kgpeft.tuners.memory import FactMemory, MemoryGate

#: Names of self-attention modules (cross-attention, e.g. BART's ``encoder_attn``, is left alone).
_SELF_ATTENTION = ("self_attn", "attn", "attention", "SelfAttention", "self_attention")
#: (query, key, value, output) projections, as paths inside the attention module.
_SEPARATE = (
    ("q_proj", "k_proj", "v_proj", "o_proj"),
    ("q_proj", "k_proj", "v_proj", "out_proj"),
    ("q_proj", "k_proj", "v_proj", "dense"),
    ("q_lin", "k_lin", "v_lin", "out_lin"),
    ("q", "k", "v", "o"),
    ("self.query", "self.key", "self.value", "output.dense"),
    ("self.query_proj", "self.key_proj", "self.value_proj", "output.dense"),
)
#: Fused query/key/value projections, by model type: (fused projection, output projection, layout of
#: its output). ``"blocks"`` is ``[q | k | v]``, ``H``, ``H_kv`` and ``H_kv`` heads wide (GPT-2, Phi-3);
#: ``"groups"`` is, for each key/value head, the ``H / H_kv`` query heads that read it, then its key
#: and its value (GPT-NeoX and BLOOM ``[q_h | k_h | v_h]`` per head, Falcon's new decoder
#: architecture). Where the layout is not written in the weights' names it has to be known per model
#: type: GPT-2 and GPT-BigCode both call theirs ``c_attn`` and split it differently. A config with
#: ``multi_query`` (and no ``new_decoder_architecture``) puts its one key and value head in blocks.
_FUSED = {
    "gpt2": ("c_attn", "c_proj", "blocks"),
    "gpt_bigcode": ("c_attn", "c_proj", "groups"),
    "phi3": ("qkv_proj", "o_proj", "blocks"),
    "gpt_neox": ("query_key_value", "dense", "groups"),
    "bloom": ("query_key_value", "dense", "groups"),
    "falcon": ("query_key_value", "dense", "groups"),
}
_HEAD_DIM = ("head_dim", "head_size", "attention_head_size", "key_value_proj_dim")


class PrefixError(KGPeftError, ValueError):
    """The model's attention projections are not ones ``prefix`` mode knows how to read."""


def _features(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a linear layer, GPT-2's ``Conv1D`` or a peft-wrapped one."""
    if isinstance(module, BaseTunerLayer):
        module = module.get_base_layer()
    if isinstance(module, Conv1D):
        return module.weight.shape[0], module.weight.shape[1]
    return module.in_features, module.out_features


def _find(module: nn.Module, path: str) -> nn.Module | None:
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None


@dataclass
class PrefixSite:
    """One self-attention layer: where its queries come from, how it projects soft tokens, where it reads them."""

    name: str
    query: nn.Module  # its output holds the queries
    output: nn.Module  # its input gets the read
    key: nn.Module  # the fused projection when ``layout`` is set
    value: nn.Module | None
    layout: str | None  # None: separate projections; "blocks" or "groups": fused, see _FUSED
    num_heads: int
    num_kv_heads: int
    head_dim: int
    width: int  # the width of the layer input, and of a soft token

    def _groups(self, output: Tensor) -> Tensor:
        """A ``"groups"`` projection's output as ``(..., H_kv, H / H_kv + 2, d_h)``: queries, key, value per group."""
        kv = self.num_kv_heads
        return output.unflatten(-1, (kv, self.num_heads // kv + 2, self.head_dim))

    def queries(self, output: Tensor) -> Tensor:
        """``(B, T, H * d_h)`` queries from the query projection's output."""
        if self.layout == "blocks":
            output = output[..., : self.num_heads * self.head_dim]
        elif self.layout == "groups":
            output = self._groups(output)[..., :-2, :].flatten(-3)
        return output.contiguous()

    def keys_values(self, soft: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values ``(B, m, H_kv, d_h)`` of the soft tokens ``(B, m, width)``."""
        h, kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        if self.layout is None:
            k, v = self.key(soft), self.value(soft)
        elif self.layout == "blocks":
            k, v = self.key(soft)[..., h * d :].split(kv * d, dim=-1)
        else:
            groups = self._groups(self.key(soft))
            return groups[..., -2, :], groups[..., -1, :]
        return k.unflatten(-1, (kv, d)), v.unflatten(-1, (kv, d))


def _head_dim(model: nn.Module, *modules: nn.Module) -> int | None:
    for module in modules:
        for name in _HEAD_DIM:
            value = getattr(module, name, None)
            if isinstance(value, int):
                return value
    config = model.config
    heads = getattr(config, "num_attention_heads", None)
    return getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else None)


def _site(model: nn.Module, name: str, attn: nn.Module) -> PrefixSite | None:
    for q_path, k_path, v_path, o_path in _SEPARATE:
        q, k, v, o = (_find(attn, p) for p in (q_path, k_path, v_path, o_path))
        if None in (q, k, v, o):
            continue
        d = _head_dim(model, attn, _find(attn, q_path.rpartition(".")[0]) or attn)
        (width, q_out), k_out = _features(q), _features(k)[1]
        return PrefixSite(name, q, o, k, v, None, q_out // d, k_out // d, d, width)
    config = model.config
    model_type = getattr(config, "model_type", None)
    if model_type not in _FUSED:
        return None
    qkv_path, o_path, layout = _FUSED[model_type]
    qkv, o = _find(attn, qkv_path), _find(attn, o_path)
    if qkv is None or o is None:
        return None
    if getattr(config, "multi_query", False) and not getattr(config, "new_decoder_architecture", False):
        layout = "blocks"
    heads, d = config.num_attention_heads, _head_dim(model, attn)
    kv = getattr(config, "num_key_value_heads", None) or heads
    width, out = _features(qkv)
    where = f"{type(model).__name__}'s `{name}"
    if out != (heads + 2 * kv) * d or heads % kv:
        raise PrefixError(
            f"knowledge_mode='prefix' splits {where}.{qkv_path}` into the query, key and value heads its config "
            f"names (num_attention_heads={heads}, num_key_value_heads={kv}, head_dim={d}: {(heads + 2 * kv) * d} "
            f"outputs), but it has {out} outputs; fix the config's head counts."
        )
    if getattr(attn, "slow_but_exact", False) and getattr(attn, "pretraining_tp", 1) > 1:
        raise PrefixError(
            f"knowledge_mode='prefix' reads soft tokens at the input of {where}.{o_path}`, which BLOOM skips with "
            "`slow_but_exact=True` and `pretraining_tp > 1`; set `slow_but_exact=False` in the model's config."
        )
    return PrefixSite(name, qkv, o, qkv, None, layout, heads, kv, d, width)


def prefix_layout(model: nn.Module) -> list[PrefixSite]:
    """The self-attention layers of ``model`` in order, with their projections and head layout.

    Raises:
        PrefixError: for a model whose self-attention projections are none of the known kinds.
    """
    sites = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in _SELF_ATTENTION:
            site = _site(model, name, module)
            if site is not None:
                sites.append(site)
    if not sites:
        raise PrefixError(
            f"knowledge_mode='prefix' reads soft tokens through each self-attention's query, key, value and output "
            f"projections; none of {type(model).__name__}'s modules looks like one (known: separate projections "
            f"{sorted({p[0] for p in _SEPARATE})}, fused ones of model types {sorted(_FUSED)})."
        )
    if len({site.width for site in sites}) > 1:
        raise PrefixError(f"knowledge_mode='prefix' needs one layer width, {type(model).__name__} has several.")
    return sites


def encode_prefix(sites: list[PrefixSite], soft: Tensor, has_nodes: Tensor) -> FactMemory:
    """Every layer's keys and values of the soft tokens ``(B, m, width)``; ``has_nodes`` ``(B,)`` masks them."""
    keys, values = zip(*(site.keys_values(soft.to(_dtype(site.key))) for site in sites), strict=True)
    return FactMemory(list(keys), list(values), has_nodes[:, None].expand(-1, soft.size(1)))


def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def prefix_hooks(sites: list[PrefixSite], gates: nn.ModuleList, context, is_active=lambda: True) -> list:
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

    def stash(i: int, site: PrefixSite):
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
