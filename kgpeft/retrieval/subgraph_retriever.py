"""k-hop subgraph retrieval around seed entities, batched into one PyG :class:`~torch_geometric.data.Batch`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch

from kgpeft.errors import KGPeftError
from kgpeft.graph import KnowledgeGraph

SeedSet = Sequence[int] | np.ndarray | torch.Tensor

# Distinct streams of the counter-based RNG, so fan-out draws and node-cap priorities never coincide.
_FANOUT_STREAM = 0x6A09E667F3BCC908
_NODE_CAP_STREAM = 0xBB67AE8584CAA73B
# (sample, entity) lookup keys of :func:`batch_node_index`; entity ids stay below 2**32.
_SAMPLE_STRIDE = 1 << 32
# Rows longer than this are binary-searched for the sample's nodes when collecting the induced
# edges, instead of read whole: a hub of a million edges then costs as little as a leaf.
HUB_DEGREE = 2048


class SeedEntityError(KGPeftError, ValueError):
    """A seed set holds an id that is not an entity of the knowledge graph."""


class SubgraphRetriever:
    r"""Retrieves the capped k-hop neighbourhood of each seed-entity set and batches the
    induced subgraphs into one PyG :class:`~torch_geometric.data.Batch`.

    For a seed set :math:`S` the node set grows hop by hop, as in PyG's
    :class:`~torch_geometric.loader.NeighborLoader`: each node of the previous hop's
    frontier :math:`F_{h-1}` (with :math:`F_0 = S`) draws at most :math:`f_h` of its
    edges uniformly without replacement, and the not yet visited endpoints become the
    next frontier, thinned to the node budget :math:`M` by a random priority:

    .. math::
        F_h = \operatorname{cap}_{M - |V_{h-1}|}\Big(\bigcup_{v \in F_{h-1}}
        \operatorname{sample}_{f_h}\big(\mathcal{N}(v)\big) \setminus V_{h-1}\Big),
        \qquad V_0 = S, \quad V_h = V_{h-1} \cup F_h .

    The returned graph is the subgraph induced by :math:`V_K`: every edge of
    :meth:`KnowledgeGraph.csr` between two kept nodes, in both directions, the inverse
    of relation :math:`r` typed :math:`r + |\mathcal{R}|`. Sampling only decides which
    nodes are kept.

    Nodes of a sample are ordered seeds first (in the given order, repeats dropped),
    then hop 1, hop 2, ... by entity id within a hop, so the seeds of sample :math:`i`
    are rows ``ptr[i]:ptr[i] + num_seeds`` of the batch. Seeds are always kept and
    count first towards ``max_nodes``; a set with more distinct seeds than
    ``max_nodes`` keeps all of them and gains no neighbours. An empty seed set gives a
    sample with no nodes.

    Randomness is counter-based (a SplitMix64 hash of the seed, the hop, the row's entity
    and the edge's target and type), not a stateful generator: a sample depends only on
    its own seed set and ``seed``, never on the rest of the batch, and identical seed sets
    give identical subgraphs. Pass a new ``seed`` (e.g. the epoch) for fresh samples. Nor
    does a sample depend on the rest of the graph: the draws from a row read only that
    row, so an edit of the KG (:meth:`KnowledgeGraph.edit`) changes a subgraph only if an
    edited triple touches one of its nodes. A row of :math:`d \le f^2` edges keeps the
    :math:`f` edges of smallest hash (a bottom-k sample: adding or removing one of its
    edges changes the rank of that edge alone).

    .. note::
        A capped row of degree :math:`d > f^2` draws its :math:`f` edges by Floyd's
        algorithm in :math:`O(f^2)` without reading the row, so hubs cost no more than
        ordinary nodes during expansion; an edit of such a row re-draws all its :math:`f`
        edges. Collecting the induced edges reads the rows of the kept nodes whole up to
        :data:`HUB_DEGREE` edges, and binary-searches longer rows (sorted by target) for the
        sample's other nodes, so retrieval time does not grow with the hubs, nor with the KG.

    Args:
        kg (KnowledgeGraph): the graph to retrieve from; its :meth:`~KnowledgeGraph.csr`
            is read once, zero-copy (memory-mapped KGs stay mapped).
        num_neighbors (Sequence[int]): the fan-out cap of each hop, ``-1`` for all
            neighbours; its length is the number of hops.
        max_nodes (int, optional): the most nodes per sample, seeds included.
            (default: :obj:`None`, no cap)
        seed (int, optional): the default random seed of :meth:`__call__`. (default: :obj:`0`)

    Shapes:
        - **input:** ``B`` seed sets of entity ids, each a sequence, array or tensor.
        - **output:** a :class:`~torch_geometric.data.Batch` of ``B`` graphs with
          ``n_id (|V|,)`` global entity ids, ``edge_index (2, |E|)`` batch-local,
          ``edge_type (|E|,)`` in ``[0, 2 |R|)``, ``edge_id (|E|,)`` the column in
          :attr:`KnowledgeGraph.triples`, ``hop (|V|,)`` the hop that reached each node
          (0 for seeds), ``seed_index (|S|,)`` the batch rows of the seeds,
          ``batch (|V|,)`` and ``ptr (B + 1,)``.
    """

    def __init__(
        self,
        kg: KnowledgeGraph,
        num_neighbors: Sequence[int],
        max_nodes: int | None = None,
        seed: int = 0,
    ) -> None:
        self.num_neighbors = [int(f) for f in num_neighbors]
        if any(f < -1 for f in self.num_neighbors):
            raise ValueError(f"`num_neighbors` should hold caps >= 0 or -1 (all), got {self.num_neighbors}.")
        if max_nodes is not None and max_nodes < 1:
            raise ValueError(f"`max_nodes` should be positive or None, got {max_nodes}.")
        self.max_nodes = max_nodes
        self.seed = int(seed)
        self.num_entities = kg.num_entities
        csr = kg.csr()
        self._rowptr = csr.rowptr.numpy()
        self._col = csr.col.numpy()
        self._edge_type = csr.edge_type.numpy()
        self._edge_id = csr.edge_id.numpy()
        self._num_edge_types = 2 * kg.num_relations

    @property
    def num_hops(self) -> int:
        return len(self.num_neighbors)

    def __call__(self, seed_sets: Sequence[SeedSet], *, seed: int | None = None) -> Batch:
        """Retrieves one subgraph per seed set, batched.

        Args:
            seed_sets (Sequence): ``B`` seed sets of entity ids (sequences, arrays or tensors).
            seed (int, optional): the random seed of this call. (default: the retriever's ``seed``)
        """
        seed = self.seed if seed is None else int(seed)
        num_samples = len(seed_sets)
        n = self.num_entities
        node, sample = self._gather_seeds(seed_sets)
        count = np.bincount(sample, minlength=num_samples)
        visited = np.sort(sample * n + node)  # keys sample * N + entity, for set lookups
        hops = [(node, sample)]
        for h, fanout in enumerate(self.num_neighbors):
            if self.max_nodes is not None:  # full samples stop growing
                growing = count[sample] < self.max_nodes
                node, sample = node[growing], sample[growing]
            if node.size == 0:
                break
            frontier, pos = self._sample_neighbors(node, fanout, _stream(seed, _FANOUT_STREAM, h))
            key = np.unique(sample[frontier] * n + self._col[pos])
            key = key[~_contains(visited, key)]
            if self.max_nodes is not None:
                key = self._cap(key, self.max_nodes - count, _stream(seed, _NODE_CAP_STREAM, h))
            node, sample = key % n, key // n
            count += np.bincount(sample, minlength=num_samples)
            visited = np.sort(np.concatenate([visited, key]))
            hops.append((node, sample))
        return self._collate(hops, num_samples)

    def _gather_seeds(self, seed_sets: Sequence[SeedSet]) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated seeds and their sample ids, validated, repeats within a set dropped."""
        arrays = []
        for i, s in enumerate(seed_sets):
            a = np.asarray(s.cpu() if isinstance(s, torch.Tensor) else s).reshape(-1)
            if a.size and a.dtype.kind not in "iu":
                raise TypeError(f"Seed set {i} should hold integer entity ids, got dtype {a.dtype}.")
            arrays.append(a.astype(np.int64, copy=False))
        node = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        sample = np.repeat(np.arange(len(arrays)), [a.size for a in arrays])
        bad = (node < 0) | (node >= self.num_entities)
        if bad.any():
            i = int(bad.argmax())
            raise SeedEntityError(
                f"Seed set {sample[i]} holds entity id {node[i]}, but the knowledge graph has "
                f"{self.num_entities} entities (ids 0..{self.num_entities - 1})."
            )
        _, first = np.unique(sample * self.num_entities + node, return_index=True)
        first.sort()
        return node[first], sample[first]

    def _sample_neighbors(self, node: np.ndarray, fanout: int, stream: np.uint64) -> tuple[np.ndarray, np.ndarray]:
        """Draws up to ``fanout`` edges per node without replacement.

        Returns the index into ``node`` of each drawn edge and its CSR position.
        """
        start = self._rowptr[node]
        deg = self._rowptr[node + 1] - start
        if fanout < 0:
            return _ranges(start, deg)
        # Three regimes by cost: take the whole row, keep the f smallest random keys of a row of
        # <= f^2 edges, or let Floyd's algorithm pick f offsets of a bigger row without reading it.
        whole = np.flatnonzero(deg <= fanout)
        ranked = np.flatnonzero((deg > fanout) & (deg <= fanout * fanout))
        floyd = np.flatnonzero(deg > max(fanout, fanout * fanout))

        owner, pos = _ranges(start[whole], deg[whole])
        parts = [(whole[owner], pos)]

        owner, pos = _ranges(start[ranked], deg[ranked])
        # lexsort is stable: repeated edges (same target and type) keep their CSR order
        order = np.lexsort((self._edge_key(node[ranked], owner, pos, stream), owner))
        keep = order[_rank_in_group(owner[order]) < fanout]
        parts.append((ranked[owner[keep]], pos[keep]))

        if floyd.size:
            d = deg[floyd]
            base = _splitmix64(stream ^ node[floyd].astype(np.uint64))
            offset = np.empty((floyd.size, fanout), dtype=np.int64)  # (R, f)
            for i in range(fanout):
                j = d - fanout + i
                t = _below(_splitmix64(base + np.uint64(i)), j + 1)
                taken = (offset[:, :i] == t[:, None]).any(axis=1)
                offset[:, i] = np.where(taken, j, t)
            parts.append((np.repeat(floyd, fanout), (start[floyd, None] + offset).reshape(-1)))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _edge_key(self, node: np.ndarray, owner: np.ndarray, pos: np.ndarray, stream: np.uint64) -> np.ndarray:
        """The random key of the edge at CSR position ``pos`` of row ``node[owner]``: a hash of the stream, the
        row's entity, and the edge's target and type, so that no edit elsewhere in the graph (which moves CSR
        positions) changes it; a row keeps the ``f`` smallest keys (a bottom-k sample)."""
        row = _splitmix64(stream ^ node.astype(np.uint64))  # one key per row
        edge = self._col[pos].astype(np.uint64) * np.uint64(self._num_edge_types) + self._edge_type[pos].astype(
            np.uint64
        )
        return _splitmix64(row[owner] ^ _splitmix64(edge))

    def _hub_edges(
        self,
        hubs: np.ndarray,
        node: np.ndarray,
        sample: np.ndarray,
        ptr: np.ndarray,
        sorted_key: np.ndarray,
        src: np.ndarray,
        pos: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Adds to ``(src, pos)`` the edges from each hub row to its sample's nodes, in CSR order.

        A row is sorted by target, so the edges to the sample's (sorted) entities are found
        by two binary searches per entity, reading ``O(k log d)`` of a row of ``d`` edges.
        """
        n = self.num_entities
        # One (hub, entity of its sample) pair per query, all hubs at once.
        s = sample[hubs]
        owner, at = _ranges(ptr[s], ptr[s + 1] - ptr[s])
        hub = hubs[owner]
        target = sorted_key[at] - sample[hub] * n
        lo, hi = self._rowptr[node[hub]], self._rowptr[node[hub] + 1]
        first = _search_rows(self._col, lo, hi, target)
        last = _search_rows(self._col, first, hi, target + 1)
        found_owner, found = _ranges(first, last - first)
        src, pos = np.concatenate([src, hub[found_owner]]), np.concatenate([pos, found])
        order = np.lexsort((pos, src))  # back to the order reading every row whole gives
        return src[order], pos[order]

    def _cap(self, key: np.ndarray, budget: np.ndarray, stream: np.uint64) -> np.ndarray:
        """Keeps at most ``budget[sample]`` of the sorted new keys of each sample, by random priority."""
        n = self.num_entities
        sample = key // n
        order = np.lexsort((_splitmix64(stream ^ (key % n).astype(np.uint64)), sample))
        keep = order[_rank_in_group(sample[order]) < budget[sample[order]]]
        return np.sort(key[keep])

    def _collate(self, hops: list[tuple[np.ndarray, np.ndarray]], num_samples: int) -> Batch:
        """Orders the nodes by sample, collects the induced edges and builds the batch."""
        n = self.num_entities
        node = np.concatenate([h[0] for h in hops])
        sample = np.concatenate([h[1] for h in hops])
        hop = np.repeat(np.arange(len(hops)), [h[0].size for h in hops])
        order = np.argsort(sample, kind="stable")  # hop-major order within each sample
        node, sample, hop = node[order], sample[order], hop[order]

        num_nodes = np.bincount(sample, minlength=num_samples)
        ptr = np.zeros(num_samples + 1, dtype=np.int64)
        np.cumsum(num_nodes, out=ptr[1:])
        num_seeds = np.bincount(sample[hop == 0], minlength=num_samples)
        seed_ptr = np.zeros(num_samples + 1, dtype=np.int64)
        np.cumsum(num_seeds, out=seed_ptr[1:])
        seed_index = _ranges(ptr[:-1], num_seeds)[1]

        start = self._rowptr[node]
        degree = self._rowptr[node + 1] - start
        hub = degree > HUB_DEGREE
        src, pos = _ranges(start, np.where(hub, 0, degree))
        # Most edges leave the batch's nodes altogether; a dense mark (calloc'd, so only the
        # touched pages cost) drops them before the per-sample search.
        kept = np.zeros(n, dtype=bool)
        kept[node] = True
        near = kept[self._col[pos]]
        src, pos = src[near], pos[near]
        key = sample * n + node
        by_key = np.argsort(key)
        sorted_key = key[by_key]
        if hub.any():
            src, pos = self._hub_edges(np.flatnonzero(hub), node, sample, ptr, sorted_key, src, pos)
        target = sample[src] * n + self._col[pos]
        loc = np.searchsorted(sorted_key, target).clip(max=max(key.size - 1, 0))
        hit = sorted_key[loc] == target
        src, pos = src[hit], pos[hit]
        edge_index = np.stack([src, by_key[loc[hit]]])
        edge_ptr = np.zeros(num_samples + 1, dtype=np.int64)
        np.cumsum(np.bincount(sample[src], minlength=num_samples), out=edge_ptr[1:])

        t = torch.from_numpy
        batch = Batch(
            n_id=t(node),
            edge_index=t(edge_index),
            edge_type=t(self._edge_type[pos]),
            edge_id=t(self._edge_id[pos]),
            hop=t(hop),
            seed_index=t(seed_index),
            batch=t(sample),
            ptr=t(ptr),
        )
        # What Batch.from_data_list records, so that get_example / to_data_list work.
        node_ptr, edge_ptr, seed_ptr, offset = t(ptr), t(edge_ptr), t(seed_ptr), t(ptr[:-1].copy())
        zeros = torch.zeros(num_samples, dtype=torch.long)
        batch._num_graphs = num_samples
        batch._slice_dict = {
            "n_id": node_ptr,
            "edge_index": edge_ptr,
            "edge_type": edge_ptr,
            "edge_id": edge_ptr,
            "hop": node_ptr,
            "seed_index": seed_ptr,
        }
        batch._inc_dict = {
            "n_id": zeros,
            "edge_index": offset,
            "edge_type": zeros,
            "edge_id": zeros,
            "hop": zeros,
            "seed_index": offset,
        }
        return batch

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_neighbors={self.num_neighbors}, max_nodes={self.max_nodes}, seed={self.seed})"
        )


def batch_node_index(
    batch: Batch,
    sample: int | torch.Tensor,
    entity_ids: int | torch.Tensor,
) -> torch.Tensor:
    r"""The batch row of entity ``entity_ids`` in sample ``sample``, or ``-1`` where that
    sample's subgraph lacks the entity (negative ids, e.g. padding, give ``-1`` too).

    Maps the linker's per-token entity ids to rows of the encoder's node states:
    ``batch_node_index(batch, torch.arange(B)[:, None], token_entity)`` gives the
    token→node index ``(B, T)``.

    Args:
        batch (Batch): the output of :class:`SubgraphRetriever`.
        sample (int or Tensor): sample indices, broadcastable against ``entity_ids``.
        entity_ids (int or Tensor): global entity ids.

    Shapes:
        - **output:** the broadcast shape of ``sample`` and ``entity_ids``, long.
    """
    n_id = batch.n_id
    sample, entity = torch.broadcast_tensors(
        torch.as_tensor(sample, device=n_id.device), torch.as_tensor(entity_ids, device=n_id.device)
    )
    if sample.numel() and (int(sample.min()) < 0 or int(sample.max()) >= batch.num_graphs):
        raise IndexError(
            f"`sample` should lie in [0, {batch.num_graphs}), got [{int(sample.min())}, {int(sample.max())}]."
        )
    out = torch.full(entity.shape, -1, dtype=torch.long, device=n_id.device)
    if n_id.numel() == 0:
        return out
    sorted_key, row = (batch.batch * _SAMPLE_STRIDE + n_id).sort()
    query = sample.long() * _SAMPLE_STRIDE + entity.long().clamp(min=0)
    loc = torch.searchsorted(sorted_key, query).clamp(max=n_id.numel() - 1)
    found = (sorted_key[loc] == query) & (entity >= 0)
    return torch.where(found, row[loc], out)


def _splitmix64(x: np.ndarray | np.uint64) -> np.ndarray:
    """SplitMix64's finaliser: a fast bijective hash of 64-bit words (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _stream(seed: int, purpose: int, hop: int) -> np.uint64:
    """The hash key of one (seed, purpose, hop) stream of randomness."""
    with np.errstate(over="ignore"):
        h = _splitmix64(np.uint64(seed % (1 << 64)) ^ np.uint64(purpose))
        return _splitmix64(h + np.uint64(hop))[()]


def _below(h: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Maps hashes to integers uniform in ``[0, bound)`` (Lemire's multiply-shift; ``bound < 2**32``)."""
    return ((h >> np.uint64(32)) * bound.astype(np.uint64) >> np.uint64(32)).astype(np.int64)


def _ranges(start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(start[i], start[i] + length[i])`` and the ``i`` of each element."""
    owner = np.repeat(np.arange(length.size), length)
    first = np.cumsum(length) - length
    return owner, np.arange(owner.size) + (start - first)[owner]


def _search_rows(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each ``i``, the first position in ``values[lo[i]:hi[i]]`` (sorted) holding ``target[i]`` or more.

    A binary search of every query at once: ``ceil(log2(max(hi - lo) + 1))`` vectorised steps,
    each reading one value per query.
    """
    lo, hi = lo.astype(np.int64, copy=True), hi.astype(np.int64, copy=False)
    span = int((hi - lo).max()) if lo.size else 0
    last = max(values.size - 1, 0)
    for _ in range(span.bit_length()):
        mid = (lo + hi) >> 1
        go = (lo < hi) & (values[np.minimum(mid, last)] < target)
        hi = np.where((lo < hi) & ~go, mid, hi)
        lo = np.where(go, mid + 1, lo)
    return lo


def _rank_in_group(group: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal values in the sorted array ``group``."""
    idx = np.arange(group.size)
    first = np.ones(group.size, dtype=bool)
    np.not_equal(group[1:], group[:-1], out=first[1:])
    return idx - np.maximum.accumulate(np.where(first, idx, 0))


def _contains(sorted_keys: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Whether each ``key`` occurs in the sorted array ``sorted_keys``."""
    if sorted_keys.size == 0:
        return np.zeros(key.shape, dtype=bool)
    loc = np.searchsorted(sorted_keys, key).clip(max=sorted_keys.size - 1)
    return sorted_keys[loc] == key
