"""Frozen per-token layers computed for real tokens only, not for padding.

A batch of short texts padded to its longest is largely padding: a fifth of the main job's
question tokens and a third of its fact tokens. In a transformer no padding position
reaches a real token (attention masks it as a key; right padding comes after the tokens,
left padding is masked out), so what a per-token layer computes there is never read. Inside
:func:`skip_padding`, the frozen feed-forward blocks of the model's transformer body (two
thirds of the multiply-adds of a LoRA step; in models without such blocks, every frozen
linear layer) run on the rows of real tokens only and give zero at padding positions.

The results are bit-identical, not just close: a row of a matrix product is computed the
same whatever the other rows are (checked for SmolLM2's MLP at the main job's shapes and, in
the tests, for every architecture of the suite: same loss, same gradients), a frozen
layer has no weight gradient to sum over the tokens, and the trainable layers (LoRA, the
knowledge paths) still see every position, padding included.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from kgpeft.tuners.sites import POSITION_METHODS


@dataclass
class _Rows:
    """The real-token rows of the transformer body's call in progress (a stack: bodies may nest)."""

    stack: list[tuple[torch.Size, Tensor] | None] = field(default_factory=list)

    def current(self, x: Tensor) -> Tensor | None:
        """Flat indices of the real tokens of ``x (*mask shape, d)``, or ``None`` to compute every row."""
        if not self.stack or self.stack[-1] is None:
            return None
        shape, rows = self.stack[-1]
        return rows if x.shape[:-1] == shape else None  # decoding steps see fewer tokens than the mask


def _bodies(model: nn.Module) -> list[nn.Module]:
    """The transformer bodies of ``model`` whose frozen layers may skip padding.

    A body is an innermost Hugging Face model, the module called with ``attention_mask``
    (``LlamaModel``, ``BertModel``, T5's encoder stack, ...). Left out: the decoder of an
    encoder-decoder (its cross-attention projections read the encoder's tokens, which its
    own mask does not describe) and bodies whose projections also read relative-position
    embeddings (DeBERTa), which are no tokens.
    """
    from transformers import PreTrainedModel

    found = [m for m in model.modules() if isinstance(m, PreTrainedModel)]
    innermost = [m for m in found if not any(c is not m and isinstance(c, PreTrainedModel) for c in m.modules())]
    pairs = [m for m in found if getattr(m.config, "is_encoder_decoder", False) and hasattr(m, "get_decoder")]
    decoders = [(m, m.get_decoder()) for m in pairs]  # an encoder stack names itself: no decoder of its own
    decoder_modules = {id(x) for m, d in decoders if d is not None and d is not m for x in d.modules()}
    return [
        body
        for body in innermost
        if id(body) not in decoder_modules
        and not any(hasattr(type(m), name) for m in body.modules() for name in POSITION_METHODS)
    ]


#: Attribute names of the per-token feed-forward blocks of transformer layers (Llama, Qwen2,
#: Mistral, Gemma, GPT-2, GPT-NeoX, Phi, ...), which skip padding as a whole when frozen.
MLP_NAMES = ("mlp",)


def _per_token_modules(body: nn.Module) -> list[nn.Module]:
    """The frozen per-token modules of ``body`` that skip padding.

    Its feed-forward blocks (:data:`MLP_NAMES`) whole: one gather and one scatter for all their
    layers, two thirds of a layer's multiply-adds. A body without such blocks (BERT, T5, OPT,
    ...), or whose blocks hold dropout (GPT-2: fewer rows would draw other dropout masks) or
    read more than the tokens' states (BLOOM's adds the residual inside), skips padding in each
    frozen ``nn.Linear`` and GPT-2-style ``Conv1D`` layer instead (their exact types: not
    adapters). Skipping it in the frozen base of the LoRA projections too saved nothing
    measurable: there the gather and scatter cost what the rows save.
    """
    from transformers.pytorch_utils import Conv1D

    blocks = [
        m
        for name, m in body.named_modules()
        if name.rsplit(".", 1)[-1] in MLP_NAMES
        and not any(p.requires_grad for p in m.parameters())
        and not any(isinstance(d, nn.Dropout) and d.p > 0 for d in m.modules())
        and len(inspect.signature(m.forward).parameters) == 1  # BLOOM's takes the residual too
    ]
    if blocks:
        return blocks
    return [m for m in body.modules() if type(m) in (nn.Linear, Conv1D) and not m.weight.requires_grad]


@contextmanager
def skip_padding(model: nn.Module) -> Iterator[None]:
    """Inside the block, ``model``'s frozen per-token layers compute only the rows of real tokens.

    Applies to each call of a transformer body that gets a 2-D ``attention_mask`` with
    padding; other calls (no mask, no padding, a decoding step of one token) compute every
    row as usual. Trainable layers are left alone. Blocks may nest (the outermost does the
    work). Outside the block the model is unchanged.

    Example::

        with skip_padding(model):
            loss = model(**batch).loss
            loss.backward()
    """
    rows = _Rows()
    handles, patched = [], []
    for body in _bodies(model):
        modules = _per_token_modules(body)
        if any("forward" in vars(m) for m in modules):
            continue  # skipping padding already, in an enclosing block (generation inside a training loop)
        handles.append(body.register_forward_pre_hook(_enter(rows), with_kwargs=True))
        handles.append(body.register_forward_hook(_leave(rows), always_call=True))
        for module in modules:
            module.forward = _rows_only(module, rows)
            patched.append(module)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module in patched:
            del module.forward  # back to the class's forward


def _enter(rows: _Rows):
    def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("attention_mask")
        if not isinstance(mask, Tensor) or mask.dim() != 2 or bool(mask.all()):
            rows.stack.append(None)
        else:
            rows.stack.append((mask.shape, mask.reshape(-1).nonzero().view(-1)))

    return hook


def _leave(rows: _Rows):
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        rows.stack.pop()

    return hook


def _rows_only(module: nn.Module, rows: _Rows):
    forward = type(module).forward

    def rows_only(x: Tensor) -> Tensor:
        real = rows.current(x)
        if real is None:
            return forward(module, x)
        flat = x.reshape(-1, x.size(-1))  # (B * T, d_in)
        y = forward(module, flat[real])  # (N, d_out): the real tokens only
        out = y.new_zeros(flat.size(0), y.size(-1))  # (B * T, d_out), zero at padding
        out[real] = y
        return out.view(*x.shape[:-1], y.size(-1))

    return rows_only
