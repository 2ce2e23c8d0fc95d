"""The routing graph as Graphviz DOT text: domains as clusters, loops in red."""

from __future__ import annotations

from collections import defaultdict

from mailbridge.routing.graph import EdgeKind, Node, NodeKind, RoutingGraph
from mailbridge.routing.paths import Analysis

LOOP_COLOR = "red"

NODE_STYLE: dict[NodeKind, str] = {
    NodeKind.ADDRESS: "shape=ellipse",
    NodeKind.MAILBOX: "shape=cylinder",
    NodeKind.CATCH_ALL: "shape=octagon",
    NodeKind.GMAIL: 'shape=tab, style=filled, fillcolor="#e8f0fe"',
    NodeKind.FETCH: "shape=component",
    NodeKind.EXTERNAL: "shape=ellipse, style=dashed",
}

EDGE_STYLE: dict[EdgeKind, str] = {
    EdgeKind.FORWARD: "",
    EdgeKind.EXTERNAL: 'style=dashed, label="external"',
    EdgeKind.CATCH_ALL: 'style=dotted, label="catch-all"',
    EdgeKind.EXTENSION: 'style=dotted, label="+tag"',
    EdgeKind.FETCH: 'style=bold, label="fetch"',
}


def quote(text: str) -> str:
    """A DOT double-quoted string (backslashes and quotes escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _label(graph: RoutingGraph, n: int) -> str:
    node = graph.nodes[n]
    if node.kind == NodeKind.FETCH:
        return f"fetch job {node.label}"
    if node.kind == NodeKind.MAILBOX:
        note = "mailbox, keeps a copy" if node.keeps_copy else "mailbox"
        return f"{node.label}\n({note})"
    if node.kind == NodeKind.ADDRESS and not graph.out[n]:
        return f"{node.label}\n(no route)"
    return node.label


def _cluster(node: Node) -> str | None:
    if node.managed:
        return node.domain
    if node.kind == NodeKind.GMAIL:
        return "Gmail"
    return None


def to_dot(graph: RoutingGraph, analysis: Analysis | None = None) -> str:
    """DOT text for `graph`; nodes and hops on a loop are drawn in red."""
    analysis = analysis or Analysis.of(graph)
    components = analysis.components
    clusters: defaultdict[str | None, list[int]] = defaultdict(list)
    for n, node in enumerate(graph.nodes):
        clusters[_cluster(node)].append(n)
    lines = [
        "digraph mailbridge {",
        "  rankdir=LR;",
        '  fontname="Helvetica";',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    named = sorted(
        (name for name in clusters if name is not None), key=lambda n: (n == "Gmail", n)
    )
    for i, name in enumerate(named):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={quote(name)}; style=rounded; color=grey60;")
        lines.extend(
            _node_line(graph, components.on_cycle(n), n, "    ") for n in clusters[name]
        )
        lines.append("  }")
    lines.extend(
        _node_line(graph, components.on_cycle(n), n, "  ") for n in clusters[None]
    )
    of = components.of
    for edge in graph.edges:
        attrs = [a for a in [EDGE_STYLE[edge.kind]] if a]
        same = of[edge.source] == of[edge.target]
        if same and components.on_cycle(edge.source):
            attrs.append(f"color={LOOP_COLOR}, penwidth=2")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  n{edge.source} -> n{edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_line(graph: RoutingGraph, on_loop: bool, n: int, indent: str) -> str:
    node = graph.nodes[n]
    attrs = [f"label={quote(_label(graph, n))}", NODE_STYLE[node.kind]]
    if on_loop:
        attrs.append(f"color={LOOP_COLOR}, fontcolor={LOOP_COLOR}, penwidth=2")
    return f"{indent}n{n} [{', '.join(attrs)}];"
