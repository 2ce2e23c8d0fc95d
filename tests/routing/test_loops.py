"""Loops and self-aliases: within a domain, across domains, via catch-alls."""

from __future__ import annotations

from pathlib import Path

from mailbridge.errors import Severity
from tests.routing.helpers import WriteSpec, by_rule, check, line_of


def test_cross_domain_loop_message_and_location(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    x = write_spec(
        "x.com",
        """
        forwarders:
          - {address: a@x.com, to: [b@y.net]}
        """,
    )
    write_spec(
        "y.net",
        """
        forwarders:
          - {address: b@y.net, to: [a@x.com]}
        """,
    )
    loops = by_rule(check(tmp_path), "loop")
    assert len(loops) == 1
    loop = loops[0]
    assert loop.message == "forwarding loop: a@x.com -> b@y.net -> a@x.com"
    assert loop.severity == Severity.ERROR
    assert loop.location is not None
    assert loop.location.file == str(x)
    assert loop.location.line == line_of(x, "a@x.com")
    assert loop.path == ("forwarders", 0, "to", 0)
    assert loop.found is not None
    assert "forwarders[0].to[0] of y.net" in loop.found


def test_loop_is_reported_once_from_its_smallest_address(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        forwarders:
          - {address: c@x.com, to: [a@x.com]}
          - {address: b@x.com, to: [c@x.com]}
          - {address: a@x.com, to: [b@x.com]}
        """,
    )
    loops = by_rule(check(tmp_path), "loop")
    assert [f.message for f in loops] == [
        "forwarding loop: a@x.com -> b@x.com -> c@x.com -> a@x.com"
    ]


def test_loop_through_catch_all_across_domains(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        mailboxes:
          - {address: box@x.com, password: "secret:box"}
        forwarders:
          - {address: "*@x.com", to: [team@y.net]}
        """,
    )
    write_spec(
        "y.net",
        """
        forwarders:
          - {address: team@y.net, to: [lost@x.com, box@x.com]}
        """,
    )
    loops = by_rule(check(tmp_path), "loop")
    assert [f.message for f in loops] == [
        "forwarding loop: lost@x.com -> *@x.com -> team@y.net -> lost@x.com"
    ]


def test_catch_all_does_not_take_defined_addresses(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    """The mailbox box@x.com is not caught, so team@y.net -> box is no loop."""
    write_spec(
        "x.com",
        """
        mailboxes:
          - {address: box@x.com, password: "secret:box"}
        forwarders:
          - {address: sales@x.com, to: [team@y.net]}
          - {address: "*@x.com", to: [team@y.net]}
        """,
    )
    write_spec(
        "y.net",
        """
        forwarders:
          - {address: team@y.net, to: [box@x.com, sales.lead@gmail.com]}
        """,
    )
    assert by_rule(check(tmp_path), "loop") == []


def test_loop_through_declared_external_forward(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    spec = write_spec(
        "x.com",
        """
        forwarders:
          - {address: info@x.com, to: [Owner.Name@googlemail.com]}
        external_forwards:
          # Gmail forwards everything back; Gmail ignores dots and case.
          - {from: ownername@gmail.com, to: [info@x.com]}
        """,
    )
    loops = by_rule(check(tmp_path), "loop")
    assert [f.message for f in loops] == [
        "forwarding loop: info@x.com -> owner.name@googlemail.com -> info@x.com"
    ]
    assert loops[0].location is not None
    assert loops[0].location.line == line_of(spec, "address: info@x.com")


def test_external_address_without_declared_forward_is_terminal(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        forwarders:
          - {address: info@x.com, to: [someone@elsewhere.org]}
        """,
    )
    assert check(tmp_path) == []


def test_keep_a_copy_on_a_mailbox_is_not_a_loop(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        mailboxes:
          - {address: alice@x.com, password: "secret:alice"}
        forwarders:
          - {address: alice@x.com, to: [alice@x.com, alice@gmail.com]}
        """,
    )
    findings = check(tmp_path)
    assert by_rule(findings, "loop") == []
    assert by_rule(findings, "self-alias") == []


def test_self_target_without_mailbox_is_a_loop(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        forwarders:
          - {address: list@x.com, to: [list@x.com, bob@gmail.com]}
        """,
    )
    loops = by_rule(check(tmp_path), "loop")
    assert [f.message for f in loops] == ["forwarding loop: list@x.com -> list@x.com"]


def test_self_alias(write_spec: WriteSpec, tmp_path: Path) -> None:
    spec = write_spec(
        "x.com",
        """
        forwarders:
          - {address: me@x.com, to: [me@x.com]}
        """,
    )
    findings = check(tmp_path)
    assert by_rule(findings, "loop") == []
    [alias] = by_rule(findings, "self-alias")
    assert alias.message.startswith("me@x.com forwards only to itself")
    assert alias.location is not None
    assert alias.location.line == line_of(spec, "me@x.com")


def test_two_separate_loops_give_two_findings(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        forwarders:
          - {address: a@x.com, to: [b@x.com]}
          - {address: b@x.com, to: [a@x.com]}
          - {address: c@x.com, to: [d@x.com]}
          - {address: d@x.com, to: [c@x.com, e@x.com]}
          - {address: e@x.com, to: [d@x.com]}
        """,
    )
    loops = by_rule(check(tmp_path), "loop")
    assert sorted(f.message for f in loops) == [
        "forwarding loop: a@x.com -> b@x.com -> a@x.com",
        "forwarding loop: c@x.com -> d@x.com -> c@x.com",
    ]
    group = next(f for f in loops if f.message.startswith("forwarding loop: c"))
    assert group.found is not None
    assert "also in this loop: e@x.com" in group.found


def test_loop_through_an_external_forward_declared_in_another_spec(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec(
        "x.com",
        """
        forwarders:
          - {address: desk@x.com, to: [desk@partner.example]}
        """,
    )
    y = write_spec(
        "y.net",
        """
        forwarders:
          - {address: intake@y.net, to: [desk@x.com]}
        external_forwards:
          # The partner's own server forwards desk@ to our intake address.
          - {from: desk@partner.example, to: [intake@y.net]}
        """,
    )
    [loop] = by_rule(check(tmp_path), "loop")
    assert loop.message == (
        "forwarding loop: desk@partner.example -> intake@y.net -> desk@x.com "
        "-> desk@partner.example"
    )
    assert loop.location is not None
    assert loop.location.file == str(y)
    assert loop.path == ("external_forwards", 0, "to", 0)
