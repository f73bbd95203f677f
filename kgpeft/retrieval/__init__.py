"""Subgraph retrieval around seed entities: k hops, fan-out caps, deterministic sampling, PyG batching.

:class:`RetrievalConfig` owns the settings (fan-out, node cap, link candidates, facts written as
text, fact format) and builds the linker and retriever; :mod:`kgpeft.retrieval.facts` is the one
fact renderer.
"""

from kgpeft.retrieval.config import RetrievalConfig, RetrievalConfigError
from kgpeft.retrieval.facts import FACT_STYLES, fact_spans, format_fact, frame_fact, memory_fact_texts, render_facts
from kgpeft.retrieval.subgraph_retriever import SeedEntityError, SubgraphRetriever, batch_node_index

__all__ = [
    "FACT_STYLES",
    "RetrievalConfig",
    "RetrievalConfigError",
    "SeedEntityError",
    "SubgraphRetriever",
    "batch_node_index",
    "fact_spans",
    "format_fact",
    "frame_fact",
    "memory_fact_texts",
    "render_facts",
]
