"""MTA-STS (RFC 8461): the TXT record, the policy over HTTPS, its mx patterns."""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from mailbridge.verify.findings import Finding, Status
from mailbridge.verify.lookup import Resolver
from mailbridge.verify.tags import parse_tags
from mailbridge.verify.tls import close_quietly

log = logging.getLogger(__name__)

POLICY_PATH = "/.well-known/mta-sts.txt"
# RFC 8461 section 3.3: senders should not accept policies over 64 KiB.
MAX_POLICY_BYTES = 64 * 1024


class FetchError(Exception):
    """The policy could not be fetched; `unknown` for timeouts."""

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


class Mode(enum.StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class Policy:
    version: str | None = None
    mode: str | None = None
    mx: tuple[str, ...] = ()
    max_age: int | None = None
    errors: tuple[str, ...] = field(default=())


def parse_policy(text: str) -> Policy:
    """Parse `key: value` lines (RFC 8461 section 3.2); collect every error."""
    values: dict[str, str] = {}
    mx: list[str] = []
    errors: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            errors.append(f"line {line!r} is not `key: value`")
            continue
        key, value = key.strip(), value.strip()
        if key == "mx":
            mx.append(value.lower().rstrip("."))
        else:
            values[key] = value
    version = values.get("version")
    if version != "STSv1":
        errors.append(f"version is {version!r}, not STSv1")
    mode = values.get("mode")
    if mode not in set(Mode):
        errors.append(f"mode is {mode!r}, not enforce, testing or none")
    max_age: int | None = None
    age = values.get("max_age", "")
    if re.fullmatch("[0-9]{1,10}", age) and int(age) <= 31557600:
        max_age = int(age)
    else:
        errors.append(f"max_age is {age!r}, not 0 to 31557600 seconds")
    if not mx and mode != Mode.NONE:
        errors.append("no mx: lines")
    return Policy(version, mode, tuple(mx), max_age, tuple(errors))


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 section 4.1: `*.example.com` stands for exactly one label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


async def fetch_policy(
    domain: str,
    address: str,
    port: int,
    *,
    ca_file: Path | None,
    timeout: float,
) -> str:
    """GET the policy from `address:port`, verifying TLS for mta-sts.<domain>."""
    host = f"mta-sts.{domain}"
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port), timeout
        )
    except TimeoutError as err:
        raise FetchError(f"{address}:{port} did not answer", unknown=True) from err
    except OSError as err:
        raise FetchError(f"cannot connect to {address}:{port}: {err}") from err
    try:
        await asyncio.wait_for(writer.start_tls(context, server_hostname=host), timeout)
        request = (
            f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {host}\r\n"
            "User-Agent: mailbridge-verify\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("ascii"))
        await writer.drain()
        raw = await asyncio.wait_for(_read_all(reader), timeout)
    except TimeoutError as err:
        raise FetchError(f"{host} sent no policy in time", unknown=True) from err
    except ssl.SSLCertVerificationError as err:
        raise FetchError(f"certificate of {host}: {err.verify_message}") from err
    except (OSError, ssl.SSLError) as err:
        raise FetchError(f"HTTPS to {host} failed: {err}") from err
    finally:
        await close_quietly(writer)
    return _http_body(raw, host)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """The whole response (the server closes), cut off past the size limit."""
    data = bytearray()
    while len(data) <= MAX_POLICY_BYTES + 8192:
        chunk = await reader.read(16384)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _http_body(raw: bytes, host: str) -> str:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise FetchError(f"{host} sent no HTTP response")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split()
    if len(status) < 2 or status[1] != "200":
        # RFC 8461 section 3.3: redirects are not followed.
        raise FetchError(f"{host}{POLICY_PATH} answered {lines[0]!r}, not 200")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    if not headers.get("content-type", "").startswith("text/plain"):
        raise FetchError(
            f"{host}{POLICY_PATH} is {headers.get('content-type')!r}, not text/plain"
        )
    return body.decode("utf-8", errors="replace")


def _unchunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_text, _, body = body.partition(b"\r\n")
        digits = size_text.split(b";")[0].strip() or b"0"
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", digits):
            raise FetchError(f"the policy's chunked body is broken: {digits[:20]!r}")
        size = int(digits, 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return bytes(out)


async def check_mta_sts(
    resolver: Resolver,
    domain: str,
    mx_hosts: list[str],
    *,
    expected_policy: str | None,
    address: str | None,
    port: int,
    ca_file: Path | None,
    timeout: float,
    check_txt: bool,
) -> list[Finding]:
    """The TXT record (when `check_txt`), the served policy, its mx coverage."""
    findings: list[Finding] = []
    if check_txt:
        txt = await _check_txt(resolver, domain)
        if txt is None:
            return []
        findings.append(txt)
        if txt.status == Status.UNKNOWN:
            # No answer: whether the domain uses MTA-STS at all is unknown, so
            # a policy that cannot be fetched says nothing either.
            return findings
    host = f"mta-sts.{domain}"
    subject = f"https://{host}{POLICY_PATH}"
    why = "senders that know MTA-STS deliver only over TLS to the listed MX hosts"
    if address is None:
        lookup = await resolver.query(host, "A")
        if not lookup.values and not lookup.outcome.is_unknown:
            # A policy host may have IPv6 only.
            lookup = await resolver.query(host, "AAAA")
        if not lookup.values:
            status = Status.UNKNOWN if lookup.outcome.is_unknown else Status.ERROR
            findings.append(
                Finding(
                    check="mta-sts.policy",
                    subject=subject,
                    status=status,
                    expected=f"an address for {host}",
                    found=lookup.describe(),
                    why=why,
                    fix=f"publish an A or AAAA record for {host} at the policy "
                    "web host",
                )
            )
            return findings
        address = lookup.values[0]
    try:
        text = await fetch_policy(
            domain, address, port, ca_file=ca_file, timeout=timeout
        )
    except FetchError as err:
        log.debug("mta-sts domain=%s fetch failed: %s", domain, err)
        findings.append(
            Finding(
                check="mta-sts.policy",
                subject=subject,
                status=Status.UNKNOWN if err.unknown else Status.ERROR,
                expected="the policy over HTTPS with a valid certificate",
                found=str(err),
                why=why + "; a policy that cannot be fetched is ignored",
                fix=f"serve the policy at {subject} with a certificate for {host}",
            )
        )
        return findings
    findings.append(_policy_finding(subject, text, expected_policy, why))
    findings.extend(_coverage(subject, parse_policy(text), mx_hosts))
    return findings


async def _check_txt(resolver: Resolver, domain: str) -> Finding | None:
    """Without a spec: the TXT record, if any (None: no MTA-STS at all)."""
    name = f"_mta-sts.{domain}"
    lookup = await resolver.query(name, "TXT")
    if lookup.outcome.is_void:
        return None
    records = [v for v in lookup.values if v.replace(" ", "").startswith("v=STSv1")]
    tags = parse_tags(records[0]) if len(records) == 1 else None
    ident = (tags or {}).get("id", "")
    ok = re.fullmatch("[A-Za-z0-9]{1,32}", ident) is not None
    status = Status.UNKNOWN if lookup.outcome.is_unknown else Status.ERROR
    return Finding(
        check="mta-sts.txt",
        subject=f"{name} TXT",
        status=Status.OK if ok else status,
        expected="one `v=STSv1; id=<1-32 letters or digits>`",
        found=lookup.describe(),
        why="senders fetch the policy again only when the id changes",
        fix=None if ok else "publish one record with a new id",
    )


def _policy_finding(subject: str, text: str, expected: str | None, why: str) -> Finding:
    policy = parse_policy(text)
    if policy.errors:
        return Finding(
            check="mta-sts.policy",
            subject=subject,
            status=Status.ERROR,
            expected="a valid STSv1 policy (RFC 8461 section 3.2)",
            found="; ".join(policy.errors),
            why=why,
            fix="serve the policy that `mailbridge records SPEC --json` prints",
        )
    if expected is not None and parse_policy(expected) != policy:
        return Finding(
            check="mta-sts.policy",
            subject=subject,
            status=Status.ERROR,
            expected=expected.replace("\r\n", " | ").strip(" |"),
            found=text.replace("\r\n", " | ").replace("\n", " | ").strip(" |"),
            why=why + "; the served policy differs from the spec",
            fix="deploy again (`pulumi up`): the policy file and the _mta-sts "
            "id are both built from the spec",
        )
    return Finding(
        check="mta-sts.policy",
        subject=subject,
        status=Status.OK,
        found=f"mode {policy.mode}, mx {', '.join(policy.mx)}",
    )


def _coverage(subject: str, policy: Policy, mx_hosts: list[str]) -> list[Finding]:
    findings = []
    for host in mx_hosts:
        covered = any(mx_matches(p, host) for p in policy.mx)
        bad = Status.ERROR if policy.mode == Mode.ENFORCE else Status.WARNING
        findings.append(
            Finding(
                check="mta-sts.mx",
                subject=f"{subject} mx {host}",
                status=Status.OK if covered else bad,
                expected=f"a pattern matching {host}",
                found=", ".join(policy.mx) or "no mx lines",
                why="senders refuse to deliver to an MX the policy does not list",
                fix=None if covered else f"add `mx: {host}` to the policy",
            )
        )
    return findings
