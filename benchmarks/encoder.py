"""Times :class:`~kgpeft.nn.RGCNEncoder` with PyG's ``RGCNConv`` against ``FastRGCNConv``.

One step is a forward and a backward pass of a 2-layer encoder on a typical training
batch: 32 subgraphs of 64 nodes (2,048 nodes) with 10,000 edges in all, edge types drawn
uniformly from 2 * 27 (WordNet with inverses) or 2 * 46 (UMLS with inverses). The two
convolutions step in turn within each round (``benchmarks/timing.py``); times are medians
over the rounds and the ratio the median of per-round ratios, each with its 95% bootstrap
interval, and rounds go on until the ratio's interval is within +-5% (or ``--max-rounds``).

    python -m benchmarks.encoder
    python -m benchmarks.encoder --hidden 128 --threads 1 --device cuda
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from benchmarks.harness import Benchmark
from benchmarks.timing import interval, ratio_interval, rounds
from kgpeft.nn import RGCNEncoder

DECOMPOSITIONS: dict[str, dict[str, int]] = {"full": {}, "bases=30": {"num_bases": 30}, "blocks=8": {"num_blocks": 8}}


def typical_batch(
    num_relations: int, num_graphs: int, num_nodes: int, num_edges: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random edges inside each of ``num_graphs`` disjoint subgraphs, as a PyG ``Batch`` has them."""
    gen = torch.Generator().manual_seed(seed)
    per_graph = num_edges // num_graphs
    offset = (torch.arange(num_graphs) * num_nodes).view(-1, 1)  # (B, 1)
    src = torch.randint(0, num_nodes, (num_graphs, per_graph), generator=gen) + offset
    dst = torch.randint(0, num_nodes, (num_graphs, per_graph), generator=gen) + offset
    edge_type = torch.randint(0, num_relations, (num_graphs * per_graph,), generator=gen)
    return torch.stack([src.flatten(), dst.flatten()]), edge_type


def make_step(
    encoder: RGCNEncoder, x: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor
) -> Callable[[], None]:
    def step() -> None:
        encoder(x, edge_index, edge_type).square().mean().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    return step


def benchmark() -> Benchmark:
    bench = Benchmark("encoder", __doc__, threads=None, one_seed=True)
    parser = bench.parser
    parser.add_argument("--num-relations", type=int, nargs="+", default=[54, 92])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--decompositions", nargs="+", default=list(DECOMPOSITIONS), choices=list(DECOMPOSITIONS))
    parser.add_argument("--num-graphs", type=int, default=32)
    parser.add_argument("--num-nodes", type=int, default=64, help="nodes per subgraph")
    parser.add_argument("--num-edges", type=int, default=10_000, help="edges in the whole batch")
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--max-rounds", type=int, default=20, help="most timed rounds")
    parser.add_argument("--device", default="cpu")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    (seed,) = args.seeds
    device = torch.device(args.device)

    num_nodes = args.num_graphs * args.num_nodes
    print(
        f"{args.num_layers}-layer encoder, forward + backward, {num_nodes} nodes, {args.num_edges} edges, "
        f"device={device}, threads={torch.get_num_threads()}; medians over interleaved rounds, 95% intervals"
    )
    print(
        f"{'types':>5} {'hidden':>6} {'weights':>9} {'RGCNConv ms':>14} {'FastRGCNConv ms':>16} "
        f"{'Fast / RGCN':>14} {'rounds':>6}"
    )
    for num_relations in args.num_relations:
        edge_index, edge_type = typical_batch(num_relations, args.num_graphs, args.num_nodes, args.num_edges, seed)
        edge_index, edge_type = edge_index.to(device), edge_type.to(device)
        for hidden in args.hidden:
            x = torch.randn(num_nodes, hidden, device=device)
            for name in args.decompositions:
                steps = {}
                for conv in ("rgcn", "fast"):
                    torch.manual_seed(seed)
                    encoder = RGCNEncoder(
                        hidden, hidden, num_relations, args.num_layers, conv=conv, **DECOMPOSITIONS[name]
                    ).to(device)
                    steps[conv] = make_step(encoder, x, edge_index, edge_type)
                times = rounds(steps, most=args.max_rounds)
                (rgcn, rgcn_ci), (fast, fast_ci) = (interval([1e3 * t for t in times[c]]) for c in ("rgcn", "fast"))
                ratio, ratio_ci = ratio_interval(times["fast"], times["rgcn"])
                bench.add(
                    types=num_relations,
                    hidden=hidden,
                    weights=name,
                    rgcn_ms=rgcn,
                    rgcn_ms_ci95=rgcn_ci,
                    fast_ms=fast,
                    fast_ms_ci95=fast_ci,
                    fast_vs_rgcn=ratio,
                    fast_vs_rgcn_ci95=ratio_ci,
                    rounds=len(times["rgcn"]),
                )
                print(
                    f"{num_relations:>5} {hidden:>6} {name:>9} {f'{rgcn:.1f}+-{rgcn_ci:.1f}':>14} "
                    f"{f'{fast:.1f}+-{fast_ci:.1f}':>16} {f'{ratio:.2f}+-{ratio_ci:.2f}':>14} {len(times['rgcn']):>6}",
                    flush=True,
                )
    bench.write(args)


if __name__ == "__main__":
    main()
