"""Every DNS record a domain spec needs, each with its reason and level.

`build_records` is a pure function of the spec and the DKIM public values:
the same input gives the same records in the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

from mailbridge.dns.dkim import placeholder_value
from mailbridge.dns.policy import (
    dmarc_text,
    mta_sts_policy,
    mta_sts_text,
    no_mail_dmarc_text,
    tls_rpt_text,
)
from mailbridge.dns.record import Level, Record, RecordType, absolute
from mailbridge.dns.spf import mail_host_spf_text, no_mail_spf_text, spf_text
from mailbridge.spec.models import DomainSpec, SelectorState

log = logging.getLogger(__name__)

__all__ = ["build_records", "dkim_name", "in_domain", "mta_sts_policy"]

# RFC 6186 and RFC 8314: where mail clients find the mail host's services.
CLIENT_SERVICES: tuple[tuple[str, int, str], ...] = (
    ("_submissions._tcp", 465, "message submission over implicit TLS (RFC 8314)"),
    ("_submission._tcp", 587, "message submission with STARTTLS (RFC 6186)"),
    ("_imaps._tcp", 993, "IMAP over implicit TLS (RFC 6186)"),
    ("_pop3s._tcp", 995, "POP3 over implicit TLS (RFC 6186)"),
)

_SELECTOR_LEVEL = {
    SelectorState.ACTIVE: Level.REQUIRED,
    SelectorState.PUBLISHED: Level.RECOMMENDED,
    SelectorState.RETIRING: Level.RECOMMENDED,
}
_SELECTOR_WHY = {
    SelectorState.ACTIVE: "signs outgoing mail now",
    SelectorState.PUBLISHED: "published ahead of rotation, not signing yet",
    SelectorState.RETIRING: "no longer signs; kept so mail in transit verifies",
}


def in_domain(name: str, domain: str) -> bool:
    """True for the domain itself and every name below it."""
    return name == domain or name.endswith("." + domain)


def dkim_name(selector: str, domain: str) -> str:
    """Owner name of a DKIM key record (RFC 6376 section 3.6.2.1)."""
    return f"{selector}._domainkey.{domain}"


def build_records(
    spec: DomainSpec,
    dkim_public: Mapping[str, str] | None = None,
    *,
    keys_dir: Path | str | None = None,
) -> list[Record]:
    """The complete record set of the domain, in a fixed order.

    `dkim_public` maps selector names to their public TXT values (see
    `mailbridge.dns.dkim.load_keys`); a selector without one gets a
    placeholder record whose reason names `keys_dir`. Raises InputError
    when the SPF record would exceed the DNS lookup limit.
    """
    ttl = spec.dns.ttl
    keys = dict(dkim_public or {})
    where = str(keys_dir) if keys_dir is not None else "the keys folder"
    return [
        *_mx(spec, ttl),
        *_mail_host(spec, ttl),
        *_spf(spec, ttl),
        *_dkim(spec, ttl, keys, where),
        *_dmarc(spec, ttl),
        *_mta_sts(spec, ttl),
        *_tls_rpt(spec, ttl),
        *_client_setup(spec, ttl),
        *_srs(spec, ttl),
        *_no_mail(spec, ttl),
    ]


def _mx(spec: DomainSpec, ttl: int) -> Iterator[Record]:
    hosts = sorted(spec.mx_hosts, key=lambda m: (m.priority, m.host))
    values = tuple(f"{mx.priority} {absolute(mx.host)}" for mx in hosts)
    names = ", ".join(mx.host for mx in hosts)
    yield Record(
        spec.domain,
        RecordType.MX,
        ttl,
        values,
        f"where other servers deliver mail for {spec.domain}: {names}",
        Level.REQUIRED,
    )


def _address_records(
    name: str, spec: DomainSpec, ttl: int, reason: str, level: Level
) -> Iterator[Record]:
    host = spec.mail_host
    if host.ipv4:
        yield Record(name, RecordType.A, ttl, tuple(host.ipv4), reason, level)
    if host.ipv6:
        yield Record(name, RecordType.AAAA, ttl, tuple(host.ipv6), reason, level)


def _mail_host(spec: DomainSpec, ttl: int) -> Iterator[Record]:
    name = spec.mail_host.hostname
    if not in_domain(name, spec.domain):
        return
    reason = f"address of the mail host {name} (MX target, TLS name, PTR match)"
    yield from _address_records(name, spec, ttl, reason, Level.REQUIRED)


def _spf(spec: DomainSpec, ttl: int) -> Iterator[Record]:
    yield Record.txt(
        spec.domain,
        ttl,
        spf_text(spec),
        "SPF: the servers allowed to send mail from "
        f"@{spec.domain} (RFC 7208); one record only",
        Level.REQUIRED,
    )


def _dkim(
    spec: DomainSpec, ttl: int, keys: dict[str, str], where: str
) -> Iterator[Record]:
    if spec.dkim is None:
        return
    for sel in spec.dkim.selectors:
        name = dkim_name(sel.name, spec.domain)
        level = _SELECTOR_LEVEL[sel.state]
        why = _SELECTOR_WHY[sel.state]
        value = keys.get(sel.name)
        if value is None:
            yield Record.txt(
                name,
                ttl,
                placeholder_value(sel.algorithm),
                f"placeholder: no key found in {where}; run "
                "`mailbridge records --generate-keys` "
                f"(DKIM {sel.algorithm} selector {sel.name}, {why})",
                level,
                placeholder=True,
            )
            continue
        yield Record.txt(
            name,
            ttl,
            value,
            f"DKIM public key of selector {sel.name} ({sel.algorithm}), {why}",
            level,
        )


def _dmarc(spec: DomainSpec, ttl: int) -> Iterator[Record]:
    yield Record.txt(
        f"_dmarc.{spec.domain}",
        ttl,
        dmarc_text(spec.dmarc),
        f"DMARC: receivers {spec.dmarc.policy} mail failing SPF and DKIM "
        "alignment; Gmail requires it of bulk senders (RFC 7489)",
        Level.REQUIRED,
    )


def _mta_sts(spec: DomainSpec, ttl: int) -> Iterator[Record]:
    if spec.mta_sts is None:
        return
    yield Record.txt(
        f"_mta-sts.{spec.domain}",
        ttl,
        mta_sts_text(spec),
        f"MTA-STS: senders must use TLS to the MX ({spec.mta_sts.mode}); the id "
        "is a digest of the policy text (RFC 8461)",
        Level.RECOMMENDED,
    )
    name = f"mta-sts.{spec.domain}"
    if name == spec.mail_host.hostname:
        return  # the mail host's own address records already serve it
    reason = (
        f"web host serving the MTA-STS policy at https://{name}"
        "/.well-known/mta-sts.txt (the mail host)"
    )
    host = spec.mail_host
    if host.ipv4 or host.ipv6:
        yield from _address_records(name, spec, ttl, reason, Level.RECOMMENDED)
        return
    yield Record(
        name,
        RecordType.CNAME,
        ttl,
        (absolute(host.hostname),),
        reason,
        Level.RECOMMENDED,
    )


def _tls_rpt(spec: DomainSpec, ttl: int) -> Iterator[Record]:
    if spec.tls_rpt is None:
        return
    yield Record.txt(
        f"_smtp._tls.{spec.domain}",
        ttl,
        tls_rpt_text(spec.tls_rpt),
        "TLS-RPT: where senders report TLS failures reaching the MX (RFC 8460)",
        Level.RECOMMENDED,
    )


def _client_setup(spec: DomainSpec, ttl: int) -> Iterator[Record]:
    if not spec.autoconfig:
        return
    target = absolute(spec.mail_host.hostname)
    for label, client in (("autoconfig", "Thunderbird"), ("autodiscover", "Outlook")):
        if f"{label}.{spec.domain}" == spec.mail_host.hostname:
            continue  # a CNAME cannot sit beside the host's address records
        yield Record(
            f"{label}.{spec.domain}",
            RecordType.CNAME,
            ttl,
            (target,),
            f"{client} looks here for mail settings; points at the mail host",
            Level.OPTIONAL,
        )
    for label, port, service in CLIENT_SERVICES:
        yield Record(
            f"{label}.{spec.domain}",
            RecordType.SRV,
            ttl,
            (f"0 1 {port} {target}",),
            f"mail clients find {service} on port {port}",
            Level.OPTIONAL,
        )


def _srs(spec: DomainSpec, ttl: int) -> Iterator[Record]:
    """The SRS domain, when it is its own name below the domain.

    Forwarded mail leaves with an envelope sender at the SRS domain, so
    receivers check SPF there, and bounces come back to its MX.
    """
    if spec.srs is None or spec.srs.domain in (None, spec.domain):
        return
    name = spec.srs.domain
    if not in_domain(name, spec.domain):
        log.info(
            "srs domain=%s is outside %s: its zone needs MX and SPF", name, spec.domain
        )
        return
    yield Record(
        name,
        RecordType.MX,
        ttl,
        (f"10 {absolute(spec.mail_host.hostname)}",),
        f"bounces of forwarded mail (SRS senders @{name}) return to the mail host",
        Level.REQUIRED,
    )
    yield Record.txt(
        name,
        ttl,
        mail_host_spf_text(spec),
        f"SPF of the SRS domain: forwarded mail is sent from @{name} by the "
        "mail host only",
        Level.REQUIRED,
    )


def _no_mail(spec: DomainSpec, ttl: int) -> Iterator[Record]:
    for name in spec.no_mail:
        yield Record(
            name,
            RecordType.MX,
            ttl,
            ("0 .",),
            f"null MX: {name} receives no mail (RFC 7505)",
            Level.RECOMMENDED,
        )
        yield Record.txt(
            name,
            ttl,
            no_mail_spf_text(),
            f"SPF: {name} sends no mail, so every sender fails",
            Level.RECOMMENDED,
        )
        yield Record.txt(
            f"_dmarc.{name}",
            ttl,
            no_mail_dmarc_text(),
            f"DMARC: receivers reject mail that claims to be from {name}",
            Level.RECOMMENDED,
        )
