"""Zone output: the golden example zone, kzonecheck, and a real Knot serving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dkim
import dns.message
import dns.query
import dns.rdatatype
import pytest

from mailbridge.dns.dkim import generate_missing_keys, key_path, load_keys
from mailbridge.dns.record import Level, Record, RecordType
from mailbridge.dns.records import build_records
from mailbridge.dns.zone import ZoneOptions, relative_name, zone_json, zone_text
from mailbridge.errors import InputError
from mailbridge.spec import load_spec
from mailbridge.spec.models import DomainSpec
from tests.dns.helpers import kzonecheck, make_spec
from tests.servers.knot import KnotServer, start_knot

GOLDEN = Path(__file__).parent / "golden"
SERIAL = 2026120301


@dataclass(frozen=True)
class BuiltZone:
    spec: DomainSpec
    keys_dir: Path
    records: list[Record]
    text: str


@pytest.fixture(scope="module")
def example_zones(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, BuiltZone]:
    """Both example specs with freshly generated DKIM keys, as zone text."""
    root = Path(__file__).resolve().parents[2] / "stacks"
    keys_dir = tmp_path_factory.mktemp("keys")
    zones = {}
    for name in ("example.com", "example.net"):
        spec = load_spec(root / f"{name}.yaml").spec
        generate_missing_keys(keys_dir, spec)
        records = build_records(spec, load_keys(keys_dir, spec), keys_dir=keys_dir)
        assert not any(r.placeholder for r in records)
        text = zone_text(spec, records, options=ZoneOptions(serial=SERIAL))
        zones[name] = BuiltZone(spec, keys_dir, records, text)
    return zones


def test_golden_example_com_zone(stacks_dir: Path) -> None:
    """The example spec's zone, without keys, matches the reviewed file.

    Regenerate after a deliberate change with MAILBRIDGE_UPDATE_GOLDEN=1.
    """
    spec = load_spec(stacks_dir / "example.com.yaml").spec
    records = build_records(spec, None, keys_dir="stacks/keys")
    text = zone_text(spec, records, options=ZoneOptions(serial=SERIAL))
    golden = GOLDEN / "example.com.zone"
    if os.environ.get("MAILBRIDGE_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.servers
@pytest.mark.parametrize("name", ["example.com", "example.net"])
def test_kzonecheck_accepts_the_example_zones(
    name: str, example_zones: dict[str, BuiltZone], tmp_path: Path
) -> None:
    done = kzonecheck(name, example_zones[name].text, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.servers
def test_kzonecheck_accepts_the_placeholder_zone(
    stacks_dir: Path, tmp_path: Path
) -> None:
    spec = load_spec(stacks_dir / "example.net.yaml").spec
    text = zone_text(spec, build_records(spec), options=ZoneOptions(serial=SERIAL))
    done = kzonecheck(spec.domain, text, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.servers
def test_kzonecheck_rejects_a_broken_zone(
    example_zones: dict[str, BuiltZone], tmp_path: Path
) -> None:
    """The check can fail: a CNAME beside other data at one name is refused."""
    built = example_zones["example.com"]
    clash = Record(
        "www.example.com",
        RecordType.CNAME,
        300,
        ("mx1.example.com.",),
        "clash",
        Level.OPTIONAL,
    )
    text = zone_text(
        built.spec, [*built.records, clash], options=ZoneOptions(serial=SERIAL)
    )
    done = kzonecheck("example.com", text, tmp_path)
    assert done.returncode != 0
    assert "CNAME" in done.stdout + done.stderr


def test_fragment_has_no_apex_records(example_zones: dict[str, BuiltZone]) -> None:
    built = example_zones["example.net"]
    text = zone_text(built.spec, built.records, fragment=True)
    assert "$ORIGIN example.net." in text
    assert "$TTL" not in text
    assert " IN SOA " not in text and " IN NS " not in text
    assert text.count(" IN ") == sum(len(r.values) for r in built.records)


def test_every_record_has_its_reason_above_it(
    example_zones: dict[str, BuiltZone],
) -> None:
    lines = example_zones["example.com"].text.splitlines()
    for i, line in enumerate(lines):
        if " IN " in line and not line.startswith(";"):
            above = lines[i - 1]
            assert above.startswith("; ") or " IN " in above, line


def test_name_servers_and_their_glue() -> None:
    spec = make_spec()
    outside = zone_text(
        spec,
        [],
        options=ZoneOptions(
            nameservers=("ns.dns-host.example", "ns2.dns-host.example")
        ),
    )
    assert "@ 3600 IN NS ns.dns-host.example." in outside
    assert " IN A " not in outside
    inside = zone_text(spec, [])
    assert "ns1 3600 IN A 192.0.2.1" in inside
    bare = make_spec(mail_host={"hostname": "mx.example.org"})
    with pytest.raises(InputError, match="no address"):
        zone_text(bare, [])


def test_names_outside_the_zone_are_refused() -> None:
    assert relative_name("example.org", "example.org") == "@"
    assert relative_name("_dmarc.www.example.org", "example.org") == "_dmarc.www"
    with pytest.raises(ValueError, match="outside"):
        relative_name("badexample.org", "example.org")


def test_zone_json_carries_the_policy(example_zones: dict[str, BuiltZone]) -> None:
    built = example_zones["example.com"]
    data = zone_json(built.spec, built.records)
    assert data["domain"] == "example.com"
    assert data["placeholders"] == []
    assert str(data["mta_sts_policy"]).startswith("version: STSv1\r\n")
    assert "mta_sts_policy" not in zone_json(
        example_zones["example.net"].spec, example_zones["example.net"].records
    )


@pytest.fixture(scope="module")
def knot_serving(
    example_zones: dict[str, BuiltZone], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KnotServer]:
    zones = {name: built.text for name, built in example_zones.items()}
    server = start_knot(tmp_path_factory.mktemp("knot-dns"), zones)
    try:
        yield server
    finally:
        server.stop()


def _ask(server: KnotServer, name: str, rtype: str) -> list[str]:
    query = dns.message.make_query(name, rtype)
    reply = dns.query.tcp(query, server.address, port=server.port, timeout=5)
    return [
        rdata.to_text()
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.from_text(rtype)
        for rdata in rrset
    ]


@pytest.mark.servers
def test_knot_serves_what_was_built(
    knot_serving: KnotServer, example_zones: dict[str, BuiltZone]
) -> None:
    for built in example_zones.values():
        for record in built.records:
            answer = _ask(knot_serving, record.name, str(record.type))
            assert sorted(answer) == sorted(record.values), record.name


@pytest.mark.servers
def test_dkimpy_verifies_through_real_dns(
    knot_serving: KnotServer, example_zones: dict[str, BuiltZone]
) -> None:
    built = example_zones["example.com"]

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        query = dns.message.make_query(name.decode(), "TXT")
        reply = dns.query.tcp(
            query, knot_serving.address, port=knot_serving.port, timeout=timeout
        )
        for rrset in reply.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return None

    message = (
        b"From: alice@example.com\r\nTo: bob@example.net\r\n"
        b"Subject: through Knot\r\n\r\nbody\r\n"
    )
    private = key_path(built.keys_dir, "example.com", "s2026a", ".key").read_bytes()
    signed = dkim.sign(message, b"s2026a", b"example.com", private) + message
    assert dkim.verify(signed, dnsfunc=dnsfunc)
