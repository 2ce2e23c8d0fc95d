"""The rules that follow mail through the routing graph.

Each pass is linear in nodes plus edges: one SCC pass finds every loop,
chain lengths come from one pass over the components in topological
order, and catch-alls were already resolved by dict lookups.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from mailbridge.errors import path_to_text
from mailbridge.routing.graph import (
    HOP_WEIGHT,
    EdgeKind,
    Node,
    NodeKind,
    Origin,
    RoutingGraph,
    node_key,
)
from mailbridge.routing.rules import RULES, Finding, SpecFinding
from mailbridge.routing.scc import Components, cycle_through, strongly_connected
from mailbridge.spec.models import Limits

# How many hops a message names before it shortens the list with "...".
SHOWN_HOPS = 10
DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Analysis:
    """The graph with its components, shared by the rules that need them."""

    graph: RoutingGraph
    adjacency: list[list[int]]
    components: Components

    @classmethod
    def of(cls, graph: RoutingGraph) -> Analysis:
        adjacency = graph.adjacency()
        return cls(graph, adjacency, strongly_connected(adjacency))

    def on_cycle(self) -> set[str]:
        """Keys of every node that lies on some forwarding cycle."""
        nodes = self.graph.nodes
        return {
            nodes[n].key
            for c, members in enumerate(self.components.members)
            if self.components.cyclic[c]
            for n in members
        }


def graph_findings(
    analysis: Analysis, limits: Mapping[str, Limits]
) -> Iterator[SpecFinding]:
    """Findings of every rule that reads the routing graph."""
    yield from loops(analysis)
    yield from fanout(analysis.graph, limits)
    yield from chain_length(analysis, limits)
    yield from duplicate_paths(analysis.graph)
    yield from no_route(analysis.graph)


def _place(origin: Origin | None, finding: Finding) -> SpecFinding:
    if origin is None:
        return SpecFinding(None, finding)
    return SpecFinding(origin.domain, replace(finding, path=origin.path))


def _arrow(labels: Sequence[str]) -> str:
    return " -> ".join(labels)


def _cycle_start(nodes: Sequence[Node], members: Sequence[int]) -> int:
    """The canonical first node of a loop: the smallest address, not `*@`."""
    return min(
        members, key=lambda n: (nodes[n].kind == NodeKind.CATCH_ALL, nodes[n].label)
    )


def _edge_between(graph: RoutingGraph, source: int, target: int) -> int:
    for e in graph.out[source]:
        if graph.edges[e].target == target:
            return e
    raise ValueError(f"no edge {source} -> {target}")


def _declared(graph: RoutingGraph, edge: int) -> str:
    origin = graph.edges[edge].origin
    if origin is None:
        return "?"
    return f"{path_to_text(origin.path)} of {origin.domain}"


def loops(analysis: Analysis) -> Iterator[SpecFinding]:
    """One finding per group of addresses that forward to each other.

    The message shows one shortest cycle, starting at the group's smallest
    address; the other addresses of the group are listed under `found`.
    """
    graph, components = analysis.graph, analysis.components
    nodes = graph.nodes
    for c, members in enumerate(components.members):
        if not components.cyclic[c]:
            continue
        start = _cycle_start(nodes, members)
        cycle = cycle_through(analysis.adjacency, components, start)
        hops = [
            _edge_between(graph, node, cycle[(i + 1) % len(cycle)])
            for i, node in enumerate(cycle)
        ]
        first = graph.edges[hops[0]]
        node = nodes[start]
        if len(cycle) == 1 and node.targets == 1 and len(graph.out[start]) == 1:
            finding = RULES["self-alias"].finding(
                f"{node.label} forwards only to itself: mail to it never arrives",
                found=f"to: [{node.label}]",
                expected="at least one other target, or a mailbox",
                fix=f"point {node.label} at a mailbox or an inbox, or remove it",
            )
            yield _place(first.origin, finding)
            continue
        labels = [nodes[n].label for n in cycle]
        steps = [
            f"{nodes[cycle[i]].label} -> {nodes[cycle[(i + 1) % len(cycle)]].label}"
            f" ({_declared(graph, e)})"
            for i, e in enumerate(hops[:SHOWN_HOPS])
        ]
        if len(hops) > SHOWN_HOPS:
            steps.append(f"... {len(hops) - SHOWN_HOPS} more hops")
        found = "; ".join(steps)
        on_cycle = set(cycle)
        others = sorted(nodes[n].label for n in members if n not in on_cycle)
        if others:
            shown = ", ".join(others[:SHOWN_HOPS])
            more = ", ..." if len(others) > SHOWN_HOPS else ""
            found += f"; also in this loop: {shown}{more}"
        finding = RULES["loop"].finding(
            f"forwarding loop: {_arrow([*labels, labels[0]])}",
            found=found,
            expected="every path to end at a mailbox or an outside inbox",
            fix="break the circle: remove one of these forwards, or point it "
            "at a mailbox or an inbox outside the loop",
        )
        yield _place(first.origin, finding)


def fanout(graph: RoutingGraph, limits: Mapping[str, Limits]) -> Iterator[SpecFinding]:
    """Aliases with more distinct targets than `limits.max_fanout`."""
    for node in graph.nodes:
        origin = node.forwarder
        if origin is None:
            continue
        limit = limits.get(origin.domain, DEFAULT_LIMITS).max_fanout
        if node.targets <= limit:
            continue
        finding = RULES["fanout"].finding(
            f"{node.label} forwards to {node.targets} addresses, over the limit "
            f"of {limit}",
            found=f"{node.targets} targets",
            expected=f"at most {limit} (limits.max_fanout)",
            fix="forward to a list or group instead, or raise "
            f"limits.max_fanout in the spec of {origin.domain}",
        )
        yield _place(Origin(origin.domain, (*origin.path, "to")), finding)


@dataclass(frozen=True)
class Chains:
    """Longest chain per component: `hops[c]` hops, leaving by edge `best[c]`."""

    hops: list[int]
    best: list[int | None]


def longest_chains(analysis: Analysis) -> Chains:
    """Hops of the longest path from each component, in one pass.

    Components come sinks first, so every successor is done before its
    predecessors. Hops inside a loop count nothing.
    """
    graph, components = analysis.graph, analysis.components
    edges, of = graph.edges, components.of
    hops = [0] * len(components.members)
    best: list[int | None] = [None] * len(components.members)
    for c, members in enumerate(components.members):
        for n in members:
            for e in graph.out[n]:
                edge = edges[e]
                target = of[edge.target]
                if target == c:
                    continue
                length = HOP_WEIGHT[edge.kind] + hops[target]
                if length > hops[c] or best[c] is None:
                    hops[c], best[c] = length, e
    return Chains(hops, best)


def chain_length(
    analysis: Analysis, limits: Mapping[str, Limits]
) -> Iterator[SpecFinding]:
    """Aliases whose longest forwarding chain is over `limits.max_chain`.

    Aliases on a loop are left to the loop rule. Only the first alias of
    an over-long chain is reported.
    """
    graph, components = analysis.graph, analysis.components
    nodes, edges, of = graph.nodes, graph.edges, components.of
    chains = longest_chains(analysis)
    hops, best = chains.hops, chains.best

    max_chain = {domain: value.max_chain for domain, value in limits.items()}
    cyclic = components.cyclic

    def limit_of(n: int) -> int:
        origin = nodes[n].forwarder
        assert origin is not None
        return max_chain.get(origin.domain, DEFAULT_LIMITS.max_chain)

    over = [False] * len(nodes)
    for n, node in enumerate(nodes):
        if node.forwarder is None or cyclic[of[n]]:
            continue
        over[n] = hops[of[n]] > limit_of(n)
    # Only the head of an over-long chain is reported, per domain: a domain
    # further down that is over its own limit hears of it in its own spec.
    covered = [False] * len(nodes)
    for edge in edges:
        if over[edge.source] and nodes[edge.source].domain == nodes[edge.target].domain:
            covered[edge.target] = True
    for n, node in enumerate(nodes):
        if not over[n] or covered[n]:
            continue
        limit = limit_of(n)
        path = _longest_path(analysis, n, best, limit + 2)
        finding = RULES["chain-length"].finding(
            f"forwarding chain of {hops[of[n]]} hops from {node.label}, over the "
            f"limit of {limit}: {_arrow(path)}",
            found=f"{hops[of[n]]} hops",
            expected=f"at most {limit} (limits.max_chain)",
            fix="forward to the final inbox directly, or raise limits.max_chain "
            f"in the spec of {node.domain}",
        )
        assert node.forwarder is not None
        yield _place(node.forwarder, finding)


def _longest_path(
    analysis: Analysis, start: int, best: Sequence[int | None], most: int
) -> list[str]:
    """Labels along the longest chain from `start`, at most `most` of them."""
    graph, of = analysis.graph, analysis.components.of
    path = [start]
    edge_index = best[of[start]]
    while edge_index is not None and len(path) <= most:
        edge = graph.edges[edge_index]
        if edge.source != path[-1]:
            path.append(edge.source)
        path.append(edge.target)
        edge_index = best[of[edge.target]]
    labels = [graph.nodes[n].label for n in path]
    if edge_index is not None:
        labels.append("...")
    return labels


def duplicate_paths(graph: RoutingGraph) -> Iterator[SpecFinding]:
    """Inboxes that both a fetch job and a forwarder deliver into.

    From each such inbox, a walk backwards over hops that are not
    forwarders (external forwards, catch-all resolution) finds the last
    forwarder on every path into it. One marked `backup: true`, or named
    by the fetch job's `backup_of`, is the intended second path.
    """
    jobs: defaultdict[int, list[int]] = defaultdict(list)
    for edge in graph.edges:
        if edge.kind == EdgeKind.FETCH:
            jobs[edge.target].append(edge.source)
    if not jobs:
        return
    into: list[list[int]] = [[] for _ in graph.nodes]
    for e, edge in enumerate(graph.edges):
        into[edge.target].append(e)
    nodes = graph.nodes
    for inbox, fetchers in jobs.items():
        forwarders = _last_forwarders(graph, into, inbox)
        for job in fetchers:
            for source, e in forwarders.items():
                yield from _duplicate(graph, nodes[inbox], nodes[job], source, e)


def _last_forwarders(
    graph: RoutingGraph, into: Sequence[Sequence[int]], inbox: int
) -> dict[int, int]:
    """Forwarder nodes with a path into `inbox`, each with its hop there."""
    found: dict[int, int] = {}
    seen = {inbox}
    queue = deque([inbox])
    while queue:
        node = queue.popleft()
        for e in into[node]:
            edge = graph.edges[e]
            source = edge.source
            if edge.kind == EdgeKind.FETCH:
                continue
            if graph.nodes[source].forwarder is not None:
                found.setdefault(source, e)
            elif source not in seen:
                seen.add(source)
                queue.append(source)
    return found


def _duplicate(
    graph: RoutingGraph, inbox: Node, job: Node, source: int, edge: int
) -> Iterator[SpecFinding]:
    forwarder = graph.nodes[source]
    if forwarder.backup:
        return
    if job.backup_of is not None and node_key(job.backup_of) == forwarder.key:
        return
    marks = f"`backup: true` on forwarder {forwarder.label}"
    if forwarder.domain == job.domain and forwarder.kind != NodeKind.CATCH_ALL:
        marks = f"`backup_of: {forwarder.label}` on fetch job {job.label} or " + marks
    finding = RULES["duplicate-path"].finding(
        f"two delivery paths into {inbox.label}: forwarder {forwarder.label} and "
        f"fetch job {job.label} of {job.domain}",
        found=f"forwarder {forwarder.label} and fetch job {job.label}",
        expected="one path, or one marked as the intended backup",
        fix=f"if one path is the intended backup, set {marks}; otherwise "
        "remove one of them",
    )
    yield _place(graph.edges[edge].origin, finding)


def no_route(graph: RoutingGraph) -> Iterator[SpecFinding]:
    """Targets in a loaded domain that no mailbox, alias or catch-all takes."""
    nodes = graph.nodes
    reported: set[int] = set()
    for edge in graph.edges:
        target = edge.target
        node = nodes[target]
        if (
            node.kind != NodeKind.ADDRESS
            or node.forwarder is not None
            or graph.out[target]
            or target in reported
        ):
            continue
        reported.add(target)
        finding = RULES["no-route"].finding(
            f"{node.label} is no mailbox, forwarder or catch-all of {node.domain}: "
            "mail to it bounces",
            found=node.label,
            expected=f"a mailbox or forwarder of {node.domain}",
            fix=f"add {node.label} to the spec of {node.domain}, or correct "
            "the address",
        )
        yield _place(edge.origin, finding)
