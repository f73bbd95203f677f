import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.utils import k_hop_subgraph, subgraph

from kgpeft import KGPeftError, KnowledgeGraph
from kgpeft.datasets import load
from kgpeft.retrieval import SeedEntityError, SubgraphRetriever, batch_node_index

PARENT, LIKES = 0, 1  # inverses: 2, 3


@pytest.fixture(scope="module")
def toy() -> KnowledgeGraph:
    r"""0 -parent-> 1 -parent-> 3 -parent-> 4, 0 -parent-> 2 -likes-> 3, 0 -likes-> 2, 5 -likes-> 6, 7 alone.

    .. code-block:: text

        0 ──> 1 ──> 3 ──> 4      5 ──> 6      7
         ╲          ^
          ══> 2 ───╯
    """
    triples = torch.tensor(
        [
            [0, 0, 1, 2, 3, 5, 0],  # head
            [PARENT, PARENT, PARENT, LIKES, PARENT, LIKES, LIKES],  # relation
            [1, 2, 3, 3, 4, 6, 2],  # tail
        ]
    )
    return KnowledgeGraph([f"e{i}" for i in range(8)], ["parent", "likes"], triples)


@pytest.fixture(scope="module")
def star() -> KnowledgeGraph:
    """Hub 0 with ten leaves 1..10, one edge each."""
    triples = torch.stack([torch.zeros(10, dtype=torch.long), torch.zeros(10, dtype=torch.long), torch.arange(1, 11)])
    return KnowledgeGraph([f"e{i}" for i in range(11)], ["spoke"], triples)


@pytest.fixture(scope="module", params=["umls", "kinships"])
def real(request) -> KnowledgeGraph:
    return load(request.param)


def edge_table(src, dst, edge_type, edge_id) -> np.ndarray:
    """Edges as rows (source entity, target entity, type, triple id), sorted."""
    table = np.stack([np.asarray(c) for c in (src, dst, edge_type, edge_id)], axis=1).reshape(-1, 4)
    return table[np.lexsort(table.T[::-1])]


def sample_edges(batch: Batch, i: int) -> np.ndarray:
    """Sample ``i``'s edges in global ids, as an :func:`edge_table`."""
    data = batch.get_example(i)
    src, dst = data.n_id[data.edge_index]
    return edge_table(src, dst, data.edge_type, data.edge_id)


