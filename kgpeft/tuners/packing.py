"""The fact pass packed: every real fact token in a few sequences, no padding between the rows.

The fact pass runs the model over each sample's facts (or each fact alone), every row padded to the longest; at
the main job's budget a quarter of its tokens are padding. Packed, the rows' real tokens follow one another in
sequences of at most ``capacity`` tokens, each row's positions starting again at 0, and no attention mask:
transformers then confines each token's attention to its own row (a position that does not follow the one before
starts a sequence: ``masking_utils.find_packed_sequence_indices``). A model that builds its masks another way
would let the rows read each other, silently. So the first packed pass of each model (and attention function) is
checked once against the padded pass, and whether a change of one row's tokens leaves the other rows' states as
they were; a model that fails either is run padded from then on.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

#: the longest packed sequence (tokens), unless a single row is longer: the attention within a sequence grows with
#: its square
CAPACITY = 512
#: the largest relative difference of a token's final state, packed against padded, that is rounding: in single or
#: double precision, and in half
TOLERANCE, HALF_TOLERANCE = 1e-3, 5e-2


@dataclass
class Packing:
    """Rows of fact tokens packed into sequences.

    Attributes:
        input_ids: ``(S, T)`` the packed sequences; a sequence shorter than ``T`` ends in a run of token 0 with
            positions from 0, a sequence of its own whose states are never read.
        position_ids: ``(S, T)`` each token's position in its row.
        token: ``(R,)`` where each real token sits in the rows, flat index into ``(n, L)``.
        slot: ``(R,)`` where it sits in the packed sequences, flat index into ``(S, T)``.
    """

    input_ids: Tensor
    position_ids: Tensor
    token: Tensor
    slot: Tensor

    @classmethod
    def of(cls, ids: Tensor, mask: Tensor, capacity: int = CAPACITY) -> Packing:
        """Pack the real tokens (``mask``) of the rows ``ids`` ``(n, L)``, in order, consecutive rows together
        while a sequence holds them."""
        lengths = mask.sum(-1)
        capacity = max(capacity, int(lengths.max()))
        sequence, start, fill = [], [], [0]
        for length in lengths.tolist():
            if fill[-1] + length > capacity:
                fill.append(0)
            sequence.append(len(fill) - 1)
            start.append(fill[-1])
            fill[-1] += length
        width, device = max(fill), ids.device
        row, col = mask.nonzero(as_tuple=True)  # row-major: each row's tokens in order
        rank = mask.long().cumsum(-1)[row, col] - 1
        sequence_of, start_of = torch.tensor(sequence, device=device)[row], torch.tensor(start, device=device)[row]
        slot = sequence_of * width + start_of + rank
        # the tail after a sequence's rows: positions from 0, a sequence of its own
        positions = torch.arange(width, device=device) - torch.tensor(fill, device=device)[:, None]
        positions = positions.clamp(min=0).view(-1).index_put((slot,), rank).view(len(fill), width)
        packed = ids.new_zeros(len(fill) * width).index_put((slot,), ids[row, col]).view(len(fill), width)
        return cls(packed, positions, row * ids.size(1) + col, slot)

    @property
    def tokens(self) -> int:
        return self.input_ids.numel()

    def inputs(self) -> dict[str, Tensor | bool]:
        """The encoder's arguments: no mask and no cache, so that the positions say where each row starts."""
        return {"input_ids": self.input_ids, "position_ids": self.position_ids, "use_cache": False}

    def unpack(self, states: Tensor, rows: int, length: int) -> Tensor:
        """Packed ``states`` ``(S, T, D)`` laid out as the rows ``(rows, length, D)``, zeros at their padding."""
        flat = states.reshape(-1, states.size(-1))[self.slot]
        full = states.new_zeros((rows * length, states.size(-1)))
        return full.index_put((self.token,), flat).view(rows, length, -1)


def accepts(module: nn.Module, *names: str) -> bool:
    """Whether ``module``'s forward takes the keyword arguments ``names``."""
    parameters = inspect.signature(module.forward).parameters
    return all(n in parameters for n in names) or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def packable(encoder: nn.Module) -> bool:
    """Whether ``encoder``'s forward can be given positions and no cache, what a packed pass needs."""
    return accepts(encoder, "position_ids", "use_cache")


def _states(encoder: nn.Module, inputs: dict, at: Tensor) -> Tensor:
    """The final states ``(R, D)`` of the tokens ``at`` (flat indices) of a pass without gradient."""
    with torch.no_grad():
        states = encoder(**inputs)[0]
    return states.reshape(-1, states.size(-1))[at]


def _apart(got: Tensor, want: Tensor) -> float:
    """The largest relative difference of a token's state."""
    got, want = got.float(), want.float()
    return float(((got - want).norm(dim=-1) / want.norm(dim=-1).clamp_min(1e-6)).max())


def _honours(encoder: nn.Module, padded_inputs: dict[str, Tensor], packing: Packing, first: int) -> bool | None:
    """Whether the packed pass gives each token the final state the padded pass gives it (up to rounding, which
    in half precision is as large as a small model's leak), and whether the other rows' states stay exactly the
    same when the first row's ``first`` tokens change (rows that read each other would not); ``None``: every token
    is the same, so no change can be made."""
    ids = packing.input_ids.view(-1)
    low, high = ids[packing.slot].min(), ids[packing.slot].max()
    if low == high:
        return None
    changed = ids.clone()
    head = packing.slot[:first]
    changed[head] = torch.where(ids[head] == low, high, low)
    training = encoder.training
    try:
        encoder.eval()
        want = _states(encoder, padded_inputs, packing.token)
        got = _states(encoder, packing.inputs(), packing.slot)
        other = _states(encoder, {**packing.inputs(), "input_ids": changed.view_as(packing.input_ids)}, packing.slot)
    finally:
        encoder.train(training)
    rounding = TOLERANCE if want.dtype in (torch.float32, torch.float64) else HALF_TOLERANCE
    return _apart(got, want) <= rounding and _apart(other[first:], got[first:]) <= TOLERANCE


def pack(encoder: nn.Module, padded_inputs: dict[str, Tensor]) -> Packing | None:
    """The packing of the padded pass's rows (``input_ids``, ``attention_mask``: ``(n, L)``), or ``None``: run
    them padded (one row, no padding saved, or a model that does not confine a packed sequence's attention).

    The first packing of each encoder and attention function is checked against the padded pass (one extra pass
    of each, without gradient); the answer is kept on the encoder.
    """
    ids, mask = padded_inputs["input_ids"], padded_inputs["attention_mask"].bool()
    positioned = "position_ids" in padded_inputs
    if ids.size(0) < 2 or not packable(encoder):
        return None
    if not positioned and not bool((mask[:, 1:] <= mask[:, :-1]).all()):
        return None  # padding before a row's tokens: the model's own positions count it
    packing = Packing.of(ids, mask)
    if packing.tokens >= ids.numel():
        return None
    verdicts = encoder.__dict__.setdefault("_kgpeft_packing", {})
    key = (getattr(getattr(encoder, "config", None), "_attn_implementation", None), positioned)
    if key not in verdicts:
        verdict = _honours(encoder, padded_inputs, packing, int(mask[0].sum()))
        if verdict is None:
            return None
        verdicts[key] = verdict
        if not verdict:
            logger.info(
                "%s does not confine a packed sequence's attention: its fact pass runs padded", type(encoder).__name__
            )
    return packing if verdicts[key] else None
