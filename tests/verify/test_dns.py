"""verify's DNS checks against a real Knot serving good and broken zones."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbridge.dns.dkim import generate_key, write_key
from mailbridge.dns.policy import mta_sts_policy
from mailbridge.spec.models import DomainSpec
from mailbridge.verify import Report, Status, VerifyOptions
from mailbridge.verify.runner import Subject, verify_many
from tests.servers.knot import KnotServer, start_knot
from tests.verify.certs import TestCA
from tests.verify.https import PolicyServer
from tests.verify.zones import drop, make_spec, plain_zone, spec_zone, with_values

pytestmark = pytest.mark.servers

DKIM = {"selectors": [{"name": "s1", "algorithm": "ed25519"}]}

INC_ZONE = "\n".join(
    [
        'ok TXT "v=spf1 ip4:192.0.2.0/24 -all"',
        'deep TXT "v=spf1 '
        + " ".join(f"a:h{i}.inc.test" for i in range(10))
        + ' -all"',
        *(f"h{i} A 192.0.2.{i + 1}" for i in range(10)),
        'void TXT "v=spf1 a:nx1.inc.test a:nx2.inc.test a:nx3.inc.test -all"',
        'manymx TXT "v=spf1 mx -all"',
        *(f"manymx MX {i} m{i}.inc.test." for i in range(11)),
        'loop TXT "v=spf1 include:loop.inc.test -all"',
    ]
)
OTHER_ZONE = 'good.test._report._dmarc TXT "v=DMARC1"\n'
REVERSE_ZONE = """\
10 PTR mx1.good.test.
20 PTR wrong-name.example.net.
"""


@dataclass
class World:
    knot: KnotServer
    policy: PolicyServer
    ca: TestCA
    keys: Path
    specs: dict[str, DomainSpec]

    def options(self, **extra: object) -> VerifyOptions:
        values: dict[str, object] = {
            "resolver": f"127.0.0.1:{self.knot.port}",
            "check_tls": False,
            "mta_sts_address": "127.0.0.1",
            "mta_sts_port": self.policy.port,
            "ca_file": self.ca.path,
            "keys_dir": self.keys,
            "timeout": 2.0,
        }
        values.update(extra)
        return VerifyOptions.model_validate(values)

    def verify(
        self, *domains: str, bare: bool = False, **extra: object
    ) -> list[Report]:
        options = self.options(**extra)
        subjects = [
            Subject(d) if bare else Subject.from_spec(self.specs[d], options)
            for d in domains
        ]
        return asyncio.run(verify_many(subjects, options))


def _key_value(keys: Path, domain: str) -> str:
    pair = generate_key("ed25519")
    write_key(keys, domain, "s1", pair)
    return pair.record_value()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[World]:
    keys = tmp_path_factory.mktemp("keys")
    common = {
        "dkim": DKIM,
        "mta_sts": {"mode": "enforce"},
        "tls_rpt": {"rua": ["mailto:tlsrpt@example.net"]},
    }
    specs = {
        "good.test": make_spec(
            "good.test",
            "203.0.113.10",
            spf={"include": ["ok.inc.test"]},
            dmarc={"rua": ["mailto:dmarc@other.test"]},
            no_mail=["www.good.test"],
            **common,
        ),
        "lookups.test": make_spec(
            "lookups.test", "203.0.113.10", spf={"include": ["deep.inc.test"]}
        ),
        "void.test": make_spec(
            "void.test", "203.0.113.10", spf={"include": ["void.inc.test"]}
        ),
        "manymx.test": make_spec(
            "manymx.test", "203.0.113.10", spf={"include": ["manymx.inc.test"]}
        ),
        "loop.test": make_spec(
            "loop.test", "203.0.113.10", spf={"include": ["loop.inc.test"]}
        ),
        "drift.test": make_spec(
            "drift.test",
            "203.0.113.20",
            dmarc={"rua": ["mailto:dmarc@other.test"]},
            no_mail=["www.drift.test"],
            **common,
        ),
        "noptr.test": make_spec("noptr.test", "203.0.113.30"),
    }
    zones = {
        "inc.test": plain_zone("inc.test", INC_ZONE),
        "other.test": plain_zone("other.test", OTHER_ZONE),
        "113.0.203.in-addr.arpa": plain_zone("113.0.203.in-addr.arpa", REVERSE_ZONE),
    }
    for domain, spec in specs.items():
        public = {"s1": _key_value(keys, domain)} if spec.dkim else {}
        zones[domain] = spec_zone(spec, public)
    # drift.test: what an operator changed by hand after the last deploy.
    stray = generate_key("ed25519").record_value()
    zones["drift.test"] = spec_zone(
        specs["drift.test"],
        {"s1": stray},
        {
            ("drift.test", "MX"): with_values("10 mx9.drift.test."),
            ("www.drift.test", "MX"): drop,
            ("_dmarc.drift.test", "TXT"): with_values(
                '"v=DMARC1; p=maybe; rua=mailto:dmarc@other.test"'
            ),
        },
    )
    leaf = test_ca.issue("mta-sts", ["mta-sts.good.test", "mta-sts.drift.test"])
    knot = start_knot(tmp_path_factory.mktemp("knot"), zones)
    try:
        with PolicyServer(leaf.cert, leaf.key) as policy:
            policy.policies["mta-sts.good.test"] = mta_sts_policy(specs["good.test"])
            policy.policies["mta-sts.drift.test"] = (
                "version: STSv1\r\nmode: enforce\r\nmx: mx7.elsewhere.example\r\n"
                "max_age: 604800\r\n"
            )
            yield World(knot, policy, test_ca, keys, specs)
    finally:
        knot.stop()


def statuses(report: Report) -> dict[str, Status]:
    """Check id -> worst status among its findings."""
    worst: dict[str, Status] = {}
    for finding in report.findings:
        old = worst.get(finding.check, Status.OK)
        if finding.status.rank >= old.rank:
            worst[finding.check] = finding.status
    return worst


def test_good_domain_has_only_ok_findings(world: World) -> None:
    (report,) = world.verify("good.test")
    bad = [f.to_text() for f in report.findings if f.status != Status.OK]
    assert not bad, "\n".join(bad)
    checks = set(statuses(report))
    for check in (
        "mx",
        "spf",
        "spf.lookups",
        "spf.void-lookups",
        "dkim.s1",
        "dmarc",
        "dmarc.syntax",
        "dmarc.report-auth",
        "mta-sts",
        "mta-sts.policy",
        "mta-sts.mx",
        "tls-rpt",
        "no-mail",
        "ptr",
    ):
        assert check in checks, check
    lookups = report.by_check("spf.lookups")[0]
    assert lookups.detail["count"] == 1


def test_bare_domain_is_checked_from_live_data(world: World) -> None:
    (report,) = world.verify("good.test", bare=True)
    result = statuses(report)
    assert result["mx"] == Status.OK
    assert result["spf.lookups"] == Status.OK
    assert result["mta-sts.txt"] == Status.OK
    assert result["mta-sts.mx"] == Status.OK
    assert result["tls-rpt"] == Status.OK
    assert result["ptr"] == Status.OK
    assert report.status == Status.OK, [f.to_text() for f in report.findings]


def test_spf_over_ten_lookups_is_an_error(world: World) -> None:
    (report,) = world.verify("lookups.test")
    finding = report.by_check("spf.lookups")[0]
    assert finding.status == Status.ERROR
    assert finding.found == "11"


def test_spf_over_two_void_lookups_is_an_error(world: World) -> None:
    (report,) = world.verify("void.test")
    finding = report.by_check("spf.void-lookups")[0]
    assert finding.status == Status.ERROR
    assert finding.found == "3"
    assert report.by_check("spf.lookups")[0].status == Status.OK


def test_spf_mx_with_eleven_hosts_is_an_error(world: World) -> None:
    (report,) = world.verify("manymx.test")
    (finding,) = report.by_check("spf.mx-hosts")
    assert finding.status == Status.ERROR
    assert "11 MX hosts" in (finding.found or "")


def test_spf_include_loop_is_an_error(world: World) -> None:
    (report,) = world.verify("loop.test")
    assert statuses(report)["spf.loop"] == Status.ERROR


def test_drift_is_reported_with_expected_found_and_fix(world: World) -> None:
    (report,) = world.verify("drift.test")
    result = statuses(report)
    assert result["mx"] == Status.ERROR
    assert result["dkim.s1"] == Status.ERROR
    assert result["no-mail"] == Status.WARNING
    assert result["dmarc.syntax"] == Status.ERROR
    assert result["dmarc.report-auth"] == Status.WARNING
    assert result["ptr"] == Status.ERROR
    assert result["mta-sts.policy"] == Status.ERROR
    assert result["mta-sts.mx"] == Status.ERROR
    assert result["spf"] == Status.OK
    (mx,) = report.by_check("mx")
    assert mx.expected == "10 mx1.drift.test."
    assert mx.found == "10 mx9.drift.test."
    assert mx.fix and "10 mx1.drift.test." in mx.fix
    assert mx.why
    dkim = report.by_check("dkim.s1")[0]
    assert dkim.expected != dkim.found
    ptr = report.by_check("ptr")[0]
    assert ptr.found == "wrong-name.example.net."


def test_missing_ptr_is_an_error(world: World) -> None:
    (report,) = world.verify("noptr.test")
    (ptr,) = report.by_check("ptr")
    assert ptr.status == Status.ERROR
    assert "NXDOMAIN" in (ptr.found or "")


def test_policy_with_wrong_content_type_is_an_error(world: World) -> None:
    world.policy.content_type = "text/html"
    try:
        (report,) = world.verify("good.test")
    finally:
        world.policy.content_type = "text/plain"
    (policy,) = report.by_check("mta-sts.policy")
    assert policy.status == Status.ERROR
    assert "text/html" in (policy.found or "")


def test_policy_certificate_for_another_name_is_an_error(world: World) -> None:
    (report,) = world.verify("good.test", ca_file=None)
    (policy,) = report.by_check("mta-sts.policy")
    assert policy.status == Status.ERROR
    assert "certificate" in (policy.found or "")


def test_many_domains_at_once(world: World) -> None:
    names = sorted(world.specs)
    reports = world.verify(*names, concurrency=4)
    assert [r.domain for r in reports] == names
    by_domain = {r.domain: r.status for r in reports}
    assert by_domain["good.test"] == Status.OK
    assert by_domain["drift.test"] == Status.ERROR


def test_timeouts_are_unknown_never_missing(world: World) -> None:
    """A server that never answers: every DNS finding is unknown."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        (report,) = world.verify("good.test", resolver=f"127.0.0.1:{port}", timeout=0.2)
    # The policy itself comes over HTTPS from a fixed address, not from DNS.
    web = ("mta-sts.policy", "mta-sts.mx")
    dns_findings = [f for f in report.findings if f.check not in web]
    assert dns_findings
    assert {f.status for f in dns_findings} == {Status.UNKNOWN}
    assert all("NXDOMAIN" not in (f.found or "") for f in dns_findings)
