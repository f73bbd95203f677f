"""The knowledge path ``G(x, Z)`` of a KG-LoRA layer, and the context that feeds it.

peft's LoRA layer computes ``h = W x + s * B(A x)``. KG-LoRA adds the knowledge path in
the rank-r space, ``h = W x + s * B(A x + G(x, Z))``, by a forward hook on ``lora_A`` that
adds ``G`` to its output. So peft keeps doing what it does (target matching, ``nn.Linear``
and GPT-2's ``Conv1D``, dropout, scaling, saving), and because ``lora_B`` starts at zero a
fresh adapter computes exactly what the base model computes.

The graph states ``Z`` are set on a :class:`KnowledgeContext` for one forward call.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from peft.tuners.lora import LoraLayer
from torch import nn

from kgpeft.errors import KGPeftError
from kgpeft.tuners.sites import POSITION_METHODS


class KnowledgeError(KGPeftError, ValueError):
    """The knowledge passed with a forward call does not fit the inputs or the config."""


@dataclass
class KnowledgeState:
    """What the adapter layers of one forward call read; each knowledge mode has its own subclass.

    Attributes:
        batch_size: the rows the state was prepared for.
    """

    batch_size: int

    #: The fact memory (a :class:`~kgpeft.tuners.memory.FactMemory`) of ``memory`` mode's state, ``None`` for
    #: the other modes: :func:`kgpeft.explain.explain` reads it of any state.
    memory: ClassVar[Any] = None
    #: Whether the state links the input's tokens to nodes, so that a generation step that sees
    #: other tokens (generated ones) must not read it as is (see :meth:`unlinked`).
    links_tokens: ClassVar[bool] = False

    def expand_to(self, batch_size: int) -> KnowledgeState:
        """Repeat each sample for beam search / several return sequences (``B * k`` rows).

        Each tensor field is repeated along its first axis, each field with an ``expand_to`` of
        its own asked to expand itself; other fields are kept.
        """
        if batch_size == self.batch_size:
            return self
        if batch_size % self.batch_size:
            raise KnowledgeError(
                f"The knowledge was prepared for a batch of {self.batch_size}, but a layer got a batch of "
                f"{batch_size}; pass one knowledge entry per input row."
            )
        k = batch_size // self.batch_size
        values = {}
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.repeat_interleave(k, dim=0)
            elif hasattr(value, "expand_to"):
                value = value.expand_to(batch_size)
            values[f.name] = value
        return type(self)(batch_size, **values)

    def unlinked(self) -> KnowledgeState:
        """The state for tokens linked to nothing (generated ones); the state itself when it links none."""
        return self


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
        only generated tokens, which ``token_node_index`` does not cover (:meth:`KnowledgeState.unlinked`).
        The state set by
        :meth:`activate` comes back when its block ends.
        """
        if self.state is not None:
            self.state = self.state.unlinked()

    def after_prefill_hook(self):
        """A forward hook for the base model that calls :meth:`drop_token_states` after each step."""

        def hook(module: nn.Module, args: tuple, output) -> None:
            self.drop_token_states()

        return hook


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


_DECODER = re.compile(r"(^|\.)decoder\.")
# Projections that only ever read relative-position embeddings (DeBERTa's pos_key_proj, pos_query_proj,
# v1's pos_proj, pos_q_proj): LoRA adapts them, but they see no token to give knowledge to.
_POSITION_PROJECTION = re.compile(r"(^|\.)pos_\w*proj$")


def fuse_into_lora(
    model: nn.Module,
    adapter_name: str,
    context: KnowledgeContext,
    make_fusion: Callable[[str, nn.Module], nn.Module | None],
) -> tuple[nn.ModuleDict, list[torch.utils.hooks.RemovableHandle]]:
    """Give each ``lora_A`` of ``adapter_name`` in ``model`` a knowledge path, ``make_fusion(name, lora_a)``.

    Projections that read only relative positions get none, nor those for which ``make_fusion``
    returns ``None``.

    Returns:
        The fusions, keyed by module name with ``__`` for dots (``nn.ModuleDict`` keys cannot hold
        dots), and the hook handles.
    """
    fusions, handles = nn.ModuleDict(), []
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer) or adapter_name not in module.lora_A or _POSITION_PROJECTION.search(name):
            continue
        lora_a = module.lora_A[adapter_name]
        fusion = make_fusion(name, lora_a)
        if fusion is None:
            continue
        fusions[name.replace(".", "__")] = fusion
        handles.append(lora_a.register_forward_hook(knowledge_hook(fusion, context)))
    return fusions, handles


def in_decoder(name: str) -> bool:
    """Whether the module ``name`` lies in the decoder of an encoder-decoder."""
    return bool(_DECODER.search(name))


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
