"""Subgraph retrieval around seed entities: k hops, fan-out caps, deterministic sampling, PyG batching."""

from kgpeft.retrieval.subgraph_retriever import SeedEntityError, SubgraphRetriever, batch_node_index

__all__ = ["SeedEntityError", "SubgraphRetriever", "batch_node_index"]
