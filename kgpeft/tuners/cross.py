"""``cross`` mode: each token attends, in rank space, over its sample's subgraph nodes and a null slot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import KnowledgeState
from kgpeft.tuners.mode import FusionMode, node_states


@dataclass
class CrossState(KnowledgeState):
    """Each sample's subgraph nodes.

    Attributes:
        node_states: ``(B, M, d_graph)``: each sample's subgraph nodes, padded.
        node_mask: ``(B, M)``: ``True`` for real nodes.
    """

    node_states: torch.Tensor | None = None
    node_mask: torch.Tensor | None = None


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

    def forward(self, x: torch.Tensor, state: CrossState) -> torch.Tensor | None:
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


class CrossMode(FusionMode):
    name = "cross"
    help = "each token attends over its sample's subgraph nodes and a null slot, in rank space"

    @classmethod
    def fusion(cls, tuner: Any, config: Any, name: str, lora_a: nn.Module) -> CrossFusion:
        return CrossFusion(lora_a.in_features, config.graph_channels, config.r)

    @classmethod
    def encode(cls, tuner: Any, adapter_name: str, knowledge: KnowledgeBatch) -> CrossState:
        states, mask = node_states(tuner, adapter_name, knowledge)
        return CrossState(knowledge.batch_size, states, mask)  # (B, M, d), (B, M)
