"""The knowledge path ``G(x, Z)`` of a KG-LoRA layer, and the context that feeds it.

peft's LoRA layer computes ``h = W x + s * B(A x)``. KG-LoRA adds the knowledge path in
the rank-r space, ``h = W x + s * B(A x + G(x, Z))``, by a forward hook on ``lora_A`` that
adds ``G`` to its output. So peft keeps doing what it does (target matching, ``nn.Linear``
and GPT-2's ``Conv1D``, dropout, scaling, saving), and because ``lora_B`` starts at zero a
fresh adapter computes exactly what the base model computes.

The graph states ``Z`` are set on a :class:`KnowledgeContext` for one forward call.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kgpeft.errors import KGPeftError


class KnowledgeError(KGPeftError, ValueError):
    """The knowledge passed with a forward call does not fit the inputs or the config."""


@dataclass
class KnowledgeState:
    """Graph states prepared for the adapter layers of one forward call.

    Attributes:
        token_states: ``(B, T, d_graph)``: for each input token the state of the node it is
            linked to, zero where none (``token`` mode). ``None`` when the tokens of this
            call are not the linked input (decoding steps of ``generate``).
        node_states: ``(B, M, d_graph)``: each sample's subgraph nodes, padded (``cross`` mode).
        node_mask: ``(B, M)``: ``True`` for real nodes (``cross`` mode).
        extends: whether a layer may see more tokens than ``token_states`` covers, the
            extra (generated) ones linked to nothing: ``generate`` without a KV cache
            recomputes the prompt plus the tokens generated so far.
        memory: the per-layer key/value slots of the selected facts (``memory`` mode, a
            :class:`~kgpeft.tuners.memory.FactMemory`).
        prefix: the per-layer keys/values of the pooled-graph soft tokens (``prefix`` mode, a
            :class:`~kgpeft.tuners.memory.FactMemory`).
    """

    batch_size: int
    token_states: torch.Tensor | None = None
    node_states: torch.Tensor | None = None
    node_mask: torch.Tensor | None = None
    extends: bool = False
    memory: Any = None
    prefix: Any = None

    def expand_to(self, batch_size: int) -> KnowledgeState:
        """Repeat each sample for beam search / several return sequences (``B * k`` rows)."""
        if batch_size == self.batch_size:
            return self
        if batch_size % self.batch_size:
            raise KnowledgeError(
                f"The knowledge was prepared for a batch of {self.batch_size}, but a layer got a batch of "
                f"{batch_size}; pass one knowledge entry per input row."
            )
        k = batch_size // self.batch_size

        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat_interleave(k, dim=0)

        memory = None if self.memory is None else self.memory.expand_to(batch_size)
        prefix = None if self.prefix is None else self.prefix.expand_to(batch_size)
        return KnowledgeState(
            batch_size, rep(self.token_states), rep(self.node_states), rep(self.node_mask), self.extends, memory, prefix
        )


class KnowledgeContext:
    """Holds the :class:`KnowledgeState` of the forward call in progress.

    :meth:`activate` sets it for the duration of a ``with`` block and always restores the
    previous one, also when the block raises. Gradient checkpointing recomputes layers
    during backward, after the block has ended; :meth:`checkpoint_context_fn` (passed to
    ``torch.utils.checkpoint`` as ``context_fn``) captures the state at forward time and
    re-installs it for the recomputation, so the recomputed layers see the same graph.
    """

    def __init__(self) -> None:
        self.state: KnowledgeState | None = None
        self.reading_positions = 0  # > 0 while projections embed positions, not tokens

    @contextmanager
    def positions(self) -> Iterator[None]:
        """Mark the projection calls inside the block as reading position embeddings, not the tokens."""
        self.reading_positions += 1
        try:
            yield
        finally:
            self.reading_positions -= 1

    @contextmanager
    def activate(self, state: KnowledgeState | None) -> Iterator[None]:
        previous, self.state = self.state, state
        try:
            yield
        finally:
            self.state = previous

    def checkpoint_context_fn(self):
        return nullcontext(), self.activate(self.state)

    def drop_token_states(self) -> None:
        """Link the tokens of the rest of the call to nothing, keeping the subgraph's node states.

        ``generate`` with a KV cache calls this after the prefill step: the later steps see
        only generated tokens, which ``token_node_index`` does not cover. The state set by
        :meth:`activate` comes back when its block ends.
        """
        if self.state is not None and self.state.token_states is not None:
            self.state = replace(self.state, token_states=None)

    def after_prefill_hook(self):
        """A forward hook for the base model that calls :meth:`drop_token_states` after each step."""

        def hook(module: nn.Module, args: tuple, output) -> None:
            self.drop_token_states()

        return hook


class TokenFusion(nn.Module):
    r"""Entity-aligned fusion (as in ERNIE/KnowBERT), in rank space.

    .. math::
        G(x, Z)_t = P \, z_{\pi(t)}

    where :math:`\pi(t)` is the node linked to token :math:`t` (:math:`z = 0` where none).

    Args:
        graph_channels (int): width of the node states.
        r (int): LoRA rank.

    Shapes:
        - x: ``(B, T, in_features)``; token states ``(B, T, graph_channels)``
        - output: ``(B, T, r)``
    """

    def __init__(self, graph_channels: int, r: int) -> None:
        super().__init__()
        self.proj = nn.Linear(graph_channels, r, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.proj.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, state: KnowledgeState) -> torch.Tensor | None:
        if state.token_states is None:
            return None
        z = state.token_states  # (B, T, d_graph)
        if state.extends and x.dim() == 3 and x.size(1) > z.size(1):
            z = F.pad(z, (0, 0, 0, x.size(1) - z.size(1)))  # (B, T_x, d_graph)
        if x.dim() != 3 or z.shape[:2] != x.shape[:2]:
            raise KnowledgeError(
                f"`token_node_index` covers {tuple(z.shape[:2])} (batch, tokens), but the layer got inputs of shape "
                f"{tuple(x.shape[:-1])}; align the index with the same tokenized batch."
            )
        return self.proj(z.to(self.proj.weight.dtype))  # (B, T, r)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.proj.in_features}, r={self.proj.out_features})"


class CrossFusion(nn.Module):
    r"""Graph attention in rank space (as in GreaseLM/KG-Adapter).

    Each token attends over its own sample's subgraph nodes plus a learned null slot:

    .. math::
        G(x, Z) = \mathrm{softmax}\!\left(\frac{(Q x)(K [z_\varnothing; Z])^\top}{\sqrt{r}}\right)
        [0; V Z]

    The null slot's value is zero, so a sample without nodes (or a token that finds
    nothing relevant) adds nothing and reduces to plain LoRA.

    Args:
        in_features (int): width of the layer input ``x``.
        graph_channels (int): width of the node states.
        r (int): LoRA rank.

    Shapes:
        - x: ``(B, T, in_features)``; node states ``(B, M, graph_channels)``
        - output: ``(B, T, r)``
    """

    def __init__(self, in_features: int, graph_channels: int, r: int) -> None:
        super().__init__()
        self.query = nn.Linear(in_features, r, bias=False)
        self.key = nn.Linear(graph_channels, r, bias=False)
        self.value = nn.Linear(graph_channels, r, bias=False)
        self.null_key = nn.Parameter(torch.empty(r))
        self.record: list[torch.Tensor] | None = None  # set by kgpeft.explain to keep the attention weights
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.query, self.key, self.value):
            nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5))
        nn.init.zeros_(self.null_key)

    def forward(self, x: torch.Tensor, state: KnowledgeState) -> torch.Tensor | None:
        if state.node_states is None:
            return None
        squeeze = x.dim() == 2  # some layers see (B * T, d); attention needs the batch axis
        if squeeze:
            x = x.view(state.batch_size, -1, x.size(-1))
        z = state.node_states.to(self.key.weight.dtype)  # (B, M, d_graph)
        b = z.size(0)
        q = self.query(x)  # (B, T, r)
        k = torch.cat([self.null_key.expand(b, 1, -1), self.key(z)], dim=1)  # (B, M + 1, r)
        v = torch.cat([z.new_zeros(b, 1, q.size(-1)), self.value(z)], dim=1)  # (B, M + 1, r)
        mask = torch.cat([state.node_mask.new_ones(b, 1), state.node_mask], dim=1)  # (B, M + 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, :])  # (B, T, r)
        if self.record is not None:  # an explanation reads each token's attention over the nodes
            logits = (q @ k.transpose(-1, -2) * q.size(-1) ** -0.5).masked_fill(~mask[:, None, :], float("-inf"))
            self.record.append(logits.softmax(-1)[..., 1:].detach())  # (B, T, M), the null slot left out
        return out.reshape(-1, out.size(-1)) if squeeze else out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.query.in_features}, {self.key.in_features}, r={self.query.out_features})"


def knowledge_hook(fusion: nn.Module, context: KnowledgeContext):
    """A forward hook for ``lora_A`` that adds ``fusion``'s knowledge path to its output."""

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        state = context.state
        if state is None or context.reading_positions:
            return None  # no knowledge, or a relative-position embedding (not a token) in the projection
        x = args[0]
        g = fusion(x, state.expand_to(x.size(0)) if x.dim() == 3 else state)
        return None if g is None else output + g.to(output.dtype)

    return hook


#: Methods of attention modules that pass relative-position embeddings through the attention
#: projections (DeBERTa's ``query_proj``/``key_proj``, or ``pos_*_proj``): those calls are no tokens.
POSITION_METHODS = ("disentangled_attention_bias",)


def mark_position_calls(model: nn.Module, context: KnowledgeContext) -> list[nn.Module]:
    """Run each :data:`POSITION_METHODS` method of ``model``'s modules inside :meth:`KnowledgeContext.positions`.

    LoRA still adapts those projection calls; the knowledge path, which belongs to tokens,
    skips them. Returns the modules changed, for :func:`unmark_position_calls`.
    """
    marked = []
    for module in model.modules():
        for name in POSITION_METHODS:
            method = getattr(type(module), name, None)
            if method is None or name in vars(module):
                continue

            def wrapped(self: nn.Module, *args: Any, _method=method, **kwargs: Any) -> Any:
                with context.positions():
                    return _method(self, *args, **kwargs)

            setattr(module, name, types.MethodType(wrapped, module))
            marked.append(module)
    return marked


def unmark_position_calls(modules: list[nn.Module]) -> None:
    """Undo :func:`mark_position_calls`."""
    for module in modules:
        for name in POSITION_METHODS:
            vars(module).pop(name, None)
