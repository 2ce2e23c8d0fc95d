"""The pure parts of verify: parsers, matchers and record comparison."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography import x509

from mailbridge.dns.record import Level, Record, RecordType
from mailbridge.errors import InputError
from mailbridge.verify import Status
from mailbridge.verify.compare import compare
from mailbridge.verify.dnscheck import _limit, check_mx, dmarc_errors, report_domains
from mailbridge.verify.lookup import Lookup, Outcome, Resolver
from mailbridge.verify.mta_sts import FetchError, _http_body, mx_matches, parse_policy
from mailbridge.verify.options import VerifyOptions, parse_address, parse_ports
from mailbridge.verify.spf import parse, walk
from mailbridge.verify.tags import parse_tags
from mailbridge.verify.tls import name_matches
from tests.verify.certs import TestCA


def test_spf_terms_and_bad_terms() -> None:
    terms, bad = parse(
        "v=spf1 ip4:192.0.2.0/24 a mx/24 -include:x.test ?exists:%{i}.y "
        "redirect=z.test foo:bar include:"
    )
    assert [t.name for t in terms] == [
        "ip4",
        "a",
        "mx",
        "include",
        "exists",
        "redirect",
    ]
    assert terms[3].qualifier == "-" and terms[3].value == "x.test"
    assert terms[5].is_modifier and terms[5].value == "z.test"
    assert terms[2].value == "/24"
    assert bad == ["foo:bar", "include:"]


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("mx1.example.com", "MX1.example.com.", True),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "a.mx1.example.com", False),
        ("*.example.com", "example.com", False),
        ("mx1.example.com", "mx2.example.com", False),
    ],
)
def test_mta_sts_mx_patterns(pattern: str, host: str, matches: bool) -> None:
    assert mx_matches(pattern, host) is matches


def test_mta_sts_policy_errors() -> None:
    good = parse_policy(
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.a.test\r\nmax_age: 86400\r\n"
    )
    assert good.errors == () and good.mx == ("mx1.a.test",)
    bad = parse_policy("version: STSv2\nmode: strict\nmax_age: forever\n")
    assert len(bad.errors) == 4
    odd = parse_policy("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: ²\n")
    assert odd.errors == ("max_age is '²', not 0 to 31557600 seconds",)


def test_policy_http_answers() -> None:
    body = b"version: STSv1\r\n"
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
    assert _http_body(ok, "h") == body.decode()
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"5\r\nversi\r\nb\r\non: STSv1\r\n\r\n0\r\n\r\n"
    )
    assert _http_body(chunked, "h") == "version: STSv1\r\n"
    broken = chunked.replace(b"5\r\nversi", b"zz\r\nversi")
    with pytest.raises(FetchError, match="chunked body is broken"):
        _http_body(broken, "h")
    with pytest.raises(FetchError, match="301"):
        _http_body(b"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n", "h")


def test_dmarc_syntax_and_report_domains() -> None:
    assert dmarc_errors("v=DMARC1; p=reject; rua=mailto:a@b.test") == []
    errors = dmarc_errors("v=DMARC1; p=maybe; pct=150; rua=https://x; zz=1")
    assert len(errors) == 3, errors
    # Unknown tags are ignored and values compare without case (RFC 7489 6.3).
    assert dmarc_errors("v=DMARC1; p=Reject; np=reject; psd=n; t=y") == []
    assert dmarc_errors("v=DMARC1; p=reject; pct=²") == ["pct=² is not 0 to 100"]
    assert dmarc_errors("p=reject") == ["must start with v=DMARC1"]
    assert dmarc_errors("v=DMARC1; p=none; p=reject") == [
        "not a list of tag=value pairs (or a tag repeats)"
    ]
    text = (
        "v=DMARC1; p=none; rua=mailto:a@x.test,mailto:b@sub.x.test!10m; "
        "ruf=mailto:c@y.test"
    )
    assert report_domains(text, "x.test") == ["y.test"]
    # A subdomain reporting to its parent's address needs no authorization.
    assert report_domains("v=DMARC1; p=none; rua=mailto:d@x.test", "sub.x.test") == []
    assert report_domains("v=DMARC1; p=none; rua=mailto:d@test", "x.test") == ["test"]


def test_tag_lists() -> None:
    assert parse_tags(" v = DKIM1 ; k=rsa; p=AB CD ;") == {
        "v": "DKIM1",
        "k": "rsa",
        "p": "ABCD",
    }
    assert parse_tags("v=1; v=2") is None
    assert parse_tags("just text") is None


def test_certificate_names(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    leaf = ca.issue("w", ["*.example.com", "mail.example.org"])
    cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
    assert name_matches(cert, "mx1.example.com")
    assert name_matches(cert, "MAIL.example.org.")
    assert not name_matches(cert, "example.com")
    assert not name_matches(cert, "a.mx1.example.com")


def test_addresses_and_ports() -> None:
    assert parse_address("127.0.0.1:5353", default_port=53, what="x") == (
        "127.0.0.1",
        5353,
    )
    assert parse_address("[::1]:53", default_port=1, what="x") == ("::1", 53)
    assert parse_address("::1", default_port=53, what="x") == ("::1", 53)
    assert parse_ports("smtp=2525, imaps=9993") == {"smtp": 2525, "imaps": 9993}
    with pytest.raises(InputError):
        parse_address("localhost:53", default_port=53, what="--resolver")
    with pytest.raises(InputError):
        parse_ports("smtp:25")
    options = VerifyOptions(ports={"smtp": 2525})
    assert options.port_of("smtp") == 2525 and options.port_of("pop3s") == 995
    with pytest.raises(ValueError, match="unknown service"):
        VerifyOptions(ports={"gopher": 70})


def _live(rdtype: str, *values: str) -> Lookup:
    return Lookup("a.test", rdtype, Outcome.ANSWER, tuple(values))


def test_compare_normalizes_and_ignores_unrelated_txt() -> None:
    mx = Record(
        "a.test", RecordType.MX, 300, ("10 mx1.a.test.",), "why", Level.REQUIRED
    )
    assert compare(mx, _live("MX", "10 MX1.a.test."), "mx").status == Status.OK
    assert compare(mx, _live("MX", "20 mx1.a.test."), "mx").status == Status.ERROR
    spf = Record.txt("a.test", 300, "v=spf1 ip4:192.0.2.1 -all", "why", Level.REQUIRED)
    live = _live("TXT", "google-site-verification=abc", "v=spf1  ip4:192.0.2.1 -all")
    assert compare(spf, live, "spf").status == Status.OK
    two = _live("TXT", "v=spf1 ip4:192.0.2.1 -all", "v=spf1 -all")
    finding = compare(spf, two, "spf")
    assert finding.status == Status.ERROR
    assert finding.fix and "delete" in finding.fix


def test_compare_missing_and_unknown() -> None:
    tlsrpt = Record.txt(
        "_smtp._tls.a.test",
        300,
        "v=TLSRPTv1; rua=mailto:t@a.test",
        "why",
        Level.RECOMMENDED,
    )
    missing = Lookup("_smtp._tls.a.test", "TXT", Outcome.NXDOMAIN)
    assert compare(tlsrpt, missing, "tls-rpt").status == Status.WARNING
    timeout = Lookup("_smtp._tls.a.test", "TXT", Outcome.TIMEOUT, error="timed out")
    finding = compare(tlsrpt, timeout, "tls-rpt")
    assert finding.status == Status.UNKNOWN
    assert "NXDOMAIN" not in (finding.found or "")


def test_dkim_keys_compare_by_type_and_key() -> None:
    record = Record.txt(
        "s1._domainkey.a.test", 300, "v=DKIM1; k=rsa; p=QUJD", "why", Level.REQUIRED
    )
    same = _live("TXT", "v=DKIM1; t=s; p=QUJD")
    assert compare(record, same, "dkim.s1").status == Status.OK
    # v= is optional (RFC 6376 3.6.1): the same key without it is the same.
    bare = compare(record, _live("TXT", "k=rsa; t=s; p=QUJD"), "dkim.s1")
    assert bare.status == Status.OK, bare
    other = _live("TXT", "v=DKIM1; k=rsa; p=REVG")
    finding = compare(record, other, "dkim.s1")
    assert finding.status == Status.ERROR
    assert finding.found == "v=DKIM1; k=rsa; p=REVG"


def test_spf_macros_count_but_are_not_followed() -> None:
    """No DNS is needed: the record's only lookup term holds a macro."""
    top = _live("TXT", "v=spf1 exists:%{i}._spf.a.test -all")
    resolver = Resolver(("127.0.0.1", 9), timeout=0.1)
    result = asyncio.run(walk(resolver, "a.test", top))
    assert result.lookups == 1
    assert result.complete
    assert result.macros == ["exists:%{i}._spf.a.test"]
    assert resolver.queries == 0


