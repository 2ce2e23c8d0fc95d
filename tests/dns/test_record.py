"""The record model: TXT splitting and quoting, text and JSON forms."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from mailbridge.dns.record import (
    Level,
    Record,
    RecordType,
    quote_txt,
    split_txt,
    unquote_txt,
)


def _parse_txt(rdata: str) -> list[bytes]:
    parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, rdata)
    return list(parsed.strings)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    [
        "v=spf1 -all",
        'a "quoted" word and a \\ backslash',
        "x" * 600,
        "é" * 200,
        "tab\there; semi;colon",
    ],
)
def test_quoted_txt_reads_back_the_same_in_dnspython(text: str) -> None:
    strings = split_txt(text)
    assert all(len(s.encode()) <= 255 for s in strings)
    rdata = quote_txt(strings)
    assert _parse_txt(rdata) == [s.encode() for s in strings]
    assert unquote_txt(rdata) == strings
    assert "".join(strings) == text


def test_split_never_cuts_a_multibyte_character() -> None:
    strings = split_txt("a" + "é" * 200)
    assert [len(s.encode()) for s in strings] == [255, 146]


def test_record_text_and_json() -> None:
    record = Record.txt(
        "_dmarc.example.org", 300, "v=DMARC1; p=reject", "why", Level.REQUIRED
    )
    assert record.to_text() == '_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"'
    data = record.to_json()
    assert data["values"] == ['"v=DMARC1; p=reject"']
    assert data["texts"] == ["v=DMARC1; p=reject"]
    assert data["level"] == "required"
    assert data["placeholder"] is False


def test_strings_only_for_txt() -> None:
    record = Record(
        "example.org", RecordType.MX, 60, ("0 .",), "null MX", Level.OPTIONAL
    )
    assert "texts" not in record.to_json()
    with pytest.raises(TypeError):
        record.strings()


def test_every_line_of_to_text_parses() -> None:
    record = Record(
        "example.org",
        RecordType.MX,
        60,
        ("10 a.example.org.", "20 b.example.org."),
        "two MX",
        Level.REQUIRED,
    )
    lines = record.to_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        owner, ttl, _cls, rtype, rdata = line.split(" ", 4)
        assert dns.name.from_text(owner).is_absolute()
        assert int(ttl) == 60
        parsed = dns.rdata.from_text(dns.rdataclass.IN, rtype, rdata)
        assert parsed.exchange.is_absolute()  # type: ignore[attr-defined]
