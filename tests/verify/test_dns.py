"""verify's DNS checks against a real Knot serving good and broken zones."""

from __future__ import annotations

import socket

import pytest

from mailbridge.verify import Report, Status
from tests.verify.world import World

pytestmark = pytest.mark.servers


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
    assert result["mta-sts"] == Status.WARNING
    (sts,) = [
        f for f in report.by_check("mta-sts") if f.subject.startswith("_mta-sts.")
    ]
    assert sts.status == Status.WARNING
    assert "id=stale1" in (sts.found or "") and "id=stale1" not in sts.expected
    assert result["tls-rpt"] == Status.WARNING
    (rpt,) = report.by_check("tls-rpt")
    assert "reports@elsewhere.example" in (rpt.found or "")
    assert "tlsrpt@example.net" in rpt.expected


def test_spf_redirect_is_followed_and_counted(world: World) -> None:
    """`redirect=` costs a lookup and brings the other record's ten."""
    (report,) = world.verify("redirect.test")
    lookups = report.by_check("spf.lookups")[0]
    assert lookups.status == Status.ERROR
    assert lookups.found == "11"


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
    # Each still says what came back, why it matters and what to do.
    assert all(f.found and f.why and f.fix for f in dns_findings)
    assert all("timed out" in (f.found or "") for f in dns_findings)


def test_bare_domain_without_mail_records(world: World) -> None:
    (report,) = world.verify("empty.test", bare=True)
    result = statuses(report)
    assert result["mx"] == Status.ERROR
    assert result["spf.no-record"] == Status.ERROR
    assert result["dmarc.syntax"] == Status.ERROR
    assert result["tls-rpt"] == Status.WARNING
    assert "mta-sts.txt" not in result  # no MTA-STS at all is not a fault
    (mx,) = report.by_check("mx")
    assert mx.fix and "IN MX" in mx.fix


def test_bare_domain_timeouts_never_become_mta_sts_errors(world: World) -> None:
    """Whether a domain uses MTA-STS is unknown when its TXT got no answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        (report,) = world.verify(
            "empty.test", bare=True, resolver=f"127.0.0.1:{port}", timeout=0.2
        )
    assert report.findings
    assert {f.status for f in report.findings} == {Status.UNKNOWN}, [
        (f.check, f.status, f.found) for f in report.findings
    ]
    assert not report.by_check("mta-sts.policy")
