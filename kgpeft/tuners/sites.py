"""Where each architecture keeps its attention: one table read by the LoRA targets, every knowledge mode and padding.

:data:`FAMILIES` names, per family of model types, the attention projections LoRA adapts and,
where one projection computes queries, keys and values together, how its output splits.
:func:`attention_sites` finds the self-attention layers of a model with their projections
and head layout, for the knowledge modes that read attention (``memory``, ``prefix``).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import Tensor, nn
from transformers.pytorch_utils import Conv1D

from kgpeft.tuners.geometry import Geometry, attention_geometry


@dataclass(frozen=True)
class Family:
    """The attention of one family of architectures.

    Args:
        model_types: the ``config.model_type`` values of the family.
        targets: its attention projections (query, key, value, output) as suffixes of module
            names, the default LoRA targets. peft's own table targets only q and v; KG-LoRA feeds
            the graph into every projection of attention, so it keeps its own.
        fused: for a family whose query, key and value come from one projection: ``(fused
            projection, output projection, layout of its output)`` inside the self-attention
            module. ``"blocks"`` is ``[q | k | v]``, ``H``, ``H_kv`` and ``H_kv`` heads wide (GPT-2,
            Phi-3); ``"groups"`` is, for each key/value head, the ``H / H_kv`` query heads that read
            it, then its key and its value (GPT-NeoX and BLOOM ``[q_h | k_h | v_h]`` per head,
            Falcon's new decoder architecture). Where the layout is not written in the weights'
            names it has to be known per model type: GPT-2 and GPT-BigCode both call theirs
            ``c_attn`` and split it differently. A config with ``multi_query`` (and no
            ``new_decoder_architecture``) puts its one key and value head in blocks.
    """

    model_types: tuple[str, ...]
    targets: tuple[str, ...]
    fused: tuple[str, str, str] | None = None


#: The separate query/key/value/output projections of the Llama family.
QKVO = ("q_proj", "k_proj", "v_proj", "o_proj")
_OUT_PROJ = ("q_proj", "k_proj", "v_proj", "out_proj")
_GPT2 = ("attn.c_attn", "attn.c_proj")
_FUSED = ("query_key_value", "self_attention.dense")

FAMILIES: tuple[Family, ...] = (
    Family(
        (
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen2_moe",
            "qwen3",
            "gemma",
            "gemma2",
            "gemma3_text",
            "olmo",
            "olmo2",
            "granite",
            "stablelm",
            "starcoder2",
            "cohere",
            "smollm3",
        ),
        QKVO,
    ),
    Family(("phi",), ("q_proj", "k_proj", "v_proj", "self_attn.dense")),
    Family(("phi3",), ("qkv_proj", "o_proj"), ("qkv_proj", "o_proj", "blocks")),
    Family(("gpt2",), _GPT2, ("c_attn", "c_proj", "blocks")),
    Family(("gpt_bigcode",), _GPT2, ("c_attn", "c_proj", "groups")),
    Family(("gpt_neox",), ("attention.query_key_value", "attention.dense"), ("query_key_value", "dense", "groups")),
    Family(("gptj",), _OUT_PROJ),
    Family(("falcon", "bloom"), _FUSED, ("query_key_value", "dense", "groups")),
    Family(("opt", "bart", "mbart", "marian", "pegasus", "whisper", "m2m_100"), _OUT_PROJ),
    Family(
        ("bert", "roberta", "xlm-roberta", "electra", "camembert", "ernie"),
        ("query", "key", "value", "attention.output.dense"),
    ),
    Family(("distilbert",), ("q_lin", "k_lin", "v_lin", "out_lin")),
    Family(("t5", "mt5", "umt5"), ("q", "k", "v", "o")),
)

#: The default LoRA targets per model type (see :attr:`Family.targets`).
ATTENTION_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    model_type: family.targets for family in FAMILIES for model_type in family.model_types
}
_FUSED_BY_TYPE = {model_type: family.fused for family in FAMILIES if family.fused for model_type in family.model_types}

#: Names of self-attention modules (cross-attention, e.g. BART's ``encoder_attn``, is left alone).
SELF_ATTENTION = ("self_attn", "attn", "attention", "SelfAttention", "self_attention")
#: Separate (query, key, value, output) projections, as paths inside the attention module, of any family.
SEPARATE = (
    QKVO,
    _OUT_PROJ,
    ("q_proj", "k_proj", "v_proj", "dense"),
    ("q_lin", "k_lin", "v_lin", "out_lin"),
    ("q", "k", "v", "o"),
    ("self.query", "self.key", "self.value", "output.dense"),
    ("self.query_proj", "self.key_proj", "self.value_proj", "output.dense"),
)
#: Methods of attention modules that pass relative-position embeddings through the attention
#: projections (DeBERTa's ``query_proj``/``key_proj``, or ``pos_*_proj``): those calls are no tokens.
POSITION_METHODS = ("disentangled_attention_bias",)
_HEAD_DIM = ("head_dim", "head_size", "attention_head_size", "key_value_proj_dim")


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
class AttentionSite:
    """One self-attention layer: where its queries come from, how it projects keys and values, where a read enters.

    ``paths`` names the (query, key, value, output) projections inside the attention module
    (``(fused, fused, fused, output)`` for a fused one); ``geometry`` says how the layer scores its keys.
    """

    name: str
    query: nn.Module  # its output holds the queries
    output: nn.Module  # its input gets the read
    key: nn.Module  # the fused projection when ``layout`` is set
    value: nn.Module | None
    layout: str | None  # None: separate projections; "blocks" or "groups": fused, see Family.fused
    num_heads: int
    num_kv_heads: int
    head_dim: int
    width: int  # the width of the layer input
    paths: tuple[str, str, str, str]
    geometry: Geometry

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

    def keys(self, output: Tensor) -> Tensor:
        """``(B, T, H_kv * d_h)`` keys from the key projection's output."""
        return output if self.layout is None else self.split_keys_values(output)[0]

    def values(self, output: Tensor) -> Tensor:
        """``(B, T, H_kv * d_h)`` values from the value projection's output (the fused one's, with ``layout``)."""
        return output if self.layout is None else self.split_keys_values(output)[1]

    def split_keys_values(self, output: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values ``(..., H_kv * d_h)`` from a fused projection's output."""
        if self.layout == "blocks":
            return output[..., self.num_heads * self.head_dim :].split(self.num_kv_heads * self.head_dim, dim=-1)
        groups = self._groups(output)
        return groups[..., -2, :].flatten(-2), groups[..., -1, :].flatten(-2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values ``(B, m, H_kv, d_h)`` of the layer inputs ``x (B, m, width)``."""
        k, v = (self.key(x), self.value(x)) if self.layout is None else self.split_keys_values(self.key(x))
        return k.unflatten(-1, (self.num_kv_heads, self.head_dim)), v.unflatten(-1, (self.num_kv_heads, self.head_dim))


def _head_dim(model: nn.Module, *modules: nn.Module) -> int | None:
    for module in modules:
        for name in _HEAD_DIM:
            value = getattr(module, name, None)
            if isinstance(value, int):
                return value
    config = model.config
    heads = getattr(config, "num_attention_heads", None)
    return getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else None)


def _site(model: nn.Module, name: str, attn: nn.Module, mode: str, error: type[Exception]) -> AttentionSite | None:
    for paths in SEPARATE:
        q, k, v, o = (_find(attn, p) for p in paths)
        if None in (q, k, v, o):
            continue
        inner = _find(attn, paths[0].rpartition(".")[0]) or attn
        d = _head_dim(model, attn, inner)
        (width, q_out), k_out = _features(q), _features(k)[1]
        geometry = attention_geometry(model, attn, inner, d)
        return AttentionSite(name, q, o, k, v, None, q_out // d, k_out // d, d, width, paths, geometry)
    config = model.config
    fused = _FUSED_BY_TYPE.get(getattr(config, "model_type", None))
    if fused is None:
        return None
    qkv_path, o_path, layout = fused
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
        raise error(
            f"knowledge_mode={mode!r} splits {where}.{qkv_path}` into the query, key and value heads its config "
            f"names (num_attention_heads={heads}, num_key_value_heads={kv}, head_dim={d}: {(heads + 2 * kv) * d} "
            f"outputs), but it has {out} outputs; fix the config's head counts."
        )
    if getattr(attn, "slow_but_exact", False) and getattr(attn, "pretraining_tp", 1) > 1:
        raise error(
            f"knowledge_mode={mode!r} reads at the input of {where}.{o_path}`, which BLOOM skips with "
            "`slow_but_exact=True` and `pretraining_tp > 1`; set `slow_but_exact=False` in the model's config."
        )
    paths = (qkv_path, qkv_path, qkv_path, o_path)
    return AttentionSite(
        name, qkv, o, qkv, None, layout, heads, kv, d, width, paths, attention_geometry(model, attn, attn, d)
    )


def attention_sites(model: nn.Module, mode: str, error: type[Exception]) -> list[AttentionSite]:
    """The self-attention layers of ``model`` in order (none when none looks like one).

    Raises:
        error: a fused projection whose width does not fit the config's head counts, or BLOOM's
            ``slow_but_exact`` attention, which skips the output projection; the message names
            ``knowledge_mode=mode``.
    """
    sites = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in SELF_ATTENTION:
            site = _site(model, name, module, mode, error)
            if site is not None:
                sites.append(site)
    return sites


def known_attention() -> str:
    """The projections :func:`attention_sites` knows, for error messages."""
    return (
        f"separate projections {sorted({p[0] for p in SEPARATE})}, fused ones of model types {sorted(_FUSED_BY_TYPE)}"
    )
