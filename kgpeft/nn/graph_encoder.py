"""`GraphEncoder`: node features followed by the R-GCN, the graph half of a KG-LoRA adapter."""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.data import Batch

from kgpeft.nn.features import NodeFeatures
from kgpeft.nn.rgcn_encoder import RGCNEncoder


class GraphEncoder(nn.Module):
    r"""Turns a retrieved subgraph into node states:

    .. math::
        \mathbf{Z} = \mathrm{RGCN}(\mathrm{features}(\textrm{n\_id}), \textrm{edge\_index}, \textrm{edge\_type})

    Args:
        features (NodeFeatures): the initial state of each entity (its label's text, a KGE
            vector or a learned row).
        rgcn (RGCNEncoder): the relational convolutions over the subgraph.

    Shapes:
        - input: a :class:`~torch_geometric.data.Batch` with ``n_id`` :math:`(N)`,
          ``edge_index`` :math:`(2, |\mathcal{E}|)` and ``edge_type`` :math:`(|\mathcal{E}|)`
        - output: node states :math:`(N, \textrm{hidden\_channels})`
    """

    def __init__(self, features: NodeFeatures, rgcn: RGCNEncoder) -> None:
        super().__init__()
        self.features = features
        self.rgcn = rgcn

    def forward(self, graph: Batch) -> Tensor:
        x = self.features(graph.n_id)  # (N, d_graph)
        return self.rgcn(x, graph.edge_index, graph.edge_type)  # (N, d_graph)