def test_placeholder_findings_say_why_the_key_matters() -> None:
    """Not the placeholder's hint about key files: a deploy may hold the key."""
    record = Record.txt(
        "s1._domainkey.a.test",
        300,
        "v=DKIM1; k=rsa; p=",
        "placeholder: no key found in keys/; run `mailbridge records ...`",
        Level.REQUIRED,
        placeholder=True,
    )
    timeout = Lookup(record.name, "TXT", Outcome.TIMEOUT, error="timed out")
    for live in (timeout, _live("TXT", "v=DKIM1; k=rsa; p="), _live("TXT", "x")):
        finding = compare(record, live, "dkim.s1")
        assert finding.why and "RFC 6376" in finding.why
        assert "placeholder" not in finding.why


def test_spf_include_with_a_sender_macro_cannot_be_called_within_limits() -> None:
    """No DNS is needed: %{d} is the domain itself and is followed (its
    lookup gets no answer here); an include naming the sender is not, and
    the count is only a lower bound, a warning rather than ok."""
    top = _live("TXT", "v=spf1 include:%{l}.users.a.test -all")
    resolver = Resolver(("127.0.0.1", 9), timeout=0.1)
    result = asyncio.run(walk(resolver, "a.test", top))
    assert result.macros == ["include:%{l}.users.a.test"]
    finding = _limit("spf.lookups", "a.test TXT", result.lookups, 10, result, "", "")
    assert finding.status == Status.WARNING
    assert finding.found is not None and finding.found.startswith("at least 1")
    own = _live("TXT", "v=spf1 include:%{d}.spf.a.test -all")
    followed = asyncio.run(walk(resolver, "a.test", own))
    assert followed.macros == [] and resolver.queries == 1


