"""The routing graph: where mail for each address goes, across all domains.

Nodes are addresses and the places mail ends up; edges are the hops a
message takes. The model is plain data so the `check` and `graph` commands
and the policy pack share it. Building it is linear in the size of the
specs: every lookup is a dict lookup, catch-alls included.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mailbridge.errors import FieldPath
from mailbridge.perf import paused_gc
from mailbridge.spec.loader import LoadedSpec
from mailbridge.spec.models import DomainSpec

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


class NodeKind(enum.StrEnum):
    """What an address or delivery point is."""

    ADDRESS = "address"
    """An address of a loaded domain with no mailbox: an alias, or undefined."""
    MAILBOX = "mailbox"
    """A mailbox on the mail host; terminal unless it also has a forwarder."""
    CATCH_ALL = "catch-all"
    """`*@domain`: takes every address of the domain that nothing else routes."""
    GMAIL = "gmail"
    """A Gmail inbox; spelling variants of one inbox share the node."""
    FETCH = "fetch"
    """A fetch job: a POP3 mailbox the sidecar empties into an inbox."""
    EXTERNAL = "external"
    """An address of a domain with no spec loaded."""


class EdgeKind(enum.StrEnum):
    """Why mail moves from one node to the next."""

    FORWARD = "forward"
    """A forwarder's target (`forwarders[i].to[j]`)."""
    CATCH_ALL = "catch-all"
    """An address nothing else routes falls through to its domain's catch-all."""
    EXTENSION = "extension"
    """`user+tag@domain` that nothing routes goes where `user@domain` goes."""
    EXTERNAL = "external"
    """A forward set up outside mailbridge (`external_forwards`)."""
    FETCH = "fetch"
    """A fetch job delivers what it retrieves (`fetch[i].deliver_to`)."""


# Forwarding hops lengthen a chain; resolving a catch-all or a fetch does not.
HOP_WEIGHT: dict[EdgeKind, int] = {
    EdgeKind.FORWARD: 1,
    EdgeKind.EXTERNAL: 1,
    EdgeKind.CATCH_ALL: 0,
    EdgeKind.EXTENSION: 0,
    EdgeKind.FETCH: 0,
}


@dataclass(slots=True)
class Origin:
    """The spec entry behind a node or edge: its domain and field path."""

    domain: str
    path: FieldPath


@dataclass(slots=True)
class Node:
    """One address or delivery point.

    `key` identifies the node (a Gmail inbox's canonical address, else the
    address or `fetch:domain/name`); `label` is how a person wrote it.
    `forwarder` is the forwarder entry of this address, if it has one;
    `keeps_copy` marks a mailbox whose forwarder lists the mailbox itself.
    """

    key: str
    kind: NodeKind
    label: str
    domain: str
    managed: bool
    origin: Origin | None = None
    forwarder: Origin | None = None
    targets: int = 0
    keeps_copy: bool = False
    backup: bool = False
    backup_of: str | None = None


@dataclass(slots=True)
class Edge:
    """One hop from `source` to `target` (node indices).

    `entry` is the spec entry that declares the hop and `item` the hop's
    position in that entry's `to` list, if it has one; `origin` joins them.
    Storing them apart saves two objects per hop in large graphs.
    """

    source: int
    target: int
    kind: EdgeKind
    entry: Origin | None = None
    item: int | None = None

    @property
    def origin(self) -> Origin | None:
        """The field that declares this hop, e.g. `forwarders[3].to[1]`."""
        if self.entry is None or self.item is None:
            return self.entry
        return Origin(self.entry.domain, (*self.entry.path, "to", self.item))


@dataclass
class RoutingGraph:
    """Every node and hop of the loaded specs.

    `out[i]` lists the indices in `edges` of the hops leaving node `i`;
    `index` maps a node key to its index (see `node_key`).
    """

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    out: list[list[int]] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    domains: list[str] = field(default_factory=list)

    def find(self, address: str) -> Node | None:
        """The node of an address, a catch-all `*@domain` or a fetch key."""
        position = self.index.get(node_key(address))
        return None if position is None else self.nodes[position]

    def successors(self, node: int) -> list[int]:
        return [self.edges[e].target for e in self.out[node]]

    def adjacency(self) -> list[list[int]]:
        """Target node indices per node, for graph algorithms."""
        edges = self.edges
        return [[edges[e].target for e in outs] for outs in self.out]


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def gmail_inbox(address: str) -> str:
    """The inbox an address reaches at Gmail, which ignores dots and `+tags`."""
    local, _, _ = address.partition("@")
    local = local.partition("+")[0].replace(".", "")
    return f"{local}@gmail.com"


def node_key(address: str) -> str:
    """The key of an address's node: Gmail spellings of one inbox share one."""
    if domain_of(address) in GMAIL_DOMAINS:
        return gmail_inbox(address)
    return address


def fetch_key(domain: str, name: str) -> str:
    return f"fetch:{domain}/{name}"


