"""TLS and port checks of the mail host: reachability, certificate, latency.

Each service is dialled once with certificate verification on (host name
checked separately, so that a wrong name and a bad chain are told apart).
Only when verification fails is it dialled again without, to read the
certificate's names and dates for the finding; only when the handshake
fails is it dialled again accepting TLS 1.0 and 1.1, to name the version.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from mailbridge.verify.findings import Finding, Status
from mailbridge.verify.options import Protocol, Service

log = logging.getLogger(__name__)

_LINE_LIMIT = 64 * 1024


class ProbeError(Exception):
    """The dial or the protocol exchange failed before TLS was up."""


@dataclass(frozen=True)
class Probe:
    """What one dial of a service saw."""

    latency_ms: float
    tls_version: str | None
    certificate: x509.Certificate | None
    verify_error: str | None
    smtp_replies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """The mail host as verify dials it."""

    hostname: str
    address: str
    timeout: float
    ca_file: Path | None
    latency_target_ms: float
    expiry_warning_days: int
    recipients: tuple[str, ...] = ()


def _context(ca_file: Path | None, verify: bool, legacy: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    # The name is checked by `name_matches`, so a mismatch is its own finding.
    context.check_hostname = False
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    if legacy:
        # Only to name what an old server speaks: TLS 1.0 and 1.1 are
        # retired (RFC 8996) and reported as errors, never relied on.
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _read_reply(reader: asyncio.StreamReader, protocol: Protocol) -> str:
    """One server reply: SMTP's multi-line `250-...250 `, else one line."""
    lines = []
    while True:
        raw = await reader.readline()
        if not raw:
            raise ProbeError("the server closed the connection")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        lines.append(line)
        if protocol != Protocol.SMTP or len(line) < 4 or line[3] != "-":
            return "\n".join(lines)


def _check_banner(protocol: Protocol, banner: str) -> None:
    good = {Protocol.SMTP: "220", Protocol.IMAP: "* OK", Protocol.POP3: "+OK"}
    if not banner.startswith(good[protocol]):
        raise ProbeError(f"unexpected greeting {banner.splitlines()[0]!r}")


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str
) -> str:
    writer.write(line.encode("ascii") + b"\r\n")
    await writer.drain()
    return await _read_reply(reader, Protocol.SMTP)


async def probe(
    service: Service,
    address: str,
    port: int,
    hostname: str,
    *,
    ca_file: Path | None,
    verify: bool,
    timeout: float,
    recipients: Sequence[str] = (),
    legacy: bool = False,
) -> Probe:
    """Dial, read the banner, start TLS; raise ProbeError or TimeoutError."""
    context = _context(ca_file, verify, legacy)
    return await asyncio.wait_for(
        _probe(service, address, port, hostname, context, recipients),
        timeout,
    )


async def _probe(
    service: Service,
    address: str,
    port: int,
    hostname: str,
    context: ssl.SSLContext,
    recipients: Sequence[str],
) -> Probe:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(address, port, limit=_LINE_LIMIT)
    try:
        if not service.starttls:
            # TLS is started on the open stream (not by open_connection) so
            # that a failed handshake still leaves a writer to close here.
            await writer.start_tls(context, server_hostname=hostname)
        banner = await _read_reply(reader, service.protocol)
        latency = (time.perf_counter() - started) * 1000
        _check_banner(service.protocol, banner)
        if service.starttls:
            await _starttls(reader, writer, context, hostname)
        tls = writer.get_extra_info("ssl_object")
        replies: tuple[str, ...] = ()
        if service.protocol == Protocol.SMTP and recipients:
            replies = await _rcpt(reader, writer, recipients)
        der = tls.getpeercert(binary_form=True) if tls else None
        return Probe(
            latency_ms=latency,
            tls_version=tls.version() if tls else None,
            certificate=x509.load_der_x509_certificate(der) if der else None,
            verify_error=None,
            smtp_replies=replies,
        )
    finally:
        await close_quietly(writer)


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close and wait briefly: a peer may never answer TLS close_notify."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, ssl.SSLError, TimeoutError) as err:
        log.debug("close: %s", err)


async def _starttls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    hostname: str,
) -> None:
    ehlo = await _command(reader, writer, "EHLO verify.mailbridge.invalid")
    if not ehlo.startswith("250"):
        raise ProbeError(f"EHLO refused: {ehlo.splitlines()[0]!r}")
    offered = any(line[4:].upper().startswith("STARTTLS") for line in ehlo.splitlines())
    if not offered:
        raise ProbeError("STARTTLS is not offered after EHLO")
    reply = await _command(reader, writer, "STARTTLS")
    if not reply.startswith("220"):
        raise ProbeError(f"STARTTLS refused: {reply!r}")
    await writer.start_tls(context, server_hostname=hostname)


