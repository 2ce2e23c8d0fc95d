"""The routing graph model built from the example specs and small ones."""

from __future__ import annotations

from pathlib import Path

from mailbridge.routing import EdgeKind, NodeKind, build_graph
from mailbridge.routing.dot import quote, to_dot
from mailbridge.spec import load_specs
from tests.routing.helpers import WriteSpec, check, load


def test_example_graph(stacks_dir: Path) -> None:
    graph = build_graph(load_specs([stacks_dir]))
    assert graph.domains == ["example.com", "example.net"]

    alice = graph.find("alice@example.com")
    assert alice is not None
    assert alice.kind == NodeKind.MAILBOX
    assert alice.keeps_copy
    assert alice.forwarder is not None
    assert alice.forwarder.path == ("forwarders", 1)

    inbox = graph.find("alice.example@gmail.com")
    assert inbox is not None and inbox.kind == NodeKind.GMAIL
    assert graph.find("aliceexample@googlemail.com") is inbox

    catch_all = graph.find("*@example.com")
    assert catch_all is not None and catch_all.kind == NodeKind.CATCH_ALL

    fetch = graph.find("fetch:example.com/legacy-isp")
    assert fetch is not None and fetch.kind == NodeKind.FETCH
    assert fetch.backup_of == "alice@example.com"

    owner = graph.index["owner@gmail.com"]
    [edge] = [graph.edges[e] for e in graph.out[owner]]
    assert edge.kind == EdgeKind.EXTERNAL
    assert graph.nodes[edge.target].label == "archive@example.com"
    assert edge.origin is not None
    assert edge.origin.path == ("external_forwards", 0, "to", 0)


def test_only_unrouted_addresses_fall_to_the_catch_all(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        mailboxes:
          - {address: box@x.com, password: "secret:box"}
        forwarders:
          - {address: "*@x.com", to: [owner@gmail.com]}
          - {address: alias@x.com, to: [box@x.com]}
        external_forwards:
          - {from: friend@ext.example, to: [alias@x.com, box@x.com, other@x.com]}
        """,
    )
    graph = build_graph(load(tmp_path))

    def hops(address: str) -> set[tuple[str, str]]:
        position = graph.index[address]
        return {
            (graph.nodes[graph.edges[e].target].label, str(graph.edges[e].kind))
            for e in graph.out[position]
        }

    assert hops("other@x.com") == {("*@x.com", "catch-all")}
    assert hops("alias@x.com") == {("box@x.com", "forward")}
    assert hops("box@x.com") == set()
    assert graph.nodes[graph.index["friend@ext.example"]].kind == NodeKind.EXTERNAL


def test_dot_output_draws_clusters_and_red_loops(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        forwarders:
          - {address: a@x.com, to: [b@x.com]}
          - {address: b@x.com, to: [a@x.com, out@gmail.com]}
        external_forwards:
          - {from: out@gmail.com, to: [elsewhere@ext.example]}
        """,
    )
    graph = build_graph(load(tmp_path))
    text = to_dot(graph)
    a, b = graph.index["a@x.com"], graph.index["b@x.com"]
    out = graph.index["out@gmail.com"]
    ext = graph.index["elsewhere@ext.example"]
    assert text.startswith("digraph mailbridge {")
    assert 'label="x.com"' in text and 'label="Gmail"' in text
    assert f"n{a} -> n{b} [color=red, penwidth=2];" in text
    assert f"n{b} -> n{out};" in text
    assert f'n{out} -> n{ext} [style=dashed, label="external"];' in text
    assert "fontcolor=red" in next(
        line for line in text.splitlines() if line.strip().startswith(f"n{a} [")
    )


def test_dot_quoting() -> None:
    assert quote('say "hi"\\') == '"say \\"hi\\"\\\\"'


def test_plus_tag_goes_where_the_base_address_goes(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    """Postfix (recipient_delimiter = +) tries user@domain before @domain."""
    write_spec(
        "x.com",
        """
        mailboxes:
          - {address: box@x.com, password: "secret:box"}
        forwarders:
          - {address: "*@x.com", to: [owner@gmail.com]}
          - {address: team@x.com, to: [box@x.com, team+bounce@x.com]}
          - {address: sales@x.com, to: [box+sales@x.com, nobody+x@x.com]}
        """,
    )
    graph = build_graph(load(tmp_path))

    def hop(address: str) -> tuple[str, str]:
        [e] = graph.out[graph.index[address]]
        edge = graph.edges[e]
        return graph.nodes[edge.target].label, str(edge.kind)

    assert hop("box+sales@x.com") == ("box@x.com", "extension")
    assert hop("nobody+x@x.com") == ("*@x.com", "catch-all")
    assert hop("team+bounce@x.com") == ("team@x.com", "extension")
    loops = [f for f in check(tmp_path) if f.rule == "loop"]
    assert [f.message for f in loops] == [
        "forwarding loop: team+bounce@x.com -> team@x.com -> team+bounce@x.com"
    ]
