"""Compare one expected record set with what the live DNS serves."""

from __future__ import annotations

import ipaddress

from mailbridge.dns.record import Level, Record, RecordType
from mailbridge.verify.findings import Finding, Status
from mailbridge.verify.lookup import Lookup, Outcome, absolute
from mailbridge.verify.tags import parse_tags

_LEVEL_STATUS = {
    Level.REQUIRED: Status.ERROR,
    Level.RECOMMENDED: Status.WARNING,
    Level.OPTIONAL: Status.WARNING,
}


def check_id(record: Record, domain: str, no_mail: frozenset[str]) -> str:
    """The check a record belongs to, from its name and type."""
    name = record.name
    if "._domainkey." in name:
        return "dkim." + name.split(".", 1)[0]
    if name in no_mail or (name.startswith("_dmarc.") and name[7:] in no_mail):
        return "no-mail"
    if name.startswith("_dmarc."):
        return "dmarc"
    if name.startswith("_mta-sts.") or name.startswith("mta-sts."):
        return "mta-sts"
    if name.startswith("_smtp._tls."):
        return "tls-rpt"
    if record.type == RecordType.MX:
        return "mx"
    if record.type == RecordType.TXT and name == domain:
        return "spf"
    if record.type in (RecordType.A, RecordType.AAAA):
        return "mail-host"
    return "client-setup"


def _normal(rtype: RecordType, value: str) -> str:
    """One value in a form where equal records compare equal."""
    if rtype in (RecordType.A, RecordType.AAAA):
        return str(ipaddress.ip_address(value))
    if rtype == RecordType.CNAME:
        return absolute(value)
    if rtype in (RecordType.MX, RecordType.SRV):
        *numbers, target = value.split()
        return " ".join([*(str(int(n)) for n in numbers), absolute(target)])
    return " ".join(value.split()).lower()


def _tag_text(text: str) -> str:
    """A tag-list text with spaces around `;` and `=` removed, for comparing."""
    if text.lower().startswith("v=spf1"):
        return " ".join(text.lower().split())
    tags = parse_tags(text)
    if tags is None:
        return " ".join(text.split())
    if tags.get("v", "DKIM1") == "DKIM1" and "p" in tags:
        # RFC 6376 section 3.6.1: only the key and its type decide; v= may
        # be left out, k= is rsa when absent, and tags such as t= or n= do
        # not change the key.
        return f"k={tags.get('k', 'rsa')};p={tags.get('p', '')}"
    return ";".join(f"{k}={v}" for k, v in tags.items())


def _version(text: str) -> str:
    """`v=spf1`, `v=DMARC1`...: which kind of TXT record this is."""
    head = text.strip().split(";", 1)[0].split(" ", 1)[0]
    return head.lower().replace(" ", "") if head.lower().startswith("v=") else ""


_PLACEHOLDER_WHY = (
    "receivers check DKIM signatures against the key published here (RFC 6376)"
)


def compare(record: Record, live: Lookup, check: str) -> Finding:
    """A finding for one record set: ok, drifted, missing or unknown."""
    subject = f"{record.name} {record.type}"
    fix = f"publish exactly: {record.to_text()}"
    bad = _LEVEL_STATUS[record.level]
    # A placeholder's reason tells how to make a key file; to verify, what
    # matters is that receivers check signatures against this record.
    why = _PLACEHOLDER_WHY if record.placeholder else record.reason
    base = {"check": check, "subject": subject, "why": why}
    if record.type == RecordType.TXT:
        expected_texts = record.texts()
        expected = " | ".join(expected_texts)
    else:
        expected_texts = list(record.values)
        expected = "; ".join(record.values)
    if live.outcome.is_unknown:
        return Finding(
            status=Status.UNKNOWN,
            expected=expected,
            found=live.describe(),
            fix="retry; if it persists, check the name servers of the zone",
            **base,
        )
    if live.outcome != Outcome.ANSWER:
        return Finding(
            status=bad, expected=expected, found=live.describe(), fix=fix, **base
        )
    if record.type == RecordType.TXT:
        return _compare_txt(record, expected_texts, live, bad, fix, base)
    want = sorted(_normal(record.type, v) for v in record.values)
    try:
        have = sorted(_normal(record.type, v) for v in live.values)
    except ValueError:
        have = sorted(live.values)
    status = Status.OK if want == have else bad
    return Finding(
        status=status, expected=expected, found=live.describe(), fix=fix, **base
    )


def _compare_txt(
    record: Record,
    expected_texts: list[str],
    live: Lookup,
    bad: Status,
    fix: str,
    base: dict[str, str],
) -> Finding:
    kinds = {_version(text) for text in expected_texts}
    # Other TXT records at the same name (site verification...) are no concern.
    relevant = [v for v in live.values if _version(v) in kinds] or list(live.values)
    found = " | ".join(relevant)
    expected = " | ".join(expected_texts)
    if record.placeholder:
        return _compare_placeholder(record, relevant, bad, base, expected)
    want = sorted(_tag_text(t) for t in expected_texts)
    have = sorted(_tag_text(t) for t in relevant)
    if want == have:
        return Finding(status=Status.OK, expected=expected, found=found, **base)
    if len(relevant) > len(expected_texts) and set(want) <= set(have):
        return Finding(
            status=Status.ERROR,
            expected=expected,
            found=found,
            fix=f"delete the extra record; keep exactly: {record.to_text()}",
            **{**base, "why": f"{base['why']}; more than one record makes it void"},
        )
    return Finding(status=bad, expected=expected, found=found, fix=fix, **base)


def _compare_placeholder(
    record: Record, relevant: list[str], bad: Status, base: dict[str, str], want: str
) -> Finding:
    """No deployed key to compare with: a live key is all that can be checked."""
    keys = [parse_tags(t) or {} for t in relevant]
    published = [k for k in keys if k.get("p")]
    if not published:
        return Finding(
            status=bad,
            expected="a DKIM key record with a non-empty p=",
            found=" | ".join(relevant) or "nothing",
            fix="deploy the stack (`pulumi up` makes the key and publishes it); "
            "publishing by hand: `mailbridge records SPEC --generate-keys`, "
            "then publish its record",
            **base,
        )
    return Finding(
        status=Status.WARNING,
        expected="the deployed key (no key found to compare with)",
        found=" | ".join(relevant),
        fix="pass --keys DIR (the deployed key files) or "
        "--dkim-from-stack-output FILE (`pulumi stack output --json`)",
        **{
            **base,
            "why": "a published key that differs from the signing key "
            "makes every signature fail",
        },
    )
