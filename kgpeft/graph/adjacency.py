"""Views derived from a KG's triples: the both-direction adjacency and the PyG graph."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class CSRAdjacency(NamedTuple):
    """Both-direction adjacency in compressed sparse row form.

    Row ``v`` holds the edges leaving ``v``: ``col[rowptr[v]:rowptr[v + 1]]`` are their
    targets, ``edge_type`` their relation ids (a triple ``(h, r, t)`` gives the edge
    ``h -> t`` of type ``r`` and the edge ``t -> h`` of type ``r + num_relations``), and
    ``edge_id`` the column of the triple in :attr:`KnowledgeGraph.triples`.
    Within a row, edges are sorted by target, then type.

    Shapes: ``rowptr (|V| + 1,)``, ``col``, ``edge_type``, ``edge_id`` ``(2 |E|,)``.
    """

    rowptr: torch.Tensor
    col: torch.Tensor
    edge_type: torch.Tensor
    edge_id: torch.Tensor


def build_csr(triples: torch.Tensor, num_entities: int, num_relations: int) -> CSRAdjacency:
    """The :class:`CSRAdjacency` of ``(3, E)`` triples."""
    h, r, t = triples.numpy()
    e = h.size
    src = np.concatenate([h, t])
    dst = np.concatenate([t, h])
    typ = np.concatenate([r, r + num_relations])
    eid = np.concatenate([np.arange(e), np.arange(e)])
    order = np.lexsort((typ, dst, src))  # by src, then dst, then type
    rowptr = np.zeros(num_entities + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=num_entities), out=rowptr[1:])
    return CSRAdjacency(
        rowptr=torch.from_numpy(rowptr),
        col=torch.from_numpy(dst[order]),
        edge_type=torch.from_numpy(typ[order]),
        edge_id=torch.from_numpy(eid[order]),
    )


def pyg_data(triples: torch.Tensor, csr: CSRAdjacency | None, num_entities: int, num_relations: int):
    """The graph as a PyG :class:`~torch_geometric.data.Data`: the triples' edges, or with ``csr``
    every edge of the adjacency (each triple both ways, the reverse typed ``r + num_relations``)."""
    from torch_geometric.data import Data  # PyG loads slowly, and only this view needs it

    if csr is not None:
        src = torch.repeat_interleave(torch.arange(num_entities), csr.rowptr.diff())
        edge_index, edge_type = torch.stack([src, csr.col]), csr.edge_type
        num_edge_types = 2 * num_relations
    else:
        edge_index, edge_type = triples[[0, 2]], triples[1]
        num_edge_types = num_relations
    return Data(
        edge_index=edge_index,
        edge_type=edge_type,
        num_nodes=num_entities,
        num_relations=num_edge_types,
    )
