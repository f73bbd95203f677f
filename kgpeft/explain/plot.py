"""An explanation as a picture: the subgraph, relation-labelled edges, nodes coloured by attribution."""

from __future__ import annotations

import os
import textwrap

from kgpeft.explain.explanation import Explanation


def plot_explanation(
    explanation: Explanation, path: str | os.PathLike | None = None, by: str = "leave_one_out", max_nodes: int = 24
):
    """Draw ``explanation``'s subgraph with nodes coloured by the method ``by``; save it to ``path``.

    Linked nodes have a thick border; edges carry their relation; the title holds the question,
    the answer and the top three facts. The ``max_nodes`` nodes scored highest (linked ones
    always) are drawn, so a capped 64-node subgraph stays readable. Needs matplotlib (the
    ``demo`` extra); the layout is networkx's spring layout, seeded.

    Returns:
        The matplotlib ``Figure``.
    """
    try:
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("plot_explanation needs matplotlib: pip install 'kgpeft[demo]'.") from e
    import networkx as nx

    rows = sorted(explanation.nodes, key=lambda n: (not n.linked, -(n.score(by) or 0.0)))[:max_nodes]
    shown = {n.entity: n for n in rows}
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(shown)
    labels = {}
    for head, relation, tail in explanation.edges:
        if head in shown and tail in shown:
            graph.add_edge(head, tail)
            labels[(head, tail)] = relation.replace("_", " ")
    fig, ax = plt.subplots(figsize=(10, 7.5))
    if shown:
        layout = nx.spring_layout(nx.Graph(graph), seed=0, k=1.5 / max(len(shown), 1) ** 0.5)
        values = [shown[e].score(by) or 0.0 for e in graph.nodes]
        bound = max((abs(v) for v in values), default=0.0) or 1.0
        drawn = nx.draw_networkx_nodes(
            graph,
            layout,
            ax=ax,
            node_color=values,
            cmap="coolwarm",
            vmin=-bound,
            vmax=bound,
            node_size=900,
            edgecolors=["black" if shown[e].linked else "grey" for e in graph.nodes],
            linewidths=[3.0 if shown[e].linked else 0.8 for e in graph.nodes],
        )
        nx.draw_networkx_edges(graph, layout, ax=ax, arrows=True, node_size=900, edge_color="grey")
        nx.draw_networkx_edge_labels(nx.DiGraph(graph), layout, edge_labels=labels, ax=ax, font_size=7)
        names = {e: "\n".join(textwrap.wrap(shown[e].label, 18)) for e in graph.nodes}
        nx.draw_networkx_labels(graph, layout, labels=names, ax=ax, font_size=8)
        fig.colorbar(drawn, ax=ax, shrink=0.7, label=f"{by.replace('_', ' ')} (answer log-prob)")
    top = explanation.top_facts(3, by) if all(f.score(by) is not None for f in explanation.facts) else []
    title = [f"{explanation.text.strip()!r} -> {explanation.answer!r}"]
    title += [f"{f.text}  ({by.replace('_', ' ')} {f.score(by):+.2f})" for f in top]
    if explanation.note:
        title.append(explanation.note)
    ax.set_title("\n".join(textwrap.shorten(t, 110) for t in title), fontsize=9, loc="left")
    ax.set_axis_off()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
