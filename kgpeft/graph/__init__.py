"""Knowledge graphs: the data model and its readers."""

from kgpeft.graph.adjacency import CSRAdjacency
from kgpeft.graph.edits import KGEditError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.graph.readers import (
    read_entity_labels,
    read_ntriples,
    read_obo,
    read_pykeen_folder,
    read_rdf,
    read_triples,
)

__all__ = [
    "CSRAdjacency",
    "KGEditError",
    "KnowledgeGraph",
    "read_entity_labels",
    "read_ntriples",
    "read_obo",
    "read_pykeen_folder",
    "read_rdf",
    "read_triples",
]
