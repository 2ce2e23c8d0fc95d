"""verify's port and TLS checks against real Postfix and Dovecot.

Postfix offers STARTTLS (25, 587 stand-ins) and implicit TLS (465 stand-in),
Dovecot implicit TLS for IMAP and POP3 (993, 995 stand-ins). The test CA
issued one valid, one expired and one wrong-name certificate.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mailbridge.cli.main import main
from mailbridge.spec.models import DomainSpec
from mailbridge.verify import Finding, Report, Status, VerifyOptions
from mailbridge.verify.options import SERVICES
from mailbridge.verify.runner import Subject, verify_many
from mailbridge.verify.tls import Target, check_service
from tests.servers import dovecot as dovecot_server
from tests.servers.common import free_port, remove_dir, server_dir
from tests.servers.dovecot import DovecotServer
from tests.verify.certs import Leaf, TestCA
from tests.verify.mailhost import MailHost, running_mail_host
from tests.verify.zones import make_spec, spec_data

pytestmark = pytest.mark.servers


def _dovecot(leaf: Leaf, ca: Path) -> DovecotServer:
    root = server_dir("mailbridge-verify-dovecot")
    for source in (leaf.cert, leaf.key):
        shutil.copy(source, root / source.name)
    os.chmod(root / leaf.key.name, 0o600)
    certs = dovecot_server.TestCertificates(
        ca_file=ca,
        cert_file=root / leaf.cert.name,
        key_file=root / leaf.key.name,
        fingerprint="",
    )
    server = DovecotServer(root=root, certs=certs)
    server.start()
    return server


@pytest.fixture(scope="module")
def postfix(ca_leaves: dict[str, Leaf]) -> Iterator[MailHost]:
    aliases = {"sales@good.test": "owner@gmail.com"}
    with running_mail_host("mx1.good.test", "good.test", aliases, ca_leaves) as host:
        yield host


@pytest.fixture(scope="module")
def dovecots(
    ca_leaves: dict[str, Leaf], test_ca: TestCA
) -> Iterator[dict[str, DovecotServer]]:
    servers: dict[str, DovecotServer] = {}
    try:
        for label in ("valid", "wrongname"):
            servers[label] = _dovecot(ca_leaves[label], test_ca.path)
        yield servers
    finally:
        for server in servers.values():
            server.stop()
            remove_dir(server.root)


def _run(spec: DomainSpec, **values: object) -> Report:
    options = VerifyOptions.model_validate(
        {"check_dns": False, "host_address": "127.0.0.1", **values}
    )
    (report,) = asyncio.run(verify_many([Subject(spec.domain, spec)], options))
    return report


def _ports(postfix: MailHost, dovecot: DovecotServer, **extra: int) -> dict[str, int]:
    ports = {
        "smtp": postfix.listeners["smtp"].port,
        "submissions": postfix.listeners["submissions"].port,
        "submission": postfix.listeners["submission"].port,
        "imaps": dovecot.imaps_port,
        "pop3s": dovecot.pop3s_port,
    }
    ports.update(extra)
    return ports


def _spec(*forwarders: str) -> DomainSpec:
    return make_spec(
        "good.test",
        "203.0.113.10",
        forwarders=[{"address": a, "to": ["owner@gmail.com"]} for a in forwarders],
    )


def _one(report: Report, check: str) -> Status:
    (finding,) = [f for f in report.findings if f.check == check]
    return finding.status


def test_valid_certificates_on_every_port(
    postfix: MailHost, dovecots: dict[str, DovecotServer], test_ca: TestCA
) -> None:
    report = _run(
        _spec("sales@good.test"),
        ports=_ports(postfix, dovecots["valid"]),
        ca_file=test_ca.path,
        latency_target_ms=5000,
    )
    bad = [f.to_text() for f in report.findings if f.status != Status.OK]
    assert not bad, "\n".join(bad) + postfix.log_text()
    for service in ("smtp", "submissions", "submission", "imaps", "pop3s"):
        (port,) = report.by_check(f"port.{service}")
        assert 0 < float(port.detail["latency_ms"]) < 5000
        assert _one(report, f"tls.{service}.name") == Status.OK
        (expiry,) = report.by_check(f"tls.{service}.expiry")
        assert 80 <= int(expiry.detail["days_left"]) <= 90
        (version,) = report.by_check(f"tls.{service}.version")
        assert version.found in ("TLSv1.2", "TLSv1.3")
    (rcpt,) = report.by_check("delivery.rcpt")
    assert rcpt.status == Status.OK and (rcpt.found or "").startswith("250")


def test_latency_over_target_is_a_warning(
    postfix: MailHost, dovecots: dict[str, DovecotServer], test_ca: TestCA
) -> None:
    report = _run(
        _spec(),
        ports=_ports(postfix, dovecots["valid"]),
        ca_file=test_ca.path,
        latency_target_ms=0.001,
        services=("submissions", "imaps"),
    )
    assert _one(report, "port.submissions") == Status.WARNING
    assert _one(report, "port.imaps") == Status.WARNING
    assert _one(report, "tls.imaps.chain") == Status.OK


def test_expired_certificate(
    postfix: MailHost, dovecots: dict[str, DovecotServer], test_ca: TestCA
) -> None:
    report = _run(
        _spec(),
        ports={"smtp": postfix.listeners["smtp-expired"].port},
        services=("smtp",),
        ca_file=test_ca.path,
    )
    (chain,) = report.by_check("tls.smtp.chain")
    assert chain.status == Status.ERROR
    assert "expired" in (chain.found or "")
    (expiry,) = report.by_check("tls.smtp.expiry")
    assert expiry.status == Status.ERROR
    assert int(expiry.detail["days_left"]) < 0
    assert _one(report, "tls.smtp.name") == Status.OK


def test_certificate_for_the_wrong_name(
    postfix: MailHost, dovecots: dict[str, DovecotServer], test_ca: TestCA
) -> None:
    report = _run(
        _spec(),
        ports=_ports(
            postfix,
            dovecots["wrongname"],
            smtp=postfix.listeners["smtp-wrongname"].port,
        ),
        services=("smtp", "imaps", "pop3s"),
        ca_file=test_ca.path,
    )
    for service in ("smtp", "imaps", "pop3s"):
        (name,) = report.by_check(f"tls.{service}.name")
        assert name.status == Status.ERROR
        assert name.found == "other-host.example.net"
        assert name.expected == "mx1.good.test"
        assert _one(report, f"tls.{service}.chain") == Status.OK


def test_untrusted_ca(postfix: MailHost, dovecots: dict[str, DovecotServer]) -> None:
    report = _run(
        _spec(),
        ports=_ports(postfix, dovecots["valid"]),
        services=("submissions", "pop3s"),
    )
    for service in ("submissions", "pop3s"):
        (chain,) = report.by_check(f"tls.{service}.chain")
        assert chain.status == Status.ERROR
        assert "issuer" in (chain.found or "")
        assert chain.fix


def test_closed_port_is_an_error(
    postfix: MailHost, dovecots: dict[str, DovecotServer], test_ca: TestCA
) -> None:
    report = _run(
        _spec(),
        ports={"pop3s": free_port(), "submission": dovecots["valid"].imap_port},
        services=("pop3s", "submission"),
        ca_file=test_ca.path,
        timeout=2.0,
    )
    (pop3s,) = report.by_check("port.pop3s")
    assert pop3s.status == Status.ERROR
    assert pop3s.found == "connection refused: nothing listens on the port"
    assert pop3s.expected == "a POP3 greeting and implicit TLS"
    (wrong,) = report.by_check("port.submission")
    assert wrong.status == Status.ERROR
    assert "greeting" in (wrong.found or "")
    assert wrong.expected == "an SMTP greeting and STARTTLS"


def test_unknown_recipient_fails_delivery(
    postfix: MailHost, dovecots: dict[str, DovecotServer], test_ca: TestCA
) -> None:
    report = _run(
        _spec("sales@good.test", "nobody@good.test"),
        ports=_ports(postfix, dovecots["valid"]),
        services=("smtp",),
        ca_file=test_ca.path,
    )
    rcpts = {
        f.subject.rsplit("<", 1)[1].rstrip(">"): f for f in report.by_check("delivery")
    }
    assert rcpts["sales@good.test"].status == Status.OK
    nobody = rcpts["nobody@good.test"]
    assert nobody.status == Status.ERROR
    assert (nobody.found or "").startswith("550")


def test_cli_dials_the_overridden_address_and_ports(
    postfix: MailHost,
    dovecots: dict[str, DovecotServer],
    test_ca: TestCA,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = tmp_path / "good.test.yaml"
    spec.write_text(yaml.safe_dump(spec_data("good.test", "203.0.113.10")))
    ports = _ports(postfix, dovecots["valid"])
    argv = [
        "verify",
        str(spec),
        "--no-dns",
        "--host-address",
        "127.0.0.1",
        "--ports",
        ",".join(f"{name}={port}" for name, port in ports.items()),
        "--ca-file",
        str(test_ca.path),
        "--json",
    ]
    code = 0
    try:
        main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    data = json.loads(capsys.readouterr().out)
    findings = data["domains"][0]["findings"]
    subjects = {f["subject"] for f in findings if f["check"] == "port.imaps"}
    assert subjects == {f"mx1.good.test:{ports['imaps']} (imaps, 127.0.0.1)"}
    chain = [f for f in findings if f["check"].endswith(".chain")]
    assert len(chain) == 5 and all(f["status"] == "ok" for f in chain)
    # The default `sales@good.test` forwarder is accepted, so no errors.
    assert code == 0, findings


def test_domains_on_one_host_share_its_dials(
    postfix: MailHost, dovecots: dict[str, DovecotServer], test_ca: TestCA
) -> None:
    """Same host, two domains: one dial per port (the same measured latency),
    but each domain's own RCPT check."""
    specs = [
        make_spec(
            domain,
            "203.0.113.10",
            mail_host={"hostname": "mx1.good.test", "ipv4": ["203.0.113.10"]},
            forwarders=[{"address": f"sales@{domain}", "to": ["owner@gmail.com"]}],
        )
        for domain in ("good.test", "second.test")
    ]
    options = VerifyOptions(
        check_dns=False,
        host_address="127.0.0.1",
        ports=_ports(postfix, dovecots["valid"]),
        services=("smtp", "imaps"),
        ca_file=test_ca.path,
    )
    first, second = asyncio.run(
        verify_many([Subject(s.domain, s) for s in specs], options)
    )
    (imaps_a,) = first.by_check("port.imaps")
    (imaps_b,) = second.by_check("port.imaps")
    assert imaps_a.detail["latency_ms"] == imaps_b.detail["latency_ms"]
    (rcpt_a,) = first.by_check("delivery.rcpt")
    (rcpt_b,) = second.by_check("delivery.rcpt")
    assert rcpt_a.status == Status.OK
    # second.test is not a domain of this Postfix: relaying is refused.
    assert rcpt_b.status == Status.ERROR
    assert "sales@second.test" in rcpt_b.subject


