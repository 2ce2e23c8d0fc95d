"""Zones for the verify tests: built from specs, then broken on purpose."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from mailbridge.dns.record import Record
from mailbridge.dns.records import build_records
from mailbridge.dns.zone import ZoneOptions, zone_text
from mailbridge.spec.models import DomainSpec

HEADER = """$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
ns1 A 127.0.0.1
"""


def make_spec(domain: str, ip: str, **extra: object) -> DomainSpec:
    return DomainSpec.model_validate(spec_data(domain, ip, **extra))


def spec_data(domain: str, ip: str, **extra: object) -> dict[str, object]:
    """A spec as the YAML file would hold it."""
    data: dict[str, object] = {
        "version": 1,
        "domain": domain,
        "mail_host": {"hostname": f"mx1.{domain}", "ipv4": [ip]},
        "forwarders": [{"address": f"sales@{domain}", "to": ["owner@gmail.com"]}],
    }
    data.update(extra)
    return data


Edit = Callable[[Record], Record | None]


def spec_zone(
    spec: DomainSpec,
    dkim_public: Mapping[str, str] | None = None,
    edits: Mapping[tuple[str, str], Edit] | None = None,
) -> str:
    """The zone a deploy would publish, with `edits[(name, type)]` applied.

    An edit returns a changed record, or None to leave the record out.
    """
    records: list[Record] = []
    for record in build_records(spec, dkim_public or {}):
        edit = (edits or {}).get((record.name, str(record.type)))
        changed = edit(record) if edit else record
        if changed is not None:
            records.append(changed)
    options = ZoneOptions(nameservers=("ns1.invalid",))
    return zone_text(spec, records, options=options)


def with_values(*values: str) -> Edit:
    return lambda record: replace(record, values=values)


def drop(record: Record) -> None:
    return None


def plain_zone(origin: str, body: str) -> str:
    return f"$ORIGIN {origin}.\n{HEADER}{body}"
