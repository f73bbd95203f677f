r"""Each architecture's attention geometry: what happens to queries and keys between the projections and the scores.

Memory slots are keys and values the model computes itself (:mod:`kgpeft.tuners.memory`); to be read as the
model reads its own keys, a slot holding the same key as a text token at the same position must get the score
that token gets. Between the projections and the softmax, architectures differ in:

- q/k normalisation before the rotary embedding: Qwen3 and Gemma-3 normalise each head's query and key
  (``q_norm``/``k_norm`` over :math:`d_h`), OLMo-2 all heads together (over :math:`H d_h`);
- the score scale, the attention module's ``scaling``: ``query_pre_attn_scalar**-0.5`` in Gemma-2/3,
  ``attention_multiplier`` in Granite, :math:`d_h^{-1/2}` where a module names none;
- soft-capping of the scaled scores, :math:`c \tanh(s / c)` (Gemma-2's ``attn_logit_softcapping``);
- DeBERTa's disentangled attention: scores scaled by :math:`(3 d_h)^{-1/2}` and added terms of the relative
  position, content-to-position and position-to-content; a slot sits at its reader's position (relative distance
  0), where the first is the same for every slot of a query (so its own softmax drops it) and the second is the
  key's dot product with the position query at distance 0, which :attr:`Geometry.position_query` adds to queries;
- a sliding window: a query reads only the keys less than ``sliding_window`` positions before it (Mistral's
  layers, Gemma-2/3's sliding-window ones);
- the rotary embedding: Llama's (halves rotated, given as ``(cos, sin)``), Cohere's (interleaved pairs), GPT-J's
  (interleaved pairs, given as ``(sin, cos)`` of half width), one per layer type (Gemma-3's sliding-window layers
  have another base), or none in some layers (SmolLM3's);

:func:`attention_geometry` reads them from an attention module; :class:`Geometry` applies them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: Model types whose rotary embedding turns interleaved pairs ``(x_0, x_1), (x_2, x_3), ...``: ``"gptj"`` from
#: ``(sin, cos)`` tables of half width, ``"pairs"`` from ``(cos, sin)`` of full width; every other rotary model
#: turns halves, Llama's way (``"halves"``).
ROTARY_STYLES = {"gptj": "gptj", "cohere": "pairs", "cohere2": "pairs"}
_QUERY_NORMS = ("q_norm", "q_layernorm")
_KEY_NORMS = ("k_norm", "k_layernorm")


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The rotary embedding of ``x (B, n, H, d)`` at the positions of ``cos, sin (B or 1, n, d_rot)``, as Llama
    applies it (halves rotated; a partial rotary, ``d_rot < d``, leaves the last dimensions as they are)."""
    cos, sin = cos[:, :, None, :].to(x.dtype), sin[:, :, None, :].to(x.dtype)
    d_rot = cos.size(-1)
    x_rot, x_pass = x[..., :d_rot], x[..., d_rot:]
    half = d_rot // 2
    turned = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
    return torch.cat((x_rot * cos + turned * sin, x_pass), dim=-1)