def _greeter_findings(context: ssl.SSLContext, test_ca: TestCA) -> dict[str, Finding]:
    """verify's findings for a tiny POP3 greeter speaking TLS with `context`.

    Postfix and Dovecot here refuse to be configured with outdated TLS, so a
    Python server plays the outdated host.
    """

    async def scenario() -> list[Finding]:
        async def greet(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            writer.write(b"+OK old server\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        target = Target("mx1.good.test", "127.0.0.1", 5.0, test_ca.path, 2000, 21)
        try:
            return await check_service(SERVICES["pop3s"], port, target)
        finally:
            server.close()
            await server.wait_closed()

    return {f.check: f for f in asyncio.run(scenario())}


def _server_context(leaf: Leaf) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.cert, leaf.key)
    return context


def test_server_with_only_tls_1_1_is_named(
    ca_leaves: dict[str, Leaf], test_ca: TestCA
) -> None:
    """A greeter that speaks nothing newer than TLS 1.1."""
    context = _server_context(ca_leaves["valid"])
    with warnings.catch_warnings():
        # Naming the retired versions is deprecated; this server must.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    findings = _greeter_findings(context, test_ca)
    assert findings["tls.pop3s.version"].status == Status.ERROR
    assert findings["tls.pop3s.version"].found == "TLSv1.1"
    assert findings["tls.pop3s.chain"].status == Status.OK


def test_tls_1_2_with_only_weak_ciphers_is_an_error(
    ca_leaves: dict[str, Leaf], test_ca: TestCA
) -> None:
    """A greeter that speaks TLS 1.2 but offers only a cipher with SHA-1,
    which secure clients refuse: the version alone being new enough is not
    ok."""
    context = _server_context(ca_leaves["valid"])
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    version = _greeter_findings(context, test_ca)["tls.pop3s.version"]
    assert version.status == Status.ERROR, version
    assert version.found is not None
    assert version.found.startswith("TLSv1.2, but only with settings secure clients")
    assert version.fix and "ECDHE" in version.fix
