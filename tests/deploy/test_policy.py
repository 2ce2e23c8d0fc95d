"""The policy pack's checks on a MailDomain's inputs (specs as JSON)."""

from __future__ import annotations

from pathlib import Path

from components.domain import spec_json
from mailbridge.deploy.policy import (
    key_violations,
    rule_ids,
    spec_violations,
    warning_violations,
)
from mailbridge.routing import RULES
from mailbridge.spec import load_spec
from mailbridge.spec.models import DomainSpec, Forwarder, TLSMode

ROOT = Path(__file__).resolve().parents[2]


def _spec(name: str) -> DomainSpec:
    return load_spec(ROOT / "stacks" / name).spec


def _with(spec: DomainSpec, *forwarders: Forwarder) -> DomainSpec:
    return spec.model_copy(update={"forwarders": [*spec.forwarders, *forwarders]})


def test_every_rule_has_a_policy() -> None:
    assert rule_ids() == list(RULES)


def test_examples_have_no_violations() -> None:
    com, net = _spec("example.com.yaml"), _spec("example.net.yaml")
    for rule in RULES:
        assert spec_violations(rule, spec_json(com), [spec_json(net)]) == []


def test_a_loop_in_the_spec_names_the_cycle() -> None:
    com = _with(
        _spec("example.com.yaml"),
        Forwarder(address="x@example.com", to=["y@example.com"]),
        Forwarder(address="y@example.com", to=["x@example.com"]),
    )
    found = spec_violations("loop", spec_json(com))
    assert len(found) == 1
    assert "x@example.com -> y@example.com -> x@example.com" in found[0]
    assert found[0].startswith("example.com: forwarders[")


def test_a_loop_through_a_peer_blocks_both_stacks() -> None:
    com = _with(
        _spec("example.com.yaml"),
        Forwarder(address="team@example.com", to=["escalations@example.net"]),
    )
    net = _spec("example.net.yaml").model_copy(
        update={
            "forwarders": [
                Forwarder(address="escalations@example.net", to=["team@example.com"])
            ]
        }
    )
    from_com = spec_violations("loop", spec_json(com), [spec_json(net)])
    from_net = spec_violations("loop", spec_json(net), [spec_json(com)])
    assert from_com == from_net
    assert len(from_com) == 1 and "team@example.com" in from_com[0]
    # Without the peer, the loop cannot be seen.
    assert spec_violations("loop", spec_json(com)) == []


def test_a_peers_own_problems_stay_with_the_peer() -> None:
    net = _with(
        _spec("example.net.yaml"),
        Forwarder(address="a@example.net", to=["b@example.net"]),
        Forwarder(address="b@example.net", to=["a@example.net"]),
    )
    com = _spec("example.com.yaml")
    assert spec_violations("loop", spec_json(com), [spec_json(net)]) == []
    assert len(spec_violations("loop", spec_json(net), [spec_json(com)])) == 1


def test_weak_dkim_key_resource() -> None:
    assert key_violations("s1", "rsa", 2048) == []
    assert key_violations("s1", "ed25519", 0) == []
    found = key_violations("s1", "rsa", 1024)
    assert len(found) == 1 and "1024" in found[0]


def test_a_warning_does_not_block_a_mandatory_rule() -> None:
    com = _spec("example.com.yaml")
    job = com.fetch[0]
    plain = job.model_copy(
        update={
            "pop3": job.pop3.model_copy(update={"tls": TLSMode.NONE, "insecure": True})
        }
    )
    insecure = com.model_copy(update={"fetch": [plain]})
    rule = RULES["fetch-tls"]
    assert spec_violations(rule.id, spec_json(insecure)) != []
    assert spec_violations(rule.id, spec_json(insecure), (), rule.severity) == []
    # The warning still shows, in the advisory policy, with its rule id.
    shown = warning_violations(spec_json(insecure))
    assert len(shown) == 1 and shown[0].startswith("fetch-tls: example.com: fetch[")
    assert warning_violations(spec_json(com)) == []
