"""RFC 2136 record sets against a real Knot DNS on loopback, with TSIG."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.providers.rfc2136 import RecordSetProvider
from mailbridge.deploy.rfc2136 import (
    DnsUpdateError,
    ServerSettings,
    canonical_values,
    delete_rrset,
    read_rrset,
    replace_rrset,
)
from tests.servers.knot import KnotServer, start_knot

ZONE = """$ORIGIN example.com.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
ns1 A 127.0.0.1
"""


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    server = start_knot(tmp_path_factory.mktemp("knot"), {"example.com": ZONE})
    try:
        yield server
    finally:
        server.stop()


def _settings(knot: KnotServer, secret: str | None = None) -> ServerSettings:
    return ServerSettings(
        server=knot.address,
        port=knot.port,
        zone="example.com",
        tsig_name=knot.tsig_name,
        tsig_algorithm=knot.tsig_algorithm,
        tsig_secret=secret or knot.tsig_secret,
        timeout=5,
    )


def test_canonical_values_sort_and_normalize() -> None:
    assert canonical_values("MX", ["20 b.example.com.", "10  a.example.com."]) == (
        "10 a.example.com.",
        "20 b.example.com.",
    )
    assert canonical_values("TXT", ['"v=spf1 -all"']) == ('"v=spf1 -all"',)


def test_settings_never_show_the_tsig_secret() -> None:
    secret = "bWFpbGJyaWRnZS10c2lnLXRlc3Qta2V5"
    settings = ServerSettings(
        "127.0.0.1", 53, "example.com", "deploy", "hmac-sha256", secret
    )
    assert secret not in repr(settings) and secret not in str(settings)
    assert settings.tsig_secret == secret


@pytest.mark.servers
def test_replace_read_delete(knot: KnotServer) -> None:
    settings = _settings(knot)
    assert read_rrset(settings, "mx1.example.com", "A") is None
    replace_rrset(settings, "mx1.example.com", "A", 600, ["192.0.2.1", "192.0.2.2"])
    found = read_rrset(settings, "mx1.example.com", "A")
    assert found is not None
    assert found.ttl == 600
    assert found.values == ("192.0.2.1", "192.0.2.2")
    replace_rrset(settings, "mx1.example.com", "A", 600, ["192.0.2.3"])
    assert read_rrset(settings, "mx1.example.com", "A").values == ("192.0.2.3",)  # type: ignore[union-attr]
    delete_rrset(settings, "mx1.example.com", "A")
    assert read_rrset(settings, "mx1.example.com", "A") is None


@pytest.mark.servers
def test_wrong_tsig_key_is_refused(knot: KnotServer) -> None:
    settings = _settings(knot, secret="d3JvbmcgdGVzdCBrZXkgZm9yIG1haWxicmlkZ2UhIQ==")
    with pytest.raises(DnsUpdateError, match="refused|did not answer"):
        replace_rrset(settings, "x.example.com", "A", 300, ["192.0.2.9"])


@pytest.mark.servers
def test_provider_crud_and_drift(knot: KnotServer) -> None:
    provider = RecordSetProvider()
    props = {
        "server": knot.address,
        "port": knot.port,
        "zone": "example.com",
        "tsig_name": knot.tsig_name,
        "tsig_algorithm": knot.tsig_algorithm,
        "tsig_secret": knot.tsig_secret,
        "name": "_dmarc.example.com",
        "type": "TXT",
        "ttl": 300.0,
        "values": ['"v=DMARC1; p=quarantine"'],
    }
    created = provider.create(dict(props))
    outs = created.outs
    assert outs["values"] == ['"v=DMARC1; p=quarantine"']
    assert provider.diff(created.id, outs, dict(props)).changes is False

    changed = {**props, "values": ['"v=DMARC1; p=reject"']}
    diff = provider.diff(created.id, outs, changed)
    assert diff.changes is True and not diff.replaces
    outs = provider.update(created.id, outs, changed).outs
    assert read_rrset(_settings(knot), "_dmarc.example.com", "TXT").values == (  # type: ignore[union-attr]
        '"v=DMARC1; p=reject"',
    )

    # A change behind the provider's back shows when it reads the record.
    replace_rrset(
        _settings(knot), "_dmarc.example.com", "TXT", 300, ['"v=DMARC1; p=none"']
    )
    read = provider.read(created.id, outs)
    assert read.outs["values"] == ['"v=DMARC1; p=none"']
    assert provider.diff(created.id, read.outs, changed).changes is True

    renamed = {**changed, "name": "_dmarc2.example.com"}
    assert provider.diff(created.id, outs, renamed).replaces == ["name"]

    provider.delete(created.id, outs)
    assert read_rrset(_settings(knot), "_dmarc.example.com", "TXT") is None
    empty = provider.create({**props, "name": "gone.example.com", "values": []})
    assert empty.outs["values"] == []
    assert read_rrset(_settings(knot), "gone.example.com", "TXT") is None