def expected_edges(kg: KnowledgeGraph, edge_index: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The edges picked by ``mask`` from ``kg.to_pyg(add_inverse=True)``, as an :func:`edge_table`."""
    csr = kg.csr()
    return edge_table(edge_index[0], edge_index[1], csr.edge_type[mask], csr.edge_id[mask])


def random_seed_sets(kg: KnowledgeGraph, num: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.choice(kg.num_entities, rng.integers(1, 4), replace=False).tolist() for _ in range(num)]


def test_one_hop_by_hand(toy):
    batch = SubgraphRetriever(toy, [-1])([[0]])
    assert batch.n_id.tolist() == [0, 1, 2]
    assert batch.hop.tolist() == [0, 1, 1]
    assert sample_edges(batch, 0).tolist() == [
        [0, 1, PARENT, 0],
        [0, 2, PARENT, 1],
        [0, 2, LIKES, 6],
        [1, 0, PARENT + 2, 0],
        [2, 0, PARENT + 2, 1],
        [2, 0, LIKES + 2, 6],
    ]


def test_two_hops_by_hand(toy):
    batch = SubgraphRetriever(toy, [-1, -1])([[4]])
    assert batch.n_id.tolist() == [4, 3, 1, 2]  # seed, hop 1, hop 2 by id
    assert batch.hop.tolist() == [0, 1, 2, 2]
    # 0 is three hops away; 1 -> 3, 2 -> 3 and 3 -> 4 are kept with their inverses.
    assert sample_edges(batch, 0).tolist() == [
        [1, 3, PARENT, 2],
        [2, 3, LIKES, 3],
        [3, 1, PARENT + 2, 2],
        [3, 2, LIKES + 2, 3],
        [3, 4, PARENT, 4],
        [4, 3, PARENT + 2, 4],
    ]


def test_edge_ids_name_the_triples(toy):
    batch = SubgraphRetriever(toy, [-1, -1])([[0], [3]])
    src, dst = batch.n_id[batch.edge_index]
    head, rel, tail = toy.triples[:, batch.edge_id]
    forward = batch.edge_type < toy.num_relations
    assert torch.equal(torch.where(forward, head, tail), src)
    assert torch.equal(torch.where(forward, tail, head), dst)
    assert torch.equal(torch.where(forward, rel, rel + toy.num_relations), batch.edge_type)


def test_batch_layout(toy):
    batch = SubgraphRetriever(toy, [-1])([[5], [], [3, 7]])
    assert batch.num_graphs == 3
    assert batch.n_id.tolist() == [5, 6, 3, 7, 1, 2, 4]
    assert batch.batch.tolist() == [0, 0, 2, 2, 2, 2, 2]
    assert batch.ptr.tolist() == [0, 2, 2, 7]
    assert batch.seed_index.tolist() == [0, 2, 3]
    # Batch-local: sample 2's edge 3 -> 1 joins rows 2 and 4.
    assert [2, 4] in batch.edge_index.t().tolist()
    assert batch.get_example(1).num_nodes == 0


def test_matches_from_data_list_and_batch_composition(toy):
    """The batch equals PyG's collation of the samples retrieved one by one."""
    retriever = SubgraphRetriever(toy, [1, 2], max_nodes=4, seed=3)
    seed_sets = [[0], [], [4, 5], [2, 0, 2], [7], [0]]
    batch = retriever(seed_sets)
    expected = Batch.from_data_list([retriever([s]).get_example(0) for s in seed_sets])
    assert set(batch.keys()) == set(expected.keys())
    for key, value in expected:  # a Data yields (name, value) pairs
        assert torch.equal(batch[key], value), key
    assert batch._slice_dict.keys() == expected._slice_dict.keys()
    for key in expected._slice_dict:
        assert torch.equal(batch._slice_dict[key], expected._slice_dict[key]), key
        assert torch.equal(batch._inc_dict[key], expected._inc_dict[key]), key
    for i, data in enumerate(batch.to_data_list()):
        assert data.n_id.tolist() == retriever([seed_sets[i]]).n_id.tolist()


@pytest.mark.parametrize("seed_sets", [[[], []], []], ids=["all-empty", "no-samples"])
def test_empty(toy, seed_sets):
    batch = SubgraphRetriever(toy, [-1, -1], max_nodes=5)(seed_sets)
    assert batch.num_graphs == len(seed_sets)
    assert batch.num_nodes == 0
    assert batch.edge_index.shape == (2, 0)
    assert batch.ptr.tolist() == [0] * (len(seed_sets) + 1)
    assert batch_node_index(batch, torch.arange(len(seed_sets)), 3).tolist() == [-1] * len(seed_sets)


def test_seed_order_and_repeats(toy):
    batch = SubgraphRetriever(toy, [])([[3, 0, 3], torch.tensor([2]), np.array([7, 1])])
    assert batch.n_id.tolist() == [3, 0, 2, 7, 1]
    assert batch.seed_index.tolist() == [0, 1, 2, 3, 4]
    assert batch.hop.tolist() == [0] * 5


def test_node_cap(toy):
    assert SubgraphRetriever(toy, [-1, -1], max_nodes=3)([[0]]).n_id.tolist() == [0, 1, 2]
    chosen = {SubgraphRetriever(toy, [-1], max_nodes=2, seed=s)([[0]]).n_id[1].item() for s in range(20)}
    assert chosen == {1, 2}  # the cap keeps a random neighbour, not the lowest id


def test_seeds_beyond_node_cap_are_all_kept(toy):
    batch = SubgraphRetriever(toy, [-1], max_nodes=2)([[0, 3, 5], [4]])
    assert batch.n_id.tolist() == [0, 3, 5, 4, 3]
    assert batch.hop.tolist() == [0, 0, 0, 0, 1]


@pytest.mark.parametrize("fanout", [0, 1, 2, 3, 4, 9, 10, 11, -1])
def test_fanout_cap(star, fanout):
    # 10 leaves: caps 1..3 pick by Floyd's algorithm, 4..9 by ranking the row.
    batch = SubgraphRetriever(star, [fanout], seed=fanout)([[0]])
    leaves = batch.n_id[1:].tolist()
    assert leaves == sorted(set(leaves))
    assert len(leaves) == (10 if fanout == -1 else min(fanout, 10))
    assert all(1 <= leaf <= 10 for leaf in leaves)


@pytest.mark.parametrize("fanout", [2, 4], ids=["floyd", "ranked"])
def test_fanout_draws_are_uniform(star, fanout):
    """Over many seeds every subset of ``fanout`` leaves comes up about equally often."""
    draws = Counter(tuple(SubgraphRetriever(star, [fanout], seed=s)([[0]]).n_id[1:].tolist()) for s in range(1500))
    subsets = list(itertools.combinations(range(1, 11), fanout))
    assert set(draws) <= set(subsets)
    expected = 1500 / len(subsets)
    chi2 = sum((draws[s] - expected) ** 2 / expected for s in subsets)
    assert chi2 < 2 * len(subsets)  # mean len - 1; a fixed or biased choice is far above


def test_determinism(real):
    seed_sets = random_seed_sets(real, 16, seed=0)
    retriever = SubgraphRetriever(real, [4, 2], max_nodes=12, seed=7)
    a, b = retriever(seed_sets), retriever(seed_sets)
    for key, value in a:
        assert torch.equal(b[key], value), key
    other = retriever(seed_sets, seed=8)
    assert not torch.equal(a.n_id, other.n_id)
    # Identical seed sets anywhere in a batch give identical subgraphs.
    twice = retriever([seed_sets[0], seed_sets[1], seed_sets[0]])
    assert np.array_equal(sample_edges(twice, 0), sample_edges(twice, 2))
    assert np.array_equal(sample_edges(twice, 0), sample_edges(a, 0))


@pytest.mark.parametrize("num_hops", [1, 2])
def test_uncapped_matches_k_hop_subgraph(real, num_hops):
    edge_index = real.to_pyg(add_inverse=True).edge_index
    seed_sets = random_seed_sets(real, 25, seed=num_hops)
    batch = SubgraphRetriever(real, [-1] * num_hops)(seed_sets)
    for i, seeds in enumerate(seed_sets):
        data = batch.get_example(i)
        assert sorted(data.n_id[data.hop == 0].tolist()) == sorted(seeds)
        for h in range(1, num_hops + 1):
            reached, _, _, mask = k_hop_subgraph(seeds, h, edge_index, num_nodes=real.num_entities)
            assert sorted(data.n_id[data.hop <= h].tolist()) == reached.tolist()
        assert np.array_equal(sample_edges(batch, i), expected_edges(real, edge_index[:, mask], mask))


def test_caps_hold_on_random_seeds(real):
    edge_index = real.to_pyg(add_inverse=True).edge_index
    seed_sets = random_seed_sets(real, 60, seed=1)
    # UMLS and Kinships rows hold ~10-200 edges: a cap of 8 ranks rows of <= 64 and
    # samples bigger ones by Floyd's algorithm; a cap of 3 almost always uses Floyd.
    batch = SubgraphRetriever(real, [8, 3], max_nodes=20, seed=5)(seed_sets)
    for i, seeds in enumerate(seed_sets):
        data = batch.get_example(i)
        counts = torch.bincount(data.hop, minlength=3).tolist()
        assert data.n_id[: len(seeds)].tolist() == seeds
        assert counts[0] == len(seeds)
        assert counts[1] <= 8 * counts[0] and counts[2] <= 3 * counts[1]
        assert data.num_nodes <= 20
        assert len(set(data.n_id.tolist())) == data.num_nodes
        # Each hop-h node neighbours some hop-(h - 1) node.
        for h in (1, 2):
            frontier = data.n_id[data.hop == h - 1]
            near = k_hop_subgraph(frontier, 1, edge_index, num_nodes=real.num_entities)[0]
            assert set(data.n_id[data.hop == h].tolist()) <= set(near.tolist())
        # The edges are exactly those induced by the kept nodes.
        induced, _, mask = subgraph(data.n_id, edge_index, num_nodes=real.num_entities, return_edge_mask=True)
        assert np.array_equal(sample_edges(batch, i), expected_edges(real, induced, mask))


def test_batch_node_index(toy):
    batch = SubgraphRetriever(toy, [-1])([[0], [], [5, 4]])  # rows: 0 1 2 | - | 3 4 5 6
    token_entity = torch.tensor([[2, -1, 4, 0], [0, 0, -1, -1], [4, 6, 3, 0]])  # (B, T), -1: no entity
    index = batch_node_index(batch, torch.arange(3)[:, None], token_entity)
    assert index.tolist() == [[2, -1, -1, 0], [-1, -1, -1, -1], [4, 6, 5, -1]]
    assert torch.equal(batch.n_id[index[index >= 0]], token_entity[index >= 0])
    assert batch_node_index(batch, 2, 5).item() == 3
    with pytest.raises(IndexError, match=r"`sample` should lie in \[0, 3\), got \[0, 3\]"):
        batch_node_index(batch, torch.tensor([0, 3]), 0)


def test_errors(toy):
    retriever = SubgraphRetriever(toy, [-1])
    with pytest.raises(SeedEntityError, match=r"Seed set 1 holds entity id 8, but the knowledge graph has 8 entities"):
        retriever([[0], [1, 8]])
    with pytest.raises(KGPeftError, match="Seed set 2 holds entity id -1"):
        retriever([[0], [], [-1]])
    with pytest.raises(ValueError, match="Seed set 0 holds"):
        retriever([[9]])
    with pytest.raises(TypeError, match="Seed set 0 should hold integer entity ids, got dtype float64"):
        retriever([[0.5]])
    with pytest.raises(ValueError, match=r"`num_neighbors` should hold caps >= 0 or -1 \(all\), got \[4, -2\]"):
        SubgraphRetriever(toy, [4, -2])
    with pytest.raises(ValueError, match="`max_nodes` should be positive or None, got 0"):
        SubgraphRetriever(toy, [4], max_nodes=0)


def test_repr(toy):
    retriever = SubgraphRetriever(toy, [16, 8], max_nodes=64)
    assert repr(retriever) == "SubgraphRetriever(num_neighbors=[16, 8], max_nodes=64, seed=0)"
    assert retriever.num_hops == 2


@pytest.mark.parametrize("hub_degree", [0, 3, 40])
def test_hub_rows_searched_give_the_same_batch_as_rows_read_whole(real, monkeypatch, hub_degree):
    """Binary-searching long rows for the sample's nodes finds exactly the edges a full scan finds, in order."""
    from kgpeft.retrieval import subgraph_retriever

    seed_sets = [*random_seed_sets(real, 24, seed=3), [], [0, 0, 1]]
    retriever = SubgraphRetriever(real, [8, 4], max_nodes=40)
    monkeypatch.setattr(subgraph_retriever, "HUB_DEGREE", 1 << 62)
    whole = retriever(seed_sets)
    monkeypatch.setattr(subgraph_retriever, "HUB_DEGREE", hub_degree)
    searched = retriever(seed_sets)
    assert int((real.degree > hub_degree).sum()) > 0 and whole.edge_index.size(1) > 0
    for name in ("n_id", "edge_index", "edge_type", "edge_id", "hop", "batch", "ptr"):
        assert torch.equal(whole[name], searched[name]), name


def _subgraphs(kg: KnowledgeGraph, retriever: SubgraphRetriever) -> list[tuple]:
    """Each entity's subgraph as (nodes and hops, edges as (source, target, type, triple)), triples named by
    their (head, relation, tail) ids, not their column, which an edit elsewhere may move."""
    batch = retriever([[s] for s in range(kg.num_entities)])
    out = []
    for i in range(kg.num_entities):
        data = batch.get_example(i)
        src, dst = data.n_id[data.edge_index]
        edges = torch.stack([src, dst, data.edge_type, *kg.triples[:, data.edge_id]]).T.tolist()
        out.append((data.n_id.tolist(), data.hop.tolist(), sorted(map(tuple, edges))))
    return out


def test_edits_change_only_the_subgraphs_that_read_an_edited_row():
    """Sampling is seeded by each row's own entity and edges, not by CSR positions that any edit shifts: a
    subgraph none of whose nodes is an endpoint of an edited triple reads no edited row, so it stays as it was."""
    rng = np.random.default_rng(0)
    n, e = 3000, 9000
    weight = 1.0 / np.arange(1, n + 1) ** 0.75  # power-law heads: hubs (Floyd), mid rows (ranked), leaves (whole)
    triples = np.unique(
        np.stack([rng.choice(n, e, p=weight / weight.sum()), rng.integers(0, 4, e), rng.permutation(n * 4)[:e] % n]),
        axis=1,
    )
    kg = KnowledgeGraph([f"e{i}" for i in range(n)], [f"r{i}" for i in range(4)], torch.from_numpy(triples))
    removed = rng.choice(kg.num_triples, 20, replace=False)
    added = np.stack([rng.integers(0, n, 20), rng.integers(0, 4, 20), rng.integers(0, n, 20)])
    added = added[
        :, ~np.isin(np.ravel_multi_index(tuple(added), (n, 4, n)), np.ravel_multi_index(tuple(triples), (n, 4, n)))
    ]
    edited = kg.edit(remove=kg.triples[:, removed], add=added)
    touched = set(kg.triples[:, removed][[0, 2]].flatten().tolist()) | set(added[[0, 2]].flatten().tolist())
    for num_neighbors in ([4, 3], [6]):
        retriever = SubgraphRetriever(kg, num_neighbors, max_nodes=16, seed=3)
        before = _subgraphs(kg, retriever)
        after = _subgraphs(edited, SubgraphRetriever(edited, num_neighbors, max_nodes=16, seed=3))
        untouched = [i for i, (nodes, _, _) in enumerate(before) if not touched.intersection(nodes)]
        assert len(untouched) > n // 4
        changed = [i for i in untouched if before[i] != after[i]]
        assert not changed, f"{len(changed)} of {len(untouched)} untouched subgraphs changed ({num_neighbors})"


def test_a_ranked_row_is_a_bottom_k_sample_stable_under_edits_of_its_other_edges(star):
    """Hub 0's ten leaves, four drawn (a ranked row): removing an undrawn leaf keeps the draw; a new leaf
    either is not drawn or takes the place of one drawn leaf, the others staying."""
    for seed in range(20):
        drawn = set(SubgraphRetriever(star, [4], seed=seed)([[0]]).n_id[1:].tolist())
        undrawn = min(set(range(1, 11)) - drawn)
        fewer = star.edit(remove=[(0, 0, undrawn)])
        assert set(SubgraphRetriever(fewer, [4], seed=seed)([[0]]).n_id[1:].tolist()) == drawn
        more = star.edit(entities={"e11": "e11"}, add=[(0, 0, 11)])
        now = set(SubgraphRetriever(more, [4], seed=seed)([[0]]).n_id[1:].tolist())
        assert now == drawn or (11 in now and len(now & drawn) == 3)
