"""Cloudflare and Route 53 records, checked with Pulumi's mocks only.

Stand-in: both providers' plugins must be downloaded, which cannot happen
here, so these tests check the resources the program asks for (type
tokens and inputs), not what the providers would do with them.
"""

from __future__ import annotations

from pathlib import Path

from tests.pulumi.conftest import EXAMPLE_SECRETS, Deploy


def _use_backend(project: Path, dns: str) -> None:
    spec = project / "stacks/example.com.yaml"
    spec.write_text(spec.read_text() + f"dns: {dns}\n")


def test_cloudflare_records(project: Path, deploy: Deploy) -> None:
    _use_backend(
        project, '{backend: cloudflare, zone_id: zone123, api_token: "secret:cf-token"}'
    )
    mocks = deploy(project, secrets={**EXAMPLE_SECRETS, "cf-token": "cf-api-token-9"})

    provider = mocks.of_type("pulumi:providers:cloudflare")[0]
    assert provider.inputs["apiToken"] == "cf-api-token-9"
    assert "apiToken" in provider.secret_inputs
    records = mocks.of_type("cloudflare:index/dnsRecord:DnsRecord")
    by_name = {(r.inputs["type"], r.inputs["name"]): r.inputs for r in records}
    mx = by_name[("MX", "example.com")]
    assert (mx["zoneId"], mx["priority"], mx["content"]) == (
        "zone123",
        10,
        "mx1.example.com",
    )
    dkim = by_name[("TXT", "s2026a._domainkey.example.com")]
    public = mocks.of_type(":DkimKeyPair")[0].outputs["public_value"]
    assert dkim["content"].replace('" "', "").strip('"') == public
    srv = by_name[("SRV", "_imaps._tcp.example.com")]
    assert srv["data"]["port"] == 993
    assert not (project / "build/dns").exists()


def test_route53_records(project: Path, deploy: Deploy) -> None:
    _use_backend(project, "{backend: route53, zone_id: Z0123456789}")
    mocks = deploy(project)

    records = mocks.of_type("aws:route53/record:Record")
    by_name = {(r.inputs["type"], r.inputs["name"]): r.inputs for r in records}
    assert by_name[("MX", "example.com")]["records"] == ["10 mx1.example.com."]
    dkim = by_name[("TXT", "s2026a._domainkey.example.com")]["records"]
    public = mocks.of_type(":DkimKeyPair")[0].outputs["public_value"]
    # Route 53 splits a long TXT value where `""` stands.
    assert len(dkim) == 1 and dkim[0].replace('""', "") == public
    assert all(len(part) <= 255 for part in dkim[0].split('""'))
    assert not mocks.of_type(":DkimConfirmation")


def test_a_retired_selector_becomes_a_revoked_key_record(project: Path) -> None:
    """Cloud records cannot vanish on a clock: a retired key is revoked (p=)."""
    from components.dns import _cloudflare_value, _route53_value
    from mailbridge.deploy.program import planned_records
    from mailbridge.spec import load_spec

    spec = load_spec(project / "stacks/example.com.yaml").spec
    record = next(
        r for r in planned_records(spec) if r.name == "s2026a._domainkey.example.com"
    )
    # A retired selector has no value among the live records.
    revoked = _route53_value([], record=record, zone_id="Z0123456789")
    assert revoked["records"] == ["v=DKIM1; k=rsa; p="]
    cloudflare = _cloudflare_value([], record=record, index=0, zone_id="zone123")
    assert cloudflare["content"] == '"v=DKIM1; k=rsa; p="'
