"""Properties over many inputs: TXT round trips, SPF counts match the text."""

from __future__ import annotations

import dns.rdata
import dns.rdataclass
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.dns import spf_lookup_count
from mailbridge.dns.record import quote_txt, split_txt, unquote_txt
from mailbridge.dns.spf import spf_terms
from tests.dns.helpers import make_spec

LOOKUP_PREFIXES = ("include:", "a:", "mx:", "exists:", "redirect=")
names = st.from_regex(r"[a-z][a-z0-9]{0,8}\.example\.(com|net)", fullmatch=True)


@given(st.text(max_size=1200))
@settings(max_examples=200, deadline=None)
def test_any_text_survives_split_quote_and_dnspython(text: str) -> None:
    strings = split_txt(text)
    assert all(len(s.encode()) <= 255 for s in strings)
    rdata = quote_txt(strings)
    parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, rdata)
    wire = b"".join(parsed.strings)  # type: ignore[attr-defined]
    assert wire.decode("utf-8") == text
    assert "".join(unquote_txt(rdata)) == text


@given(
    include=st.lists(names, max_size=4),
    a=st.lists(names, max_size=3),
    mx=st.lists(names, max_size=3),
    exists=st.lists(names, max_size=2),
    ptr=st.booleans(),
    redirect=st.none() | names,
    mail_host=st.booleans(),
)
@settings(max_examples=50, deadline=None)
def test_lookup_count_matches_the_written_terms(
    include: list[str],
    a: list[str],
    mx: list[str],
    exists: list[str],
    ptr: bool,
    redirect: str | None,
    mail_host: bool,
) -> None:
    spf = {
        "include": include,
        "a": a,
        "mx": mx,
        "exists": exists,
        "ptr": ptr,
        "redirect": redirect,
        "mail_host": mail_host,
    }
    spec = make_spec(spf=spf)
    terms = spf_terms(spec)
    written = sum(t.startswith(LOOKUP_PREFIXES) or t == "ptr" for t in terms)
    assert spf_lookup_count(spec.spf) == written
    assert terms[-1].startswith("redirect=") == (redirect is not None)
    assert sum(t.endswith("all") for t in terms) == (redirect is None)
