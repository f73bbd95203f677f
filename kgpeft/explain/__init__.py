"""Explanations: which nodes and facts of the knowledge graph drove an answer, and how faithfully.

:func:`explain` (also ``kgpeft explain``) scores every node and fact of an answer's subgraph by
leave-one-out, gradient x input, attention (where the design attends to nodes) and the fact
scorer's probability; :func:`plot_explanation` draws the subgraph coloured by one of them.
"""

from kgpeft.explain.attribution import explain
from kgpeft.explain.explanation import METHODS, Attribution, Explanation, FactAttribution, NodeAttribution
from kgpeft.explain.plot import plot_explanation

__all__ = [
    "METHODS",
    "Attribution",
    "Explanation",
    "FactAttribution",
    "NodeAttribution",
    "explain",
    "plot_explanation",
]
