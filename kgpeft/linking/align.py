"""Alignment of mention character spans to the token positions of a fast tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from kgpeft.linking.matcher import Mention

_Offsets = torch.Tensor | Sequence[Sequence[int]]


def align(
    mentions: Sequence[Mention],
    offsets: _Offsets,
    *,
    target: Literal["entity", "mention"] = "entity",
) -> torch.Tensor:
    r"""Which mention each token belongs to, from a fast tokenizer's ``offset_mapping``.

    A token belongs to a mention if their character spans overlap. Tokens with an empty
    span, such as the special tokens and padding (offsets ``(0, 0)``), belong to none.
    A token that overlaps several mentions (a word piece spanning two names) belongs to
    the first of them in ``mentions``, which is the leftmost for the output of
    :meth:`~kgpeft.linking.EntityLinker.link`.

    Args:
        mentions (Sequence[Mention]): mentions in the text that was tokenized.
        offsets (Tensor or Sequence[Sequence[int]]): each token's ``(start, end)``
            character span, e.g. ``tokenizer(text, return_offsets_mapping=True)["offset_mapping"]``.
        target (str, optional): ``"entity"`` for the mention's top candidate entity id,
            ``"mention"`` for its position in ``mentions`` (to reach all its candidates).
            (default: :obj:`"entity"`)

    Returns:
        Tensor: the entity id (or mention index) of each token, ``-1`` where none.

    Shapes:
        - **input:** offsets :math:`(T, 2)`
        - **output:** :math:`(T)`, long

    Example:
        >>> mentions = linker.link("The bank of New York City.")  # EntityLinker(load_wordnet())
        >>> [(m.start, m.end, m.entity) for m in mentions]
        [(4, 8, 49496), (12, 25, 49007)]
        >>> offsets = [(0, 0), (0, 3), (4, 8), (9, 11), (12, 15), (16, 20), (21, 25), (25, 26), (0, 0)]  # BERT's
        >>> align(mentions, offsets)
        tensor([   -1,    -1, 49496,    -1, 49007, 49007, 49007,    -1,    -1])
    """
    offsets = torch.as_tensor(offsets, dtype=torch.long)
    if offsets.numel() == 0:
        offsets = offsets.reshape(0, 2)
    if offsets.dim() != 2 or offsets.size(1) != 2:
        raise ValueError(f"`offsets` should have shape (T, 2), got {tuple(offsets.shape)}.")
    return align_batch([mentions], offsets[None], target=target)[0]


def align_batch(
    mentions: Sequence[Sequence[Mention]],
    offsets: _Offsets | Sequence[_Offsets],
    *,
    target: Literal["entity", "mention"] = "entity",
) -> torch.Tensor:
    r""":func:`align` for a padded batch: one mention list and one row of offsets per text.

    Args:
        mentions (Sequence[Sequence[Mention]]): the mentions of each text.
        offsets (Tensor or nested Sequence): the batch's ``offset_mapping``, e.g. from
            ``tokenizer(texts, padding=True, return_offsets_mapping=True, return_tensors="pt")``.
        target (str, optional): ``"entity"`` or ``"mention"``, as in :func:`align`.
            (default: :obj:`"entity"`)

    Returns:
        Tensor: the entity id (or mention index) of each token, ``-1`` where none.

    Shapes:
        - **input:** offsets :math:`(B, T, 2)`
        - **output:** :math:`(B, T)`, long
    """
    if target not in ("entity", "mention"):
        raise ValueError(f"`target` should be 'entity' or 'mention', got {target!r}.")
    offsets = torch.as_tensor(offsets, dtype=torch.long)
    if offsets.dim() != 3 or offsets.size(2) != 2:
        raise ValueError(f"`offsets` should have shape (B, T, 2), got {tuple(offsets.shape)}.")
    if offsets.size(0) != len(mentions):
        raise ValueError(
            f"`mentions` should have one list per row of `offsets` ({offsets.size(0)}), got {len(mentions)}."
        )
    table = _mention_table(mentions, offsets, target)  # (B, M, 3)
    if table.size(1) == 0:
        return torch.full(offsets.shape[:2], -1, dtype=torch.long)
    start, end = offsets[..., 0, None], offsets[..., 1, None]  # (B, T, 1)
    overlap = (start < table[:, None, :, 1]) & (table[:, None, :, 0] < end) & (start < end)  # (B, T, M)
    first = overlap.to(torch.uint8).argmax(dim=-1)  # (B, T), the first overlapping mention
    index = table[..., 2].gather(1, first)  # (B, T)
    return index.masked_fill_(~overlap.any(dim=-1), -1)


def _mention_table(mentions: Sequence[Sequence[Mention]], offsets: torch.Tensor, target: str) -> torch.Tensor:
    """``(start, end, entity or mention index)`` of each row's mentions that overlap its tokens' span, ``(B, M, 3)``.

    Mentions outside the span of a row's tokens overlap none of them, so they are left out: the
    (B, T, M) overlap table is then as big as the tokens and the mentions among them, not the
    whole text's mentions (a long text truncated to ``max_length`` tokens has many).
    """
    nonempty = offsets[..., 0] < offsets[..., 1]  # (B, T)
    big = torch.iinfo(torch.long).max
    lows = offsets[..., 0].masked_fill(~nonempty, big).amin(-1).tolist() if offsets.size(1) else [big] * len(mentions)
    highs = offsets[..., 1].masked_fill(~nonempty, -1).amax(-1).tolist() if offsets.size(1) else [-1] * len(mentions)
    rows = [
        [
            (m.start, m.end, m.candidates[0] if target == "entity" else j)
            for j, m in enumerate(row)
            if m.start < high and low < m.end
        ]
        for row, low, high in zip(mentions, lows, highs, strict=True)
    ]
    width = max(map(len, rows), default=0)
    # Padding mentions get the span (0, 0), which overlaps no token.
    padded = [row + [(0, 0, -1)] * (width - len(row)) for row in rows]
    return torch.tensor(padded, dtype=torch.long).reshape(len(rows), width, 3)
