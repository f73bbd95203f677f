"""The graph encoder and the node features it starts from."""

from kgpeft.nn.features import KGENodeFeatures, LearnedNodeFeatures, NodeFeatures, TextNodeFeatures
from kgpeft.nn.graph_encoder import GraphEncoder
from kgpeft.nn.rgcn_encoder import RGCNEncoder

__all__ = ["GraphEncoder", "KGENodeFeatures", "LearnedNodeFeatures", "NodeFeatures", "RGCNEncoder", "TextNodeFeatures"]
