"""Run every check for many domains at once and collect one report each."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailbridge.dns.dkim import load_keys
from mailbridge.dns.policy import mta_sts_policy
from mailbridge.dns.record import Record
from mailbridge.dns.records import build_records, dkim_name
from mailbridge.spec.models import DomainSpec
from mailbridge.verify import dnscheck
from mailbridge.verify.deployed import DeployedKeys
from mailbridge.verify.findings import Finding, Report, Status
from mailbridge.verify.lookup import Resolver
from mailbridge.verify.mta_sts import check_mta_sts
from mailbridge.verify.options import SERVICES, Service, VerifyOptions
from mailbridge.verify.tags import parse_tags
from mailbridge.verify.tls import Target, check_service

log = logging.getLogger(__name__)

# RCPT TO checks per domain: enough to see the maps work, few enough to be polite.
MAX_RECIPIENTS = 5


@dataclass(frozen=True)
class Subject:
    """One domain to verify: with its spec and expected records, or bare."""

    domain: str
    spec: DomainSpec | None = None
    records: tuple[Record, ...] = field(default=())

    @classmethod
    def from_spec(
        cls,
        spec: DomainSpec,
        keys_dir: Path | None,
        deployed: DeployedKeys | None = None,
    ) -> Subject:
        """Expected records built the way a deploy builds them.

        `keys_dir` holds the deployed DKIM keys; `deployed` (a stack's
        outputs) wins over it, and its retired selectors are not expected
        in DNS. Without a key from either, the live DKIM record is checked
        for a key, not compared.
        """
        keys = load_keys(keys_dir, spec) if keys_dir and keys_dir.is_dir() else {}
        retired: frozenset[str] = frozenset()
        if deployed is not None:
            keys.update(deployed.values)
            retired = deployed.retired
        gone = {dkim_name(name, spec.domain) for name in retired}
        records = [
            r
            for r in build_records(spec, keys, keys_dir=keys_dir)
            if r.name not in gone
        ]
        return cls(spec.domain, spec, tuple(records))


async def verify_many(
    subjects: Sequence[Subject],
    options: VerifyOptions,
    *,
    on_done: Callable[[Report], None] | None = None,
) -> list[Report]:
    """Reports in the order of `subjects`; at most `concurrency` at once."""
    resolver = Resolver(options.resolver_address(), options.timeout)
    dials = Dials()
    gate = asyncio.Semaphore(options.concurrency)

    async def one(subject: Subject) -> Report:
        async with gate:
            report = await verify_one(resolver, subject, options, dials)
        if on_done is not None:
            on_done(report)
        return report

    reports = await asyncio.gather(*(one(s) for s in subjects))
    log.info("verify domains=%d queries=%d", len(subjects), resolver.queries)
    return list(reports)


class Dials:
    """Port checks shared by the domains of one mail host within a run.

    Fifty domains on one host need its ports dialled once, not fifty times:
    the findings are the same, and the host is spared. Only the RCPT check
    of port 25 differs per domain, so that dial is never shared.
    """

    def __init__(self) -> None:
        self._done: dict[tuple[str, str, str, int], asyncio.Future[list[Finding]]] = {}

    async def check(self, service: Service, port: int, target: Target) -> list[Finding]:
        if target.recipients and service.name == "smtp":
            return await check_service(service, port, target)
        key = (target.hostname, target.address, service.name, port)
        pending = self._done.get(key)
        if pending is None:
            pending = asyncio.ensure_future(check_service(service, port, target))
            self._done[key] = pending
        return list(await asyncio.shield(pending))


async def verify_one(
    resolver: Resolver,
    subject: Subject,
    options: VerifyOptions,
    dials: Dials | None = None,
) -> Report:
    report = Report(domain=subject.domain)
    spec = subject.spec
    mx_hosts: list[str] = [m.host for m in spec.mx_hosts] if spec else []
    if spec is None and (options.check_dns or options.check_tls):
        mx_finding, mx_hosts = await dnscheck.check_mx(resolver, subject.domain)
        if options.check_dns:
            report.findings.append(mx_finding)
    if options.check_dns:
        report.findings.extend(await _dns(resolver, subject, mx_hosts, options))
    if options.check_tls:
        shared = dials if dials is not None else Dials()
        report.findings.extend(await _tls(resolver, subject, mx_hosts, options, shared))
    return report


async def _dns(
    resolver: Resolver, subject: Subject, mx_hosts: list[str], options: VerifyOptions
) -> list[Finding]:
    domain, spec = subject.domain, subject.spec
    findings: list[Finding] = []
    if spec is not None:
        no_mail = list(spec.no_mail)
        findings.extend(
            await dnscheck.check_records(resolver, domain, subject.records, no_mail)
        )
    findings.extend(await dnscheck.check_spf(resolver, domain, report_missing=not spec))
    findings.extend(await dnscheck.check_dmarc(resolver, domain))
    if spec is None or spec.mta_sts is not None:
        findings.extend(
            await check_mta_sts(
                resolver,
                domain,
                mx_hosts,
                expected_policy=mta_sts_policy(spec) if spec else None,
                address=options.mta_sts_address,
                port=options.mta_sts_port,
                ca_file=options.ca_file,
                timeout=options.timeout,
                check_txt=spec is None,
            )
        )
    if spec is None:
        findings.extend(await _tls_rpt(resolver, domain))
    hostname, addresses = await _mail_host(resolver, subject, mx_hosts)
    if hostname and addresses:
        findings.extend(await dnscheck.check_ptr(resolver, hostname, addresses))
    return findings


async def _mail_host(
    resolver: Resolver, subject: Subject, mx_hosts: list[str]
) -> tuple[str | None, list[str]]:
    """The mail host's name and public addresses.

    From the spec; looked up when the spec lists none; for a bare domain,
    those of its first MX host.
    """
    if subject.spec is not None:
        host = subject.spec.mail_host
        addresses = [*host.ipv4, *host.ipv6]
        if addresses:
            return host.hostname, addresses
        name = host.hostname
    elif mx_hosts:
        name = mx_hosts[0]
    else:
        return None, []
    a, aaaa = await resolver.addresses(name)
    return name, [*a.values, *aaaa.values]


async def _tls_rpt(resolver: Resolver, domain: str) -> list[Finding]:
    """Without a spec: a TLS-RPT record, if any, must be valid."""
    name = f"_smtp._tls.{domain}"
    lookup = await resolver.query(name, "TXT")
    why = "senders report failed TLS to the MX only to a published address"
    if lookup.outcome.is_unknown:
        status, ok = Status.UNKNOWN, False
    else:
        tags = [parse_tags(v) or {} for v in lookup.values]
        records = [t for t in tags if t.get("v") == "TLSRPTv1"]
        ok = len(records) == 1 and bool(records[0].get("rua"))
        status = Status.OK if ok else Status.WARNING
    return [
        Finding(
            check="tls-rpt",
            subject=f"{name} TXT",
            status=status,
            expected='one "v=TLSRPTv1; rua=mailto:..."',
            found=lookup.describe(),
            why=why,
            fix=None
            if ok
            else f'publish `{name}. IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"`',
        )
    ]


async def _tls(
    resolver: Resolver,
    subject: Subject,
    mx_hosts: list[str],
    options: VerifyOptions,
    dials: Dials,
) -> list[Finding]:
    hostname, addresses = await _mail_host(resolver, subject, mx_hosts)
    address = options.host_address or (addresses[0] if addresses else None)
    if hostname is None or address is None:
        return [
            Finding(
                check="port",
                subject=hostname or subject.domain,
                status=Status.UNKNOWN,
                expected="an address of the mail host",
                found="no address to dial",
                why="ports and certificates can only be checked on a known address",
                fix="publish the mail host's A/AAAA records or pass --host-address",
            )
        ]
    target = Target(
        hostname=hostname,
        address=address,
        timeout=options.timeout,
        ca_file=options.ca_file,
        latency_target_ms=options.latency_target_ms,
        expiry_warning_days=options.expiry_warning_days,
        recipients=_recipients(subject.spec) if options.check_delivery else (),
    )
    findings: list[Finding] = []
    # One service after another, so that each latency is measured alone.
    for name in options.services:
        service = SERVICES[name]
        findings.extend(await dials.check(service, options.port_of(name), target))
    return findings


def _recipients(spec: DomainSpec | None) -> tuple[str, ...]:
    if spec is None:
        return ()
    addresses = [f.address for f in spec.forwarders if not f.is_catch_all]
    addresses += [m.address for m in spec.mailboxes]
    return tuple(dict.fromkeys(addresses))[:MAX_RECIPIENTS]