def rotate_pairs(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The rotary embedding of ``x (B, n, H, d)`` turning neighbouring pairs of dimensions (Cohere's, GPT-J's):
    ``cos, sin (B or 1, n, d_rot)``, each angle twice; the last ``d - d_rot`` dimensions pass."""
    cos, sin = cos[:, :, None, :].to(x.dtype), sin[:, :, None, :].to(x.dtype)
    d_rot = cos.size(-1)
    x_rot, x_pass = x[..., :d_rot], x[..., d_rot:]
    turned = torch.stack((-x_rot[..., 1::2], x_rot[..., ::2]), dim=-1).flatten(-2)
    return torch.cat((x_rot * cos + turned * sin, x_pass), dim=-1)


def _normalise(x: Tensor, norm: nn.Module | None, heads: int) -> Tensor:
    """``x (..., n, H * d)`` through ``norm``: over all heads where its weight is that wide (OLMo-2), one norm per
    head on ``(..., H, n, d)`` where it holds several (StableLM's ``norms``), else per head on ``(..., n, H, d)``."""
    if norm is None:
        return x
    weight = getattr(norm, "weight", None)
    if weight is not None and weight.shape[-1] == x.size(-1):
        return norm(x)
    heads_first = isinstance(getattr(norm, "norms", None), nn.ModuleList)
    x = x.unflatten(-1, (heads, -1))
    x = norm(x.transpose(-3, -2)).transpose(-3, -2) if heads_first else norm(x)
    return x.flatten(-2)


@dataclass(frozen=True)
class Geometry:
    """How one attention layer turns projected queries and keys into scores.

    Attributes:
        scaling: the factor of the dot products.
        softcap: :math:`c` of the soft cap :math:`c \\tanh(s / c)`, or ``None``.
        query_norm, key_norm: the modules normalising the projected queries and keys, or ``None``.
        rotary: the layer's rotary style (:data:`ROTARY_STYLES`), or ``None`` for a layer without one.
        layer_type: the layer's type (``"sliding_attention"``, ...), whose rotary embedding it reads where the
            model's rotary module has one per type (Gemma-3); or ``None``.
        sliding_window: the layer's window, or ``None``.
        position_query: gives the ``(H * d)`` position query of relative distance 0, or ``None`` (DeBERTa's).
        causal: whether a query reads only the keys up to its own (a decoder's attention), where the attention
            call gives no mask; an encoder's reads every key.
    """

    scaling: float
    softcap: float | None = None
    query_norm: nn.Module | None = None
    key_norm: nn.Module | None = None
    rotary: str | None = "halves"
    layer_type: str | None = None
    sliding_window: int | None = None
    position_query: Callable[[], Tensor] | None = None
    causal: bool = True

    def queries(self, q: Tensor, heads: int) -> Tensor:
        """The queries ``(..., T, H * d)`` the scores read, from the query projection's output."""
        return _normalise(q, self.query_norm, heads)

    def keys(self, k: Tensor, heads: int) -> Tensor:
        """The keys ``(..., M, H_kv * d)`` the scores read (before any rotary embedding), from the key projection's."""
        return _normalise(k, self.key_norm, heads)

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        """The attention scores of ``q (..., T, d)`` for ``k (..., M, d)``: ``(..., T, M)``, scaled and capped."""
        scores = q @ k.transpose(-1, -2) * self.scaling
        if self.softcap is not None:
            scores = torch.tanh(scores / self.softcap) * self.softcap
        return scores

    def rotate(self, x: Tensor, position_embeddings: tuple[Tensor, Tensor] | None) -> Tensor:
        """``x (B, n, H, d)`` turned by the rotary ``position_embeddings`` the layer's attention receives; as it is
        where it receives none (positions added at the input: BERT, GPT-2, OPT)."""
        if self.rotary is None or position_embeddings is None:
            return x
        if self.rotary == "gptj":
            sin, cos = position_embeddings
            return rotate_pairs(x, cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1))
        return (rotate_pairs if self.rotary == "pairs" else rotate)(x, *position_embeddings)

    def position_embeddings(self, rotary: nn.Module, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """What the model's ``rotary`` module gives this layer for ``positions (B, n)``, negative ones included."""
        if self.rotary == "gptj":  # a table of positions 0, 1, ...: sin(-a) = -sin(a), cos(-a) = cos(a)
            sin, cos = rotary(x, positions.abs())
            return torch.where(positions[..., None] < 0, -sin, sin), cos
        if self.layer_type is not None and hasattr(rotary, "layer_types"):  # one embedding per layer type (Gemma-3)
            return rotary(x, positions, self.layer_type)
        return rotary(x, positions)


def _deberta(model: nn.Module, inner: nn.Module, head_dim: int) -> tuple[float, Callable[[], Tensor] | None]:
    """The scale of DeBERTa's scores and its position query at relative distance 0 (``None`` without ``p2c``)."""
    kinds = [kind for kind in ("c2p", "p2c") if kind in inner.pos_att_type]
    scaling = (head_dim * (1 + len(kinds))) ** -0.5
    if not getattr(inner, "relative_attention", False) or "p2c" not in kinds:
        return scaling, None
    encoder = next(m for m in model.modules() if hasattr(m, "get_rel_embedding"))
    project = inner.query_proj if inner.share_att_key else inner.pos_query_proj

    def at_zero() -> Tensor:  # the embeddings of distances -span..span-1: distance 0 is row span
        return project(encoder.get_rel_embedding()[inner.pos_ebd_size])

    return scaling, at_zero


def attention_geometry(model: nn.Module, attn: nn.Module, inner: nn.Module, head_dim: int) -> Geometry:
    """The geometry of the attention module ``attn`` of ``model``; ``inner`` is the module holding its query
    projection (BERT's ``attention.self``; ``attn`` itself in most models)."""

    def find(names: tuple[str, ...]) -> nn.Module | None:
        return next((m for m in (getattr(inner, n, None) for n in names) if isinstance(m, nn.Module)), None)

    scaling = getattr(inner, "scaling", getattr(inner, "inv_norm_factor", getattr(attn, "scaling", None)))  # BLOOM's
    position_query = None
    if hasattr(inner, "pos_att_type"):
        scaling, position_query = _deberta(model, inner, head_dim)
    config = model.config
    return Geometry(
        scaling=float(scaling) if isinstance(scaling, (int, float)) else head_dim**-0.5,
        softcap=getattr(inner, "attn_logit_softcapping", None),
        query_norm=find(_QUERY_NORMS),
        key_norm=find(_KEY_NORMS),
        # SmolLM3 leaves the rotary embedding out of some layers
        rotary=ROTARY_STYLES.get(getattr(config, "model_type", None), "halves")
        if getattr(inner, "use_rope", 1)
        else None,
        layer_type=getattr(inner, "layer_type", None),
        # a module without its own (Mistral's) reads its config's
        sliding_window=getattr(
            inner, "sliding_window", getattr(getattr(inner, "config", None), "sliding_window", None)
        ),
        position_query=position_query,
        # BERT-style layers keep it on the inner module; a decoder's attention may not say (Llama's does)
        causal=bool(getattr(inner, "is_causal", getattr(attn, "is_causal", True))),
    )
