"""Knowledge graphs: the data model and its readers."""

from kgpeft.graph.knowledge_graph import CSRAdjacency, KnowledgeGraph

__all__ = ["CSRAdjacency", "KnowledgeGraph"]