class _Builder:
    """Adds nodes and edges; remembers which (source, target) pairs exist."""

    def __init__(self, managed: set[str]) -> None:
        self.graph = RoutingGraph(domains=sorted(managed))
        self.managed = managed
        # Pairs as `source << 32 | target`: ints cost the collector nothing.
        self.seen: set[int] = set()

    def add(self, key: str, kind: NodeKind, label: str, domain: str) -> int:
        graph = self.graph
        position = len(graph.nodes)
        graph.nodes.append(
            Node(key, kind, label, domain, managed=domain in self.managed)
        )
        graph.out.append([])
        graph.index[key] = position
        return position

    def address(self, address: str) -> int:
        """The node of `address`, created as an alias, Gmail or external one."""
        index = self.graph.index
        # Most addresses are their own key: try that before any parsing.
        found = index.get(address)
        if found is not None:
            return found
        domain = address.rpartition("@")[2]
        key = address
        if domain in self.managed:
            kind = NodeKind.ADDRESS
        elif domain in GMAIL_DOMAINS:
            kind = NodeKind.GMAIL
            key = gmail_inbox(address)
            found = index.get(key)
            if found is not None:
                return found
        else:
            kind = NodeKind.EXTERNAL
        return self.add(key, kind, address, domain)

    def link(
        self,
        source: int,
        target: int,
        kind: EdgeKind,
        entry: Origin | None,
        item: int | None = None,
    ) -> None:
        pair = source << 32 | target
        if pair in self.seen:
            return
        self.seen.add(pair)
        graph = self.graph
        graph.out[source].append(len(graph.edges))
        graph.edges.append(Edge(source, target, kind, entry, item))


def _as_spec(item: DomainSpec | LoadedSpec) -> DomainSpec:
    return item.spec if isinstance(item, LoadedSpec) else item


def build_graph(specs: Iterable[DomainSpec | LoadedSpec]) -> RoutingGraph:
    """The routing graph of all `specs` together (specs or loaded specs).

    Addresses of domains without a spec are terminal unless an external
    forward is declared for them. A forwarder on a mailbox that lists the
    mailbox itself keeps a local copy: that is not a loop.
    """
    ordered: Sequence[DomainSpec] = sorted(
        (_as_spec(s) for s in specs), key=lambda s: s.domain
    )
    builder = _Builder({s.domain for s in ordered})
    with paused_gc():
        for spec in ordered:
            _define(builder, spec)
        for spec in ordered:
            _connect(builder, spec)
        _resolve_catch_alls(builder)
    return builder.graph


def _define(builder: _Builder, spec: DomainSpec) -> None:
    """Nodes that a spec defines: mailboxes, forwarders, fetch jobs."""
    domain = spec.domain
    for i, box in enumerate(spec.mailboxes):
        node = builder.add(box.address, NodeKind.MAILBOX, box.address, domain)
        builder.graph.nodes[node].origin = Origin(domain, ("mailboxes", i))
    for i, fwd in enumerate(spec.forwarders):
        if fwd.is_catch_all:
            node = builder.add(fwd.address, NodeKind.CATCH_ALL, fwd.address, domain)
        else:
            node = builder.address(fwd.address)
        item = builder.graph.nodes[node]
        item.forwarder = Origin(domain, ("forwarders", i))
        item.origin = item.origin or item.forwarder
        item.backup = fwd.backup
    for i, job in enumerate(spec.fetch):
        key = fetch_key(domain, job.name)
        node = builder.add(key, NodeKind.FETCH, job.name, domain)
        item = builder.graph.nodes[node]
        item.origin = Origin(domain, ("fetch", i))
        item.backup_of = job.backup_of


def _connect(builder: _Builder, spec: DomainSpec) -> None:
    """Edges that a spec declares: forwards, external forwards, fetches."""
    domain = spec.domain
    index = builder.graph.index
    nodes = builder.graph.nodes
    seen, edges, out = builder.seen, builder.graph.edges, builder.graph.out
    for fwd in spec.forwarders:
        source = index[node_key(fwd.address)]
        node = nodes[source]
        entry = node.forwarder
        node.targets = len(set(fwd.to))
        for j, target in enumerate(fwd.to):
            if target == fwd.address and node.kind == NodeKind.MAILBOX:
                node.keeps_copy = True
                continue
            found = builder.address(target)
            # builder.link, inlined: this loop runs once per forwarder target.
            pair = source << 32 | found
            if pair in seen:
                continue
            seen.add(pair)
            out[source].append(len(edges))
            edges.append(Edge(source, found, EdgeKind.FORWARD, entry, j))
    for i, ext in enumerate(spec.external_forwards):
        source = builder.address(ext.from_)
        declared = Origin(domain, ("external_forwards", i))
        for j, target in enumerate(ext.to):
            found = builder.address(target)
            builder.link(source, found, EdgeKind.EXTERNAL, declared, j)
    for i, job in enumerate(spec.fetch):
        source = index[fetch_key(domain, job.name)]
        declared = Origin(domain, ("fetch", i, "deliver_to"))
        builder.link(source, builder.address(job.deliver_to), EdgeKind.FETCH, declared)


def _resolve_catch_alls(builder: _Builder) -> None:
    """Send each address nothing routes where the mail host would.

    The mail host's Postfix, set up with `recipient_delimiter = +`, looks up
    `user+tag@domain`, then `user@domain`, then the `@domain` catch-all
    (virtual(5)); a mailbox takes its `+tag` addresses too.
    """
    graph = builder.graph
    nodes, index = graph.nodes, graph.index
    for position, node in enumerate(nodes):
        if node.kind != NodeKind.ADDRESS or node.forwarder is not None:
            continue
        local, _, domain = node.key.rpartition("@")
        if "+" in local:
            base = index.get(f"{local.partition('+')[0]}@{domain}")
            defined = nodes[base].origin if base is not None else None
            if base is not None and defined is not None:
                builder.link(position, base, EdgeKind.EXTENSION, defined)
                continue
        catch_all = index.get(f"*@{node.domain}")
        if catch_all is None:
            continue
        origin = nodes[catch_all].forwarder
        assert origin is not None  # every catch-all node comes from a forwarder
        builder.link(position, catch_all, EdgeKind.CATCH_ALL, origin)
