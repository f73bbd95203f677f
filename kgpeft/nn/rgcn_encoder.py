"""The relational graph encoder that turns a retrieved subgraph into node states."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch_geometric.nn import FastRGCNConv, RGCNConv

ConvKind = Literal["auto", "rgcn", "fast"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}


class RGCNEncoder(nn.Module):
    r"""A stack of relational graph convolutions from the `"Modeling Relational Data
    with Graph Convolutional Networks" <https://arxiv.org/abs/1703.06103>`_ paper, with
    residual connections and layer normalisation between them.

    Node features are first projected to ``hidden_channels`` (when the sizes differ),
    :math:`\mathbf{h}^{(0)}_i = \mathbf{W}_{\textrm{in}} \mathbf{x}_i`, then each layer
    :math:`\ell` updates every node from its typed neighbourhood:

    .. math::
        \mathbf{h}^{(\ell+1)}_i = \mathrm{Norm}\Big(\mathbf{h}^{(\ell)}_i +
        \mathrm{Dropout}\big(\sigma\big(\mathbf{\Theta}_{\textrm{root}} \mathbf{h}^{(\ell)}_i
        + \sum_{r \in \mathcal{R}} \sum_{j \in \mathcal{N}_r(i)}
        \tfrac{1}{|\mathcal{N}_r(i)|} \mathbf{\Theta}_r \mathbf{h}^{(\ell)}_j\big)\big)\Big)

    (without the first :math:`\mathbf{h}^{(\ell)}_i` when ``residual=False``). With
    ``num_bases=B`` each :math:`\mathbf{\Theta}_r = \sum_b a_{rb} \mathbf{V}_b` shares
    :math:`B` basis matrices; with ``num_blocks=K`` each :math:`\mathbf{\Theta}_r` is
    block-diagonal with :math:`K` blocks of size
    :math:`\frac{d}{K} \times \frac{d}{K}`. Both cut the
    :math:`|\mathcal{R}| d^2` weights of a layer that otherwise grow with the number of
    relations.

    A node without edges keeps its root term, so it still gets a state; a graph with no
    nodes gives an empty output.

    .. note::
        ``num_relations`` counts *edge types as the adjacency sees them*. The adjacency of
        a :class:`~kgpeft.graph.KnowledgeGraph` (and every subgraph
        :class:`~kgpeft.retrieval.SubgraphRetriever` returns) adds the inverse of each
        relation :math:`r` as type :math:`r + |\mathcal{R}|`, so pass
        ``num_relations=2 * kg.num_relations``. An ``edge_type`` outside
        ``[0, num_relations)`` raises instead of being dropped silently.

    .. note::
        ``conv`` picks PyG's implementation; both compute the same function with the same
        parameters. :class:`~torch_geometric.nn.conv.RGCNConv` loops over relations;
        :class:`~torch_geometric.nn.conv.FastRGCNConv` gathers one weight matrix per edge,
        :math:`O(|\mathcal{E}| d^2)` memory. On CPU, for batches of about 2,000 nodes,
        10,000 edges and 54-92 edge types (``benchmarks/encoder.py``),
        :class:`~torch_geometric.nn.conv.RGCNConv` is 3-17 times faster with full or
        basis-decomposed weights and mostly faster with blocks (0.8-4.5 times), and it
        needs far less memory, so ``"auto"`` picks it.

    Args:
        in_channels (int): size of each input node feature.
        hidden_channels (int): size of every hidden and output node state.
        num_relations (int): number of edge types, inverses included (see above).
        num_layers (int, optional): number of convolutions. (default: :obj:`2`)
        num_bases (int, optional): use the basis decomposition with this many bases.
            (default: :obj:`None`)
        num_blocks (int, optional): use the block-diagonal decomposition with this many
            blocks; must divide ``hidden_channels``. Not together with ``num_bases``.
            (default: :obj:`None`)
        dropout (float, optional): dropout probability on each layer's update.
            (default: :obj:`0.0`)
        norm (str, optional): ``"layer"`` for :class:`~torch.nn.LayerNorm` after each
            layer, or :obj:`None`. (default: :obj:`"layer"`)
        residual (bool, optional): add each layer's input to its update.
            (default: :obj:`True`)
        conv (str, optional): ``"rgcn"``, ``"fast"`` or ``"auto"`` (see above).
            (default: :obj:`"auto"`)
        act (str, optional): the non-linearity :math:`\sigma`, ``"relu"`` or ``"gelu"``.
            (default: :obj:`"relu"`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)`, edge types :math:`(|\mathcal{E}|)`
        - **output:** node states :math:`(|\mathcal{V}|, F_{hidden})`
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_relations: int,
        num_layers: int = 2,
        num_bases: int | None = None,
        num_blocks: int | None = None,
        dropout: float = 0.0,
        norm: Literal["layer"] | None = "layer",
        residual: bool = True,
        conv: ConvKind = "auto",
        act: Literal["relu", "gelu"] = "relu",
    ) -> None:
        super().__init__()
        for name, value in [
            ("in_channels", in_channels),
            ("hidden_channels", hidden_channels),
            ("num_relations", num_relations),
            ("num_layers", num_layers),
        ]:
            if value < 1:
                raise ValueError(f"`{name}` should be positive, got {value}.")
        if num_bases is not None and num_blocks is not None:
            raise ValueError(
                "Use either `num_bases` or `num_blocks`, not both "
                f"(got num_bases={num_bases}, num_blocks={num_blocks})."
            )
        if num_bases is not None and num_bases < 1:
            raise ValueError(f"`num_bases` should be positive or None, got {num_bases}.")
        if num_blocks is not None and (num_blocks < 1 or hidden_channels % num_blocks != 0):
            raise ValueError(
                f"`num_blocks` should be a positive divisor of `hidden_channels` ({hidden_channels}), got {num_blocks}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` should be in [0, 1), got {dropout}.")
        if norm not in ("layer", None):
            raise ValueError(f"`norm` should be 'layer' or None, got {norm!r}.")
        if conv not in ("auto", "rgcn", "fast"):
            raise ValueError(f"`conv` should be 'auto', 'rgcn' or 'fast', got {conv!r}.")
        if act not in _ACTIVATIONS:
            raise ValueError(f"`act` should be one of {sorted(_ACTIVATIONS)}, got {act!r}.")

        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.num_relations = num_relations
        self.num_layers = num_layers
        self.num_bases = num_bases
        self.num_blocks = num_blocks
        self.residual = residual
        self.conv = "rgcn" if conv == "auto" else conv

        conv_cls = RGCNConv if self.conv == "rgcn" else FastRGCNConv
        self.in_proj = nn.Linear(in_channels, hidden_channels) if in_channels != hidden_channels else nn.Identity()
        self.convs = nn.ModuleList(
            conv_cls(hidden_channels, hidden_channels, num_relations, num_bases=num_bases, num_blocks=num_blocks)
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(
            nn.LayerNorm(hidden_channels) if norm == "layer" else nn.Identity() for _ in range(num_layers)
        )
        self.act = _ACTIVATIONS[act]()
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in [self.in_proj, *self.convs, *self.norms]:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        """Encodes a (batched) graph.

        Args:
            x (Tensor): node features ``(|V|, in_channels)``.
            edge_index (Tensor): ``(2, |E|)`` source and target rows of ``x``.
            edge_type (Tensor): ``(|E|,)`` edge types in ``[0, num_relations)``.
        """
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f"`x` should have shape (num_nodes, {self.in_channels}), got {tuple(x.shape)}.")
        if edge_type.numel() > 0:
            # RGCNConv would skip unknown types without a word, e.g. inverse edges when
            # `num_relations` was set to kg.num_relations instead of twice that.
            lo, hi = torch.aminmax(edge_type)
            if lo < 0 or hi >= self.num_relations:
                raise ValueError(
                    f"`edge_type` holds ids in [{int(lo)}, {int(hi)}], but the encoder has num_relations="
                    f"{self.num_relations} (2 * kg.num_relations when the graph has inverse edges)."
                )
        h = self.in_proj(x)  # (N, hidden)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            update = self.dropout(self.act(conv(h, edge_index, edge_type)))
            h = norm(h + update if self.residual else update)
        return h

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, "
            f"num_relations={self.num_relations}, num_layers={self.num_layers})"
        )
