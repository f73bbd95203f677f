"""``token`` mode: each token adds, in rank space, the state of the node it is linked to."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import KnowledgeError, KnowledgeState, in_decoder
from kgpeft.tuners.mode import FusionMode


@dataclass
class TokenState(KnowledgeState):
    """The node states of the input's tokens.

    Attributes:
        token_states: ``(B, T, d_graph)``: for each input token the state of the node it is
            linked to, zero where none. ``None`` when the tokens of this call are not the linked
            input (decoding steps of ``generate``).
        extends: whether a layer may see more tokens than ``token_states`` covers, the
            extra (generated) ones linked to nothing: ``generate`` without a KV cache
            recomputes the prompt plus the tokens generated so far.
    """

    token_states: torch.Tensor | None = None
    extends: bool = False

    @property
    def links_tokens(self) -> bool:
        return self.token_states is not None

    def unlinked(self) -> TokenState:
        return self if self.token_states is None else TokenState(self.batch_size, None, self.extends)


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

    def forward(self, x: torch.Tensor, state: TokenState) -> torch.Tensor | None:
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


class TokenMode(FusionMode):
    name = "token"
    help = "each token adds the state of the node it is linked to"

    @classmethod
    def fusion(cls, tuner: Any, config: Any, name: str, lora_a: nn.Module) -> TokenFusion | None:
        if tuner.is_encoder_decoder and in_decoder(name):
            return None  # decoder tokens are not the linked input: nothing to fuse there
        return TokenFusion(config.graph_channels, config.r)

    @classmethod
    def encode(cls, tuner: Any, adapter_name: str, knowledge: KnowledgeBatch) -> TokenState:
        z = tuner.graph_encoders[adapter_name](knowledge.graph)  # (N, d_graph)
        padded = torch.cat([z, z.new_zeros(1, z.size(1))])  # the last row stands for "no node"
        index = knowledge.token_node_index
        return TokenState(knowledge.batch_size, padded[index.masked_fill(index < 0, z.size(0))])  # (B, T, d)
