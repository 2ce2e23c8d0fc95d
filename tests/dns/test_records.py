"""The record set of a spec: DMARC, MTA-STS, null MX, client SRV, order."""

from __future__ import annotations

import dns.rdata
import dns.rdataclass
import pytest

from mailbridge.dns.policy import dmarc_text, mta_sts_id, mta_sts_policy
from mailbridge.dns.record import Level, Record, RecordType
from mailbridge.dns.records import build_records
from mailbridge.spec.models import DMARC
from tests.dns.helpers import make_spec


def _find(records: list[Record], name: str, rtype: RecordType) -> Record:
    matches = [r for r in records if r.name == name and r.type == rtype]
    assert len(matches) == 1, f"{name} {rtype}: {matches}"
    return matches[0]


def _names(records: list[Record]) -> set[tuple[str, RecordType]]:
    return {(r.name, r.type) for r in records}


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({}, "v=DMARC1; p=quarantine"),
        ({"policy": "reject", "subdomain_policy": "reject"}, "v=DMARC1; p=reject"),
        (
            {
                "policy": "none",
                "subdomain_policy": "reject",
                "pct": 50,
                "rua": ["mailto:A@Example.org", "mailto:b@example.net"],
                "ruf": ["mailto:f@example.org"],
                "adkim": "s",
                "aspf": "s",
            },
            "v=DMARC1; p=none; sp=reject; pct=50; "
            "rua=mailto:a@example.org,mailto:b@example.net; "
            "ruf=mailto:f@example.org; adkim=s; aspf=s",
        ),
    ],
)
def test_dmarc_text_leaves_out_defaults(fields: dict[str, object], text: str) -> None:
    assert dmarc_text(DMARC.model_validate(fields)) == text


def test_dmarc_record_at_underscore_dmarc() -> None:
    spec = make_spec(dmarc={"policy": "reject", "rua": ["mailto:d@example.org"]})
    record = _find(build_records(spec), "_dmarc.example.org", RecordType.TXT)
    assert record.texts() == ["v=DMARC1; p=reject; rua=mailto:d@example.org"]
    assert record.level == Level.REQUIRED


def test_mta_sts_policy_text() -> None:
    spec = make_spec(
        mx=[
            {"host": "backup.mx-service.example", "priority": 20, "external": True},
            {"host": "mx.example.org", "priority": 10},
        ],
        mta_sts={"mode": "testing", "max_age": 86400},
    )
    assert mta_sts_policy(spec) == (
        "version: STSv1\r\nmode: testing\r\nmx: mx.example.org\r\n"
        "mx: backup.mx-service.example\r\nmax_age: 86400\r\n"
    )


def test_mta_sts_id_changes_exactly_when_the_policy_does() -> None:
    base = make_spec(mta_sts={"mode": "enforce"}, dmarc={"policy": "reject"})
    same_policy = make_spec(
        mta_sts={"mode": "enforce"},
        dmarc={"policy": "none"},
        dns={"backend": "zonefile", "ttl": 300},
    )
    new_mode = make_spec(mta_sts={"mode": "testing"})
    new_age = make_spec(mta_sts={"mode": "enforce", "max_age": 86400})
    new_mx = make_spec(
        mta_sts={"mode": "enforce"},
        mx=[
            {"host": "mx.example.org"},
            {"host": "mx2.example.net", "priority": 20, "external": True},
        ],
    )

    def txt(spec_id: str) -> str:
        return f"v=STSv1; id={spec_id}"

    ids = []
    for spec in (base, same_policy, new_mode, new_age, new_mx):
        record = _find(build_records(spec), "_mta-sts.example.org", RecordType.TXT)
        (text,) = record.texts()
        assert text == txt(mta_sts_id(mta_sts_policy(spec)))
        ids.append(text.split("id=")[1])
    assert ids[0] == ids[1]
    assert len(set(ids[1:])) == 4
    assert all(i.isalnum() and 1 <= len(i) <= 32 for i in ids)


def test_mta_sts_host_points_at_the_mail_host() -> None:
    with_ip = build_records(make_spec(mta_sts={}))
    assert _find(with_ip, "mta-sts.example.org", RecordType.A).values == ("192.0.2.1",)
    outside = make_spec(
        mail_host={"hostname": "mail.provider.example"},
        mx=[{"host": "mail.provider.example", "priority": 10}],
        mta_sts={},
    )
    records = build_records(outside)
    cname = _find(records, "mta-sts.example.org", RecordType.CNAME)
    assert cname.values == ("mail.provider.example.",)
    assert not any(r.name == "mail.provider.example" for r in records)


def test_no_mta_sts_section_means_no_records() -> None:
    records = build_records(make_spec())
    assert not any("mta-sts" in r.name for r in records)
    with pytest.raises(ValueError, match="no mta_sts"):
        mta_sts_policy(make_spec())


def test_null_mx_set_for_each_no_mail_name() -> None:
    spec = make_spec(no_mail=["www.example.org", "static.example.org"])
    records = build_records(spec)
    for name in spec.no_mail:
        assert _find(records, name, RecordType.MX).values == ("0 .",)
        assert _find(records, name, RecordType.TXT).texts() == ["v=spf1 -all"]
        dmarc = _find(records, f"_dmarc.{name}", RecordType.TXT)
        assert dmarc.texts() == ["v=DMARC1; p=reject"]
    mx = dns.rdata.from_text(dns.rdataclass.IN, "MX", "0 .")
    assert str(mx.exchange) == "."  # type: ignore[attr-defined]