def test_mx_hosts_in_preference_order_and_a_mixed_null_mx() -> None:
    class Answers(Resolver):
        def __init__(self, values: tuple[str, ...]) -> None:
            super().__init__(("127.0.0.1", 9), timeout=0.1)
            self.values = values

        async def query(self, name: str, rtype: str) -> Lookup:
            return Lookup(name, rtype, Outcome.ANSWER, self.values)

    finding, hosts = asyncio.run(
        check_mx(Answers(("10 backup.b.test.", "5 primary.a.test.")), "a.test")
    )
    assert finding.status == Status.OK
    assert hosts == ["primary.a.test", "backup.b.test"]
    mixed, hosts = asyncio.run(check_mx(Answers(("0 .", "10 mx.a.test.")), "a.test"))
    assert mixed.status == Status.ERROR and hosts == []
    assert "RFC 7505" in (mixed.why or "")


def test_spf_modifier_given_twice_is_a_syntax_issue() -> None:
    """No DNS is needed: both redirects name a sender-dependent macro."""
    top = _live("TXT", "v=spf1 redirect=%{l}.a.test redirect=%{l}.b.test")
    resolver = Resolver(("127.0.0.1", 9), timeout=0.1)
    result = asyncio.run(walk(resolver, "a.test", top))
    (issue,) = result.issues
    assert "redirect= appears more than once" in issue.message


def test_spf_void_lookups_count_per_address_family() -> None:
    """Three `a` terms on names with only IPv6 addresses: a receiver
    checking an IPv4 sender makes three void lookups (RFC 7208 4.6.4)."""

    class SixOnly(Resolver):
        def __init__(self) -> None:
            super().__init__(("127.0.0.1", 9), timeout=0.1)

        async def addresses(self, name: str) -> tuple[Lookup, Lookup]:
            return (
                Lookup(name, "A", Outcome.NODATA),
                Lookup(name, "AAAA", Outcome.ANSWER, ("2001:db8::1",)),
            )

    top = _live("TXT", "v=spf1 a:h1.a.test a:h2.a.test a:h3.a.test -all")
    result = asyncio.run(walk(SixOnly(), "a.test", top))
    assert (result.void_v4, result.void_v6, result.void_lookups) == (3, 0, 3)
