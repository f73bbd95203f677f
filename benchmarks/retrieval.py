"""Times :class:`~kgpeft.retrieval.SubgraphRetriever` against a loop of PyG's ``k_hop_subgraph``.

Both run in this one process on the same seed sets (1-5 random entities each), in turn
within each round (``benchmarks/timing.py``): the figures are medians over rounds with 95%
bootstrap intervals, and rounds go on until the speed-up's interval is within +-5%. The
retriever is capped (``--num-neighbors``, ``--max-nodes``); ``k_hop_subgraph`` has no
caps, so it returns the full, much larger neighbourhoods: the comparison is between
the two ways of getting a subgraph per sample, not between equal outputs.

    python -m benchmarks.retrieval                       # WordNet, if the database is installed
    python -m benchmarks.retrieval --graph synthetic     # a random heavy-tailed KG
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.utils import k_hop_subgraph

from benchmarks.harness import Benchmark
from benchmarks.timing import interval, ratio_interval, rounds
from kgpeft import KGFileNotFoundError, KnowledgeGraph
from kgpeft.datasets import load
from kgpeft.retrieval import RetrievalConfig, SubgraphRetriever


def synthetic_kg(num_entities: int, num_triples: int, num_relations: int, seed: int) -> KnowledgeGraph:
    """A random KG whose degrees follow a power law (a few hubs of thousands of edges), like WordNet's."""
    rng = np.random.default_rng(seed)
    weight = 1.0 / np.arange(1, num_entities + 1) ** 0.75
    weight /= weight.sum()
    head = rng.choice(num_entities, num_triples, p=weight)
    tail = rng.integers(0, num_entities, num_triples)
    rel = rng.integers(0, num_relations, num_triples)
    triples = torch.from_numpy(np.stack([head, rel, tail]))
    return KnowledgeGraph([f"e{i}" for i in range(num_entities)], [f"r{i}" for i in range(num_relations)], triples)


def load_graph(name: str, seed: int, entities: int) -> tuple[str, KnowledgeGraph]:
    if name in ("auto", "wordnet"):
        try:
            return "WordNet", load("wordnet")
        except KGFileNotFoundError:
            if name == "wordnet":
                raise
            print("WordNet database not found; using a synthetic graph.")
    return "synthetic (power-law degrees)", synthetic_kg(entities, round(entities * 250_000 / 117_659), 18, seed)


def benchmark() -> Benchmark:
    bench = Benchmark("retrieval", __doc__, one_seed=True)
    parser = bench.parser
    parser.add_argument("--graph", choices=["auto", "wordnet", "synthetic"], default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    defaults = RetrievalConfig()
    parser.add_argument("--num-neighbors", type=int, nargs="+", default=defaults.num_neighbors)
    parser.add_argument("--max-nodes", type=int, default=defaults.max_nodes)
    parser.add_argument("--num-batches", type=int, default=20, help="distinct batches timed for the retriever")
    parser.add_argument("--baseline-batches", type=int, default=3, help="distinct batches timed for k_hop_subgraph")
    parser.add_argument("--max-rounds", type=int, default=40, help="most timed rounds")
    parser.add_argument(
        "--synthetic-entities", type=int, default=117_659, help="entities of the synthetic graph (WordNet's count)"
    )
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    """``--threads`` sets torch's threads for ``k_hop_subgraph``; the retriever is single-threaded numpy."""
    bench = benchmark()
    args = bench.parse(argv)
    (seed,) = args.seeds
    name, kg = load_graph(args.graph, seed, args.synthetic_entities)
    degree = kg.degree
    print(f"graph: {name}: {kg}, max degree {int(degree.max())}, mean degree {degree.float().mean():.1f}")

    rng = np.random.default_rng(seed)
    batches = [
        [rng.choice(kg.num_entities, rng.integers(1, 6), replace=False) for _ in range(args.batch_size)]
        for _ in range(max(args.num_batches, args.baseline_batches))
    ]
    num_hops = len(args.num_neighbors)
    retriever = SubgraphRetriever(kg, args.num_neighbors, max_nodes=args.max_nodes, seed=seed)
    edge_index = kg.to_pyg(add_inverse=True).edge_index

    def loop(seed_sets: list) -> list:
        return [
            k_hop_subgraph(torch.from_numpy(s), num_hops, edge_index, relabel_nodes=True, num_nodes=kg.num_entities)
            for s in seed_sets
        ]

    def each(fn, seed_sets: list):
        def run() -> None:
            for b in seed_sets:
                fn(b)

        return run

    ours_b, theirs_b = batches[: args.num_batches], batches[: args.baseline_batches]
    times = rounds({"retriever": each(retriever, ours_b), "loop": each(loop, theirs_b)}, least=5, most=args.max_rounds)
    ours, ours_ci = interval([t / len(ours_b) * 1e3 for t in times["retriever"]])
    theirs, theirs_ci = interval([t / len(theirs_b) * 1e3 for t in times["loop"]])
    speedup, speedup_ci = ratio_interval(
        [t / len(theirs_b) for t in times["loop"]], [t / len(ours_b) for t in times["retriever"]]
    )

    sizes = [retriever(b) for b in batches[: args.num_batches]]
    nodes = np.mean([b.num_nodes / b.num_graphs for b in sizes])
    edges = np.mean([b.num_edges / b.num_graphs for b in sizes])
    full = [out for b in batches[: args.baseline_batches] for out in loop(b)]
    full_nodes = np.mean([out[0].numel() for out in full])
    full_edges = np.mean([out[1].size(1) for out in full])

    print(
        f"batches of {args.batch_size} seed sets (1-5 entities), {num_hops} hops, medians of {len(times['loop'])} "
        f"interleaved rounds with 95% intervals, {torch.get_num_threads()} torch thread(s)"
    )
    print(
        f"SubgraphRetriever(num_neighbors={args.num_neighbors}, max_nodes={args.max_nodes}): "
        f"{ours:8.2f} +-{ours_ci:.2f} ms/batch  ({nodes:.1f} nodes, {edges:.1f} edges per sample)"
    )
    print(
        f"loop of k_hop_subgraph (uncapped):          {theirs:8.2f} +-{theirs_ci:.2f} ms/batch  "
        f"({full_nodes:.1f} nodes, {full_edges:.1f} edges per sample)"
    )
    print(f"speed-up: {speedup:.1f}x +-{speedup_ci:.1f}")
    bench.add(
        graph=name,
        retriever_ms=ours,
        retriever_ms_ci95=ours_ci,
        nodes=float(nodes),
        edges=float(edges),
        k_hop_ms=theirs,
        k_hop_ms_ci95=theirs_ci,
        k_hop_nodes=float(full_nodes),
        k_hop_edges=float(full_edges),
        speedup=speedup,
        speedup_ci95=speedup_ci,
        rounds=len(times["loop"]),
    )
    bench.write(args)


if __name__ == "__main__":
    main()