def test_client_srv_set() -> None:
    spec = make_spec(autoconfig=True)
    records = build_records(spec)
    srv = {r.name: r.values for r in records if r.type == RecordType.SRV}
    assert srv == {
        "_submissions._tcp.example.org": ("0 1 465 mx.example.org.",),
        "_submission._tcp.example.org": ("0 1 587 mx.example.org.",),
        "_imaps._tcp.example.org": ("0 1 993 mx.example.org.",),
        "_pop3s._tcp.example.org": ("0 1 995 mx.example.org.",),
    }
    for label in ("autoconfig", "autodiscover"):
        cname = _find(records, f"{label}.example.org", RecordType.CNAME)
        assert cname.values == ("mx.example.org.",)
    for value in (v for values in srv.values() for v in values):
        parsed = dns.rdata.from_text(dns.rdataclass.IN, "SRV", value)
        assert parsed.port in (465, 587, 993, 995)  # type: ignore[attr-defined]
    assert not any(r.type == RecordType.SRV for r in build_records(make_spec()))


def test_mx_and_mail_host_addresses() -> None:
    spec = make_spec(
        mail_host={
            "hostname": "mx.example.org",
            "ipv4": ["192.0.2.1"],
            "ipv6": ["2001:db8::1"],
        },
        mx=[
            {"host": "mx2.example.net", "priority": 20, "external": True},
            {"host": "mx.example.org", "priority": 5},
        ],
    )
    records = build_records(spec)
    mx = _find(records, "example.org", RecordType.MX)
    assert mx.values == ("5 mx.example.org.", "20 mx2.example.net.")
    assert _find(records, "mx.example.org", RecordType.AAAA).values == ("2001:db8::1",)
    outside = make_spec(
        mail_host={"hostname": "mail.example.net", "ipv4": ["192.0.2.9"]},
        mx=[{"host": "mail.example.net"}],
    )
    assert not any(r.name == "mail.example.net" for r in build_records(outside))


def test_ttl_order_and_determinism() -> None:
    spec = make_spec(
        dns={"backend": "zonefile", "ttl": 600},
        autoconfig=True,
        mta_sts={},
        tls_rpt={"rua": ["mailto:tls@example.org"]},
        dkim={"selectors": [{"name": "b"}, {"name": "a", "state": "retiring"}]},
        no_mail=["www.example.org"],
    )
    first = build_records(spec, {"a": "v=DKIM1; k=rsa; p=AAAA"})
    again = build_records(spec, {"a": "v=DKIM1; k=rsa; p=AAAA"})
    assert first == again
    assert {r.ttl for r in first} == {600}
    kinds = [(r.name, str(r.type)) for r in first]
    assert kinds.index(("example.org", "MX")) == 0
    assert kinds.index(("b._domainkey.example.org", "TXT")) < kinds.index(
        ("a._domainkey.example.org", "TXT")
    )
    assert kinds[-1] == ("_dmarc.www.example.org", "TXT")
    levels = {r.name: r.level for r in first if "_domainkey" in r.name}
    assert levels == {
        "b._domainkey.example.org": Level.REQUIRED,
        "a._domainkey.example.org": Level.RECOMMENDED,
    }
    assert len(_names(first)) == len(first)
    tls = _find(first, "_smtp._tls.example.org", RecordType.TXT)
    assert tls.texts() == ["v=TLSRPTv1; rua=mailto:tls@example.org"]


def test_every_value_parses_as_its_type() -> None:
    spec = make_spec(
        autoconfig=True,
        mta_sts={},
        tls_rpt={"rua": ["mailto:tls@example.org"]},
        dkim={"selectors": [{"name": "s1"}]},
        no_mail=["www.example.org"],
    )
    for record in build_records(spec):
        for value in record.values:
            dns.rdata.from_text(dns.rdataclass.IN, str(record.type), value)
        assert record.reason and "\n" not in record.reason


def test_service_names_equal_to_the_mail_host_get_no_alias() -> None:
    for hostname in ("mta-sts.example.org", "autoconfig.example.org"):
        spec = make_spec(
            mail_host={"hostname": hostname, "ipv4": ["192.0.2.1"]},
            autoconfig=True,
            mta_sts={},
        )
        records = build_records(spec)
        assert len(_names(records)) == len(records)
        assert not any(
            r.name == hostname and r.type == RecordType.CNAME for r in records
        )
        assert _find(records, hostname, RecordType.A).values == ("192.0.2.1",)


def test_srs_subdomain_gets_mx_and_spf() -> None:
    spec = make_spec(srs={"domain": "srs.example.org", "secrets": ["secret:srs-a"]})
    records = build_records(spec)
    assert _find(records, "srs.example.org", RecordType.MX).values == (
        "10 mx.example.org.",
    )
    spf = _find(records, "srs.example.org", RecordType.TXT)
    assert spf.texts() == ["v=spf1 ip4:192.0.2.1 -all"]
    same = make_spec(srs={"secrets": ["secret:srs-a"]})
    outside = make_spec(srs={"domain": "srs.example.net", "secrets": ["secret:srs-a"]})
    for other in (same, outside):
        assert not any(r.name.startswith("srs.") for r in build_records(other))
