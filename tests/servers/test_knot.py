"""The Knot fixture serves zones and accepts TSIG-signed updates."""

from pathlib import Path

import dns.message
import dns.query
import dns.update
import pytest

from tests.servers.knot import start_knot


@pytest.mark.servers
def test_knot(tmp_path: Path) -> None:
    zone = """$ORIGIN example.org.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
ns1 A 127.0.0.1
@ MX 10 mx1
"""
    k = start_knot(tmp_path, {"example.org": zone})
    try:
        r = dns.query.udp(
            dns.message.make_query("example.org", "MX"),
            "127.0.0.1",
            port=k.port,
            timeout=2,
        )
        assert "mx1.example.org." in r.to_text()
        u = dns.update.UpdateMessage(
            "example.org",
            keyring=k.keyring(),
            keyname=k.tsig_name,
            keyalgorithm=k.tsig_algorithm,
        )
        u.add("www", 300, "A", "192.0.2.1")
        resp = dns.query.tcp(u, "127.0.0.1", port=k.port, timeout=5)
        assert resp.rcode() == 0, resp
        r = dns.query.udp(
            dns.message.make_query("www.example.org", "A"),
            "127.0.0.1",
            port=k.port,
            timeout=2,
        )
        assert "192.0.2.1" in r.to_text()
        k.add_zone("example.net", zone.replace("example.org", "example.net"))
    finally:
        k.stop()
