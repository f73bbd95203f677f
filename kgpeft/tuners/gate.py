r"""The gated read of memory slots: attention of the text's queries over slots in a softmax of their own.

:class:`MemoryGate` is LLaMA-Adapter's zero-initialised per-head gate and the read it gates; the fact
memory (:mod:`kgpeft.tuners.memory`) and the graph prefix (:mod:`kgpeft.tuners.prefix`) read through it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgpeft.tuners.geometry import Geometry


def _heads(slots: Tensor, num_heads: int, dtype: torch.dtype) -> Tensor:
    """Slots ``(B, M, H_kv, d)`` repeated for each query head that reads them: ``(B, H, M, d)``."""
    return slots.to(dtype).repeat_interleave(num_heads // slots.size(2), dim=2).transpose(1, 2)


def _gated_read(
    q: Tensor,
    keys: Tensor,
    values: Tensor,
    mask: Tensor,
    bias: Tensor | None,
    has_slots: Tensor,
    gate: Tensor,
    geometry: Geometry,
) -> tuple[Tensor, Tensor]:
    """The attention of the queries ``q (B, T, H * d)`` over the slots ``keys, values (B, M, H_kv, d)``,
    scored as ``geometry`` says, gated per head by ``gate (1, H, 1, 1)``.

    Returns the softmax of the attention logits ``(B, H, T, M)`` and the gated read
    ``(B, H, T, d)``, to which a sample without slots (``has_slots`` 0) gives zero.
    """
    b, t, _ = q.shape
    h, d = gate.size(1), keys.size(-1)
    k, v = _heads(keys, h, q.dtype), _heads(values, h, q.dtype)  # (B, H, M, d)
    q = q.view(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
    logits = geometry.scores(q, k)  # (B, H, T, M)
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
    of ``q @ k^T`` with respect to ``q`` reads only ``k``, so it runs on a zero stand-in. Scores
    that are soft-capped (Gemma-2) take autograd's way, whose derivative needs them.
    """

    @staticmethod
    def forward(ctx, q, keys, values, mask, bias, has_slots, gate, geometry):
        softmax, out = _gated_read(q, keys, values, mask, bias, has_slots, gate, geometry)
        ctx.save_for_backward(softmax, keys, values, mask, has_slots, gate)
        ctx.q_shape, ctx.q_dtype, ctx.scaling = q.shape, q.dtype, geometry.scaling
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
        grad_logits = grad_logits.masked_fill(~mask, 0) * ctx.scaling
        grad_q = None
        if ctx.needs_input_grad[0]:
            b, t, _ = ctx.q_shape
            d = k.size(-1)
            with torch.enable_grad():
                stand_in = k.new_zeros(ctx.q_shape).requires_grad_()
                logits = stand_in.view(b, t, h, d).transpose(1, 2) @ k.transpose(-1, -2)
                (grad_q,) = torch.autograd.grad(logits, stand_in, grad_logits)
        return grad_q, None, None, None, None, None, grad_gate, None


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

    def forward(
        self,
        q: Tensor,
        keys: Tensor,
        values: Tensor,
        mask: Tensor,
        bias: Tensor | None,
        geometry: Geometry | None = None,
    ) -> Tensor:
        """The gated read; ``geometry`` scores the slots as the layer scores its keys (default: by ``d_h**-0.5``)."""
        b, t, _ = q.shape
        h, d = self.gate.numel(), keys.size(-1)
        geometry = Geometry(d**-0.5) if geometry is None else geometry
        bias = None if bias is None else bias.to(q.dtype)[:, None, None, :]  # (B, 1, 1, M)
        mask = mask[:, None, None, :]  # (B, 1, 1, M)
        has_slots = mask.any(-1, keepdim=True).to(q.dtype)  # (B, 1, 1, 1): a sample without slots reads nothing
        gate = torch.tanh(self.scale * self.gate).to(q.dtype)[None, :, None, None]  # (1, H, 1, 1)
        # the custom backward gives no gradient to the slots nor to a bias (the fact scorer's, trained jointly)
        frozen_memory = not (keys.requires_grad or values.requires_grad or (bias is not None and bias.requires_grad))
        if self.record is None and frozen_memory and geometry.softcap is None and torch.is_grad_enabled():
            out = _GatedRead.apply(q, keys, values, mask, bias, has_slots, gate, geometry)  # (B, H, T, d)
        else:
            softmax, out = _gated_read(q, keys, values, mask, bias, has_slots, gate, geometry)
            if self.record is not None:  # each slot's share of the heads' output: attention times gate opening
                self.record.append((softmax * has_slots * gate.abs()).mean(1).detach())  # (B, T, M)
        return out.transpose(1, 2).reshape(b, t, h * d)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_heads={self.gate.numel()}, scale={self.scale})"
