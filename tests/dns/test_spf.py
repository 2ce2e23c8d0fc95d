"""SPF record text and the RFC 7208 DNS lookup count."""

from __future__ import annotations

import pytest

from mailbridge.dns import SPF_LOOKUP_LIMIT, spf_lookup_count
from mailbridge.dns.record import RecordType
from mailbridge.dns.records import build_records
from mailbridge.dns.spf import spf_terms, spf_text
from mailbridge.errors import InputError
from mailbridge.spec.models import SPF
from tests.dns.helpers import make_spec


def test_mail_host_addresses_come_first_and_all_last() -> None:
    spec = make_spec(
        mail_host={
            "hostname": "mx.example.org",
            "ipv4": ["192.0.2.1"],
            "ipv6": ["2001:db8::1"],
        },
        spf={
            "include": ["_spf.google.com"],
            "ip4": ["198.51.100.0/24", "192.0.2.1"],
            "mx": ["example.org"],
            "all": "~all",
        },
    )
    assert spf_text(spec) == (
        "v=spf1 ip4:192.0.2.1 ip4:198.51.100.0/24 ip6:2001:db8::1 "
        "mx:example.org include:_spf.google.com ~all"
    )


def test_mail_host_false_leaves_its_addresses_out() -> None:
    spec = make_spec(spf={"mail_host": False, "include": ["_spf.google.com"]})
    assert spf_terms(spec) == ["include:_spf.google.com", "-all"]


def test_redirect_replaces_all() -> None:
    spec = make_spec(spf={"redirect": "_spf.example.net", "all": "~all"})
    terms = spf_terms(spec)
    assert terms[-1] == "redirect=_spf.example.net"
    assert not any(t.endswith("all") for t in terms)


@pytest.mark.parametrize(
    ("fields", "count"),
    [
        ({}, 0),
        ({"ip4": ["192.0.2.0/24"], "ip6": ["2001:db8::/32"], "all": "-all"}, 0),
        ({"include": ["a.example", "b.example"]}, 2),
        ({"a": ["example.org"], "mx": ["example.org"], "ptr": True}, 3),
        ({"exists": ["%{i}.spf.example.org"]}, 1),
        ({"include": ["a.example"], "redirect": "_spf.example.net"}, 2),
    ],
)
def test_lookup_count(fields: dict[str, object], count: int) -> None:
    assert spf_lookup_count(SPF.model_validate(fields)) == count


def test_mail_host_addresses_cost_no_lookup() -> None:
    spf = SPF(mail_host=True, include=["_spf.google.com"])
    assert spf_lookup_count(spf) == 1


def test_long_record_is_split_into_255_octet_strings() -> None:
    networks = [f"198.51.{i}.0/24" for i in range(30)]
    spec = make_spec(spf={"ip4": networks})
    record = next(
        r
        for r in build_records(spec)
        if r.type == RecordType.TXT and r.name == spec.domain
    )
    strings = record.strings()[0]
    assert len(strings) > 1
    assert all(len(s.encode()) <= 255 for s in strings)
    assert "".join(strings) == spf_text(spec)
    assert len(strings[0]) == 255


def test_over_the_limit_is_an_input_error() -> None:
    includes = [f"_spf{i}.example.com" for i in range(SPF_LOOKUP_LIMIT)]
    at_limit = make_spec(spf={"include": includes})
    assert spf_text(at_limit).count("include:") == SPF_LOOKUP_LIMIT
    over = make_spec(spf={"include": includes, "mx": ["example.org"]})
    with pytest.raises(InputError) as caught:
        build_records(over)
    (problem,) = caught.value.problems
    assert problem.path == ("spf",)
    assert "11 DNS lookups" in problem.message
    assert problem.rule == "spf-lookups"