async def _rcpt(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    recipients: Sequence[str],
) -> tuple[str, ...]:
    """RCPT TO each address, then RSET: nothing is sent (no DATA)."""
    await _command(reader, writer, "EHLO verify.mailbridge.invalid")
    await _command(reader, writer, "MAIL FROM:<>")
    replies = []
    for address in recipients:
        replies.append(await _command(reader, writer, f"RCPT TO:<{address}>"))
    await _command(reader, writer, "RSET")
    writer.write(b"QUIT\r\n")
    return tuple(replies)


def name_matches(certificate: x509.Certificate, hostname: str) -> bool:
    """RFC 6125: a DNS name of the SAN, `*` only as the whole leftmost label."""
    try:
        san = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [
            str(a.value)
            for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    host = hostname.lower().rstrip(".")
    for name in (n.lower().rstrip(".") for n in names):
        if name == host:
            return True
        if name.startswith("*.") and host.partition(".")[2] == name[2:]:
            return True
    return False


def _names(certificate: x509.Certificate) -> str:
    try:
        san = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        return ", ".join(san.get_values_for_type(x509.DNSName)) or "no DNS names"
    except x509.ExtensionNotFound:
        return certificate.subject.rfc4514_string()


async def check_service(service: Service, port: int, target: Target) -> list[Finding]:
    """Every finding for one service of the mail host."""
    subject = f"{target.hostname}:{port} ({service.name}, {_show(target.address)})"
    strict_error: str | None = None
    try:
        seen = await _dial(service, port, target, legacy=False)
    except (ssl.SSLError, ConnectionResetError) as err:
        # Perhaps the server speaks only TLS older than 1.2: dial again
        # accepting that, so the finding can say which version it was.
        try:
            seen = await _dial(service, port, target, legacy=True)
        except (TimeoutError, OSError, ssl.SSLError, ProbeError):
            return [_dial_failure(service, port, subject, target, err)]
        strict_error = str(err) or type(err).__name__
    except (TimeoutError, OSError, ProbeError) as err:
        return [_dial_failure(service, port, subject, target, err)]
    return _assess(service, subject, target, seen, strict_error)


async def _dial(service: Service, port: int, target: Target, *, legacy: bool) -> Probe:
    """Verified first; on a certificate error, again unverified to read it."""
    recipients = target.recipients if service.name == "smtp" else ()

    async def dial(verify: bool) -> Probe:
        return await probe(
            service,
            target.address,
            port,
            target.hostname,
            ca_file=target.ca_file,
            verify=verify,
            timeout=target.timeout,
            recipients=recipients,
            legacy=legacy,
        )

    try:
        return await dial(verify=True)
    except ssl.SSLCertVerificationError as err:
        seen = await dial(verify=False)
        return dataclasses.replace(seen, verify_error=err.verify_message)


def _show(address: str) -> str:
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def _dial_failure(
    service: Service, port: int, subject: str, target: Target, err: BaseException
) -> Finding:
    if isinstance(err, TimeoutError):
        found = f"no answer within {target.timeout:g}s (filtered by a firewall?)"
    elif isinstance(err, ConnectionRefusedError):
        found = "connection refused: nothing listens on the port"
    elif isinstance(err, ssl.SSLError) and "VERSION" in str(err).upper():
        found = f"TLS handshake failed: {err} (only TLS older than 1.2?)"
    else:
        found = f"{type(err).__name__}: {err}"
    log.debug("tls service=%s port=%d failed: %s", service.name, port, found)
    return Finding(
        check=f"port.{service.name}",
        subject=subject,
        status=Status.ERROR,
        expected=_expected_dial(service),
        found=found,
        why=_WHY_PORT[service.name],
        fix=f"make sure the service listens on port {port} and that the "
        "provider and firewall let the port through",
    )


def _expected_dial(service: Service) -> str:
    how = "STARTTLS" if service.starttls else "implicit TLS"
    article = "a" if service.protocol == Protocol.POP3 else "an"
    return f"{article} {service.protocol.upper()} greeting and {how}"


_WHY_PORT = {
    "smtp": "other servers deliver the domain's mail on port 25",
    "submissions": "mail clients and Gmail's 'Send mail as' submit here",
    "submission": "mail clients and Gmail's 'Send mail as' submit here",
    "imaps": "mail clients read the mailboxes here",
    "pop3s": "Gmail's 'Check mail from other accounts' fetches here",
}


def _assess(
    service: Service,
    subject: str,
    target: Target,
    seen: Probe,
    strict_error: str | None = None,
) -> list[Finding]:
    """`strict_error`: why a handshake with today's settings (TLS 1.2 or
    newer, no weak ciphers or keys) failed when a lenient one did not."""
    name = service.name
    slow = seen.latency_ms > target.latency_target_ms
    findings = [
        Finding(
            check=f"port.{name}",
            subject=subject,
            status=Status.WARNING if slow else Status.OK,
            expected=f"banner within {target.latency_target_ms:g} ms",
            found=f"banner after {seen.latency_ms:.1f} ms",
            why=_WHY_PORT[name]
            + "; a slow greeting often means reverse-DNS or anti-spam delays",
            fix="check the server's DNS resolver and greeting delays" if slow else None,
            detail={"latency_ms": round(seen.latency_ms, 2)},
        )
    ]
    cert = seen.certificate
    findings.append(
        Finding(
            check=f"tls.{name}.chain",
            subject=subject,
            status=Status.ERROR if seen.verify_error else Status.OK,
            expected="a chain to a trusted CA",
            found=seen.verify_error or "trusted",
            why="senders and clients refuse or warn about an untrusted certificate",
            fix="install the full chain (leaf and intermediates) from the CA"
            if seen.verify_error
            else None,
        )
    )
    if cert is not None:
        findings.extend(_certificate(name, subject, target, cert))
    modern = seen.tls_version in ("TLSv1.2", "TLSv1.3")
    good = modern and strict_error is None
    found = seen.tls_version or "no TLS"
    fix = None if good else "enable TLS 1.2 and 1.3 in the server"
    if modern and strict_error is not None:
        # The version is new enough, but only weak ciphers, DH groups or
        # keys were offered: a client with secure defaults fails.
        found += f", but only with settings secure clients refuse ({strict_error})"
        fix = "offer ECDHE with AES-GCM or ChaCha20, and keys of 2048 bits or more"
    findings.append(
        Finding(
            check=f"tls.{name}.version",
            subject=subject,
            status=Status.OK if good else Status.ERROR,
            expected="TLS 1.2 or newer, with settings secure clients accept",
            found=found,
            why="TLS 1.0 and 1.1 are retired (RFC 8996); Gmail requires 1.2",
            fix=fix,
        )
    )
    findings.extend(_delivery(subject, target.recipients, seen.smtp_replies))
    return findings


def _certificate(
    name: str, subject: str, target: Target, cert: x509.Certificate
) -> list[Finding]:
    matches = name_matches(cert, target.hostname)
    now = dt.datetime.now(dt.UTC)
    left = cert.not_valid_after_utc - now
    days = left.days if left.total_seconds() >= 0 else -((-left).days + 1)
    if left.total_seconds() < 0 or cert.not_valid_before_utc > now:
        expiry = Status.ERROR
    elif days < target.expiry_warning_days:
        expiry = Status.WARNING
    else:
        expiry = Status.OK
    until = cert.not_valid_after_utc.date().isoformat()
    return [
        Finding(
            check=f"tls.{name}.name",
            subject=subject,
            status=Status.OK if matches else Status.ERROR,
            expected=target.hostname,
            found=_names(cert),
            why="the certificate must name the host that MX and clients use",
            fix=None
            if matches
            else f"issue a certificate that includes {target.hostname}",
        ),
        Finding(
            check=f"tls.{name}.expiry",
            subject=subject,
            status=expiry,
            expected=f"valid for at least {target.expiry_warning_days} more days",
            found=f"{days} days left (until {until})",
            why="an expired certificate breaks STARTTLS under MTA-STS and "
            "every mail client",
            fix=None if expiry == Status.OK else "renew the certificate and reload",
            detail={"days_left": days},
        ),
    ]


def _delivery(
    subject: str, recipients: Sequence[str], replies: Sequence[str]
) -> list[Finding]:
    findings = []
    for address, reply in zip(recipients, replies, strict=False):
        ok = reply.startswith("250")
        findings.append(
            Finding(
                check="delivery.rcpt",
                subject=f"{subject} RCPT TO:<{address}>",
                status=Status.OK if ok else Status.ERROR,
                expected="250 (the address is accepted)",
                found=reply.splitlines()[-1],
                why="mail to an address the host refuses bounces",
                fix=None
                if ok
                else "render and deploy the host again (`pulumi up`) so "
                "its address maps include the address",
            )
        )
    return findings
