"""Zone file and JSON output of a domain's record set.

A stand-alone zone has `$ORIGIN`, `$TTL`, an SOA and NS records (by default
`ns1.<domain>` at the mail host's addresses); a fragment holds only the
mail records, for inclusion in a zone kept elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailbridge.dns.policy import mta_sts_policy
from mailbridge.dns.record import Level, Record, RecordType, absolute, records_to_json
from mailbridge.errors import InputError, Problem
from mailbridge.spec.models import DomainSpec

DEFAULT_SERIAL = 1


@dataclass(frozen=True)
class ZoneOptions:
    """What a stand-alone zone needs beyond the spec: SOA timers and name servers.

    Name servers inside the domain get address (glue) records at the mail
    host's addresses; name servers outside it need none. The SOA timers
    follow RFC 1912 section 2.2; `minimum` is the negative-caching TTL
    (RFC 2308).
    """

    serial: int = DEFAULT_SERIAL
    nameservers: tuple[str, ...] = ()
    hostmaster: str | None = None
    refresh: int = 3600
    retry: int = 900
    expire: int = 1209600
    minimum: int = 300


def relative_name(name: str, origin: str) -> str:
    """`@` for the origin, the labels before it for names below it."""
    if name == origin:
        return "@"
    if name.endswith("." + origin):
        return name[: -len(origin) - 1]
    raise ValueError(f"{name} is outside the zone {origin}")


def apex_records(spec: DomainSpec, options: ZoneOptions) -> list[Record]:
    """SOA, NS, and the addresses of name servers inside the domain."""
    domain = spec.domain
    ttl = spec.dns.ttl
    nameservers = options.nameservers or (f"ns1.{domain}",)
    hostmaster = options.hostmaster or f"hostmaster.{domain}"
    soa = (
        f"{absolute(nameservers[0])} {absolute(hostmaster)} {options.serial} "
        f"{options.refresh} {options.retry} {options.expire} {options.minimum}"
    )
    records = [
        Record(
            domain,
            RecordType.SOA,
            ttl,
            (soa,),
            "start of authority: primary name server, contact, serial, timers",
            Level.REQUIRED,
        ),
        Record(
            domain,
            RecordType.NS,
            ttl,
            tuple(absolute(ns) for ns in nameservers),
            "name servers of the zone",
            Level.REQUIRED,
        ),
    ]
    host = spec.mail_host
    for ns in nameservers:
        if ns != domain and not ns.endswith("." + domain):
            continue
        if not (host.ipv4 or host.ipv6):
            raise InputError(
                [
                    Problem(
                        f"name server {ns} is inside {domain} but the mail host "
                        "has no address to give it",
                        path=("mail_host",),
                        expected="mail_host.ipv4 or mail_host.ipv6",
                        fix="add the mail host's addresses, or name a name "
                        "server outside the domain",
                    )
                ]
            )
        reason = f"address of the name server {ns} (the mail host)"
        for rtype, addresses in (
            (RecordType.A, host.ipv4),
            (RecordType.AAAA, host.ipv6),
        ):
            if addresses and ns != host.hostname:
                records.append(
                    Record(ns, rtype, ttl, tuple(addresses), reason, Level.REQUIRED)
                )
    return records


def _comment(record: Record) -> str:
    if record.placeholder:
        return f"; !! {record.reason} [{record.level}; do not publish as is]"
    return f"; {record.reason} [{record.level}]"


def zone_text(
    spec: DomainSpec,
    records: Sequence[Record],
    *,
    fragment: bool = False,
    options: ZoneOptions | None = None,
) -> str:
    """The zone as text: each record set preceded by a `; <reason>` comment.

    With `fragment`, only the given records (no SOA, NS or `$TTL`), for a
    zone whose apex is managed elsewhere.
    """
    options = options or ZoneOptions()
    origin = spec.domain
    lines = [
        f"; DNS records of {origin}, built by mailbridge from its domain spec.",
        "; Change the spec and build again rather than editing this file.",
        f"$ORIGIN {absolute(origin)}",
    ]
    body = list(records)
    if not fragment:
        lines.append(f"$TTL {spec.dns.ttl}")
        body = [*apex_records(spec, options), *body]
    width = max(len(relative_name(r.name, origin)) for r in body)
    for record in body:
        owner = relative_name(record.name, origin).ljust(width)
        lines.append("")
        lines.append(_comment(record))
        for value in record.values:
            lines.append(f"{owner} {record.ttl} IN {record.type} {value}")
    return "\n".join(lines) + "\n"


def zone_json(spec: DomainSpec, records: Sequence[Record]) -> dict[str, object]:
    """The record set for machines, with the MTA-STS policy text if any."""
    data: dict[str, object] = {
        "domain": spec.domain,
        "ttl": spec.dns.ttl,
        "records": records_to_json(records),
        "placeholders": [r.name for r in records if r.placeholder],
    }
    if spec.mta_sts is not None:
        data["mta_sts_policy"] = mta_sts_policy(spec)
    return data
