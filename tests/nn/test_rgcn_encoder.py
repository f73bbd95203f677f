import pytest
import torch
from torch_geometric.nn import FastRGCNConv, RGCNConv

from kgpeft import KnowledgeGraph
from kgpeft.nn import RGCNEncoder


def toy_graph() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""5 nodes, 2 relations plus inverses (4 edge types); node 4 has no edges.

    .. code-block:: text

        1 -0-> 0 <-0- 2      3 -1-> 0      (and each edge reversed, typed r + 2)      4
    """
    edge_index = torch.tensor([[1, 2, 3, 0, 0, 0], [0, 0, 0, 1, 2, 3]])
    edge_type = torch.tensor([0, 0, 1, 2, 2, 3])
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    return x, edge_index, edge_type


def random_graph(num_nodes: int, num_edges: int, num_relations: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    edge_type = torch.arange(num_edges) % num_relations  # every type present, so every weight gets a gradient
    return edge_index, edge_type


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("conv", ["rgcn", "fast"])
@pytest.mark.parametrize("in_channels", [8, 16])
def test_output_shape(conv, in_channels):
    x, edge_index, edge_type = toy_graph()
    x = torch.randn(5, in_channels)
    encoder = RGCNEncoder(in_channels, 16, num_relations=4, conv=conv)
    assert encoder(x, edge_index, edge_type).shape == (5, 16)
    assert isinstance(encoder.in_proj, torch.nn.Linear) == (in_channels != 16)


@pytest.mark.parametrize("conv", ["rgcn", "fast"])
@pytest.mark.parametrize("decomposition", [{}, {"num_bases": 2}, {"num_blocks": 4}])
def test_empty_graph(conv, decomposition):
    encoder = RGCNEncoder(8, 16, num_relations=4, conv=conv, **decomposition)
    x = torch.randn(0, 8, requires_grad=True)
    out = encoder(x, torch.empty(2, 0, dtype=torch.long), torch.empty(0, dtype=torch.long))
    assert out.shape == (0, 16)
    out.sum().backward()


@pytest.mark.parametrize("conv", ["rgcn", "fast"])
def test_isolated_node_keeps_its_root_term(conv):
    x, edge_index, edge_type = toy_graph()
    encoder = RGCNEncoder(8, 8, num_relations=4, num_layers=1, conv=conv).eval()
    out = encoder(x, edge_index, edge_type)
    layer, norm = encoder.convs[0], encoder.norms[0]
    expected = norm(x[4] + torch.relu(x[4] @ layer.root + layer.bias))
    torch.testing.assert_close(out[4], expected)
    # ...and does not depend on the rest of the graph, nor do nodes without any edges at all.
    no_edges = encoder(x, torch.empty(2, 0, dtype=torch.long), torch.empty(0, dtype=torch.long))
    torch.testing.assert_close(no_edges[4], out[4])
    assert torch.isfinite(no_edges).all()


@pytest.mark.parametrize("conv", ["rgcn", "fast"])
def test_update_rule_by_hand(conv):
    """Node 0 gets the mean over its type-0 neighbours {1, 2}, plus node 3 through type 1."""
    x, edge_index, edge_type = toy_graph()
    encoder = RGCNEncoder(8, 8, num_relations=4, num_layers=1, norm=None, conv=conv)
    layer = encoder.convs[0]
    w = layer.weight  # (4, 8, 8)
    message = x[0] @ layer.root + (x[1] + x[2]) / 2 @ w[0] + x[3] @ w[1] + layer.bias
    torch.testing.assert_close(encoder(x, edge_index, edge_type)[0], x[0] + torch.relu(message))
    no_residual = RGCNEncoder(8, 8, num_relations=4, num_layers=1, norm=None, residual=False, act="gelu", conv=conv)
    no_residual.load_state_dict(encoder.state_dict())
    expected = torch.nn.functional.gelu(message)
    torch.testing.assert_close(no_residual(x, edge_index, edge_type)[0], expected)


@pytest.mark.parametrize("decomposition", [{}, {"num_bases": 3}, {"num_blocks": 4}])
def test_rgcn_and_fast_compute_the_same_function(decomposition):
    edge_index, edge_type = random_graph(30, 120, 6)
    x = torch.randn(30, 12)
    slow = RGCNEncoder(12, 16, num_relations=6, conv="rgcn", **decomposition)
    fast = RGCNEncoder(12, 16, num_relations=6, conv="fast", **decomposition)
    fast.load_state_dict(slow.state_dict())
    torch.testing.assert_close(fast(x, edge_index, edge_type), slow(x, edge_index, edge_type))


def test_conv_choice():
    assert all(type(c) is RGCNConv for c in RGCNEncoder(8, 8, 4).convs)  # "auto"
    assert all(type(c) is RGCNConv for c in RGCNEncoder(8, 8, 4, conv="rgcn").convs)
    assert all(type(c) is FastRGCNConv for c in RGCNEncoder(8, 8, 4, conv="fast").convs)


def test_parameter_counts_by_hand():
    d, num_relations, layers = 16, 6, 2
    root_bias_norm = d * d + d + 2 * d  # root weight, conv bias, LayerNorm weight and bias
    full = num_relations * d * d
    bases = 3 * d * d + num_relations * 3  # 3 basis matrices, one coefficient per relation and basis
    blocks = num_relations * 4 * (d // 4) * (d // 4)  # 4 diagonal blocks of 4 x 4 per relation
    assert num_params(RGCNEncoder(d, d, num_relations)) == layers * (full + root_bias_norm)
    assert num_params(RGCNEncoder(d, d, num_relations, num_bases=3)) == layers * (bases + root_bias_norm)
    assert num_params(RGCNEncoder(d, d, num_relations, num_blocks=4)) == layers * (blocks + root_bias_norm)
    assert num_params(RGCNEncoder(d, d, num_relations, norm=None)) == layers * (full + root_bias_norm - 2 * d)
    in_proj = 8 * d + d
    assert num_params(RGCNEncoder(8, d, num_relations)) == in_proj + layers * (full + root_bias_norm)


@pytest.mark.parametrize("conv", ["rgcn", "fast"])
@pytest.mark.parametrize("decomposition", [{}, {"num_bases": 3}, {"num_blocks": 4}])
def test_gradients_reach_every_parameter(conv, decomposition):
    edge_index, edge_type = random_graph(20, 80, 6)
    x = torch.randn(20, 12, requires_grad=True)
    encoder = RGCNEncoder(12, 16, num_relations=6, num_layers=3, dropout=0.1, conv=conv, **decomposition)
    out = encoder(x, edge_index, edge_type)
    # A weighted sum: the plain sum of a LayerNorm output has no gradient through the normalised part.
    (out * torch.randn_like(out)).sum().backward()
    for name, p in [("x", x), *encoder.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_determinism_under_manual_seed():
    edge_index, edge_type = random_graph(20, 80, 6)
    x = torch.randn(20, 8)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        encoder = RGCNEncoder(8, 16, num_relations=6, num_bases=2, dropout=0.5)
        outs.append(encoder(x, edge_index, edge_type))  # training mode: dropout draws from the seeded RNG too
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    encoder.eval()
    torch.testing.assert_close(encoder(x, edge_index, edge_type), encoder(x, edge_index, edge_type), rtol=0, atol=0)
    assert not torch.equal(encoder(x, edge_index, edge_type), outs[1])


def test_reset_parameters():
    encoder = RGCNEncoder(8, 16, num_relations=4)
    with torch.no_grad():
        for p in encoder.parameters():
            p.fill_(7.0)
    encoder.reset_parameters()
    assert all(not (p == 7.0).all() for p in encoder.parameters())
    torch.testing.assert_close(encoder.norms[0].weight, torch.ones(16))


def test_num_relations_counts_inverse_edge_types():
    kg = KnowledgeGraph(["a", "b", "c"], ["r", "s"], torch.tensor([[0, 1], [0, 1], [1, 2]]))
    data = kg.to_pyg(add_inverse=True)
    x = torch.randn(3, 8)
    out = RGCNEncoder(8, 8, num_relations=2 * kg.num_relations)(x, data.edge_index, data.edge_type)
    assert out.shape == (3, 8)
    with pytest.raises(ValueError, match=r"edge_type` holds ids in \[0, 3\].*num_relations=2"):
        RGCNEncoder(8, 8, num_relations=kg.num_relations)(x, data.edge_index, data.edge_type)


def test_repr():
    assert repr(RGCNEncoder(384, 128, num_relations=92)) == "RGCNEncoder(384, 128, num_relations=92, num_layers=2)"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"num_bases": 2, "num_blocks": 4},
            r"either `num_bases` or `num_blocks`, not both .*num_bases=2, num_blocks=4",
        ),
        ({"num_blocks": 3}, r"`num_blocks` should be a positive divisor of `hidden_channels` \(16\), got 3"),
        ({"num_blocks": 0}, r"`num_blocks` .* got 0"),
        ({"num_bases": 0}, r"`num_bases` should be positive or None, got 0"),
        ({"num_layers": 0}, r"`num_layers` should be positive, got 0"),
        ({"num_relations": 0}, r"`num_relations` should be positive, got 0"),
        ({"dropout": 1.0}, r"`dropout` should be in \[0, 1\), got 1.0"),
        ({"norm": "batch"}, r"`norm` should be 'layer' or None, got 'batch'"),
        ({"conv": "cugraph"}, r"`conv` should be 'auto', 'rgcn' or 'fast', got 'cugraph'"),
        ({"act": "tanh"}, r"`act` should be one of \['gelu', 'relu'\], got 'tanh'"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"in_channels": 8, "hidden_channels": 16, "num_relations": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        RGCNEncoder(**args)


def test_bad_inputs():
    x, edge_index, edge_type = toy_graph()
    encoder = RGCNEncoder(8, 16, num_relations=4)
    with pytest.raises(ValueError, match=r"`x` should have shape \(num_nodes, 8\), got \(5, 7\)"):
        encoder(x[:, :7], edge_index, edge_type)
    with pytest.raises(ValueError, match=r"`edge_type` holds ids in \[-1, 2\]"):
        encoder(x, edge_index, edge_type - 1)
