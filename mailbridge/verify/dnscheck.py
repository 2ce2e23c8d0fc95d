"""DNS checks: records against the spec, SPF limits, DMARC, PTR, null MX."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Sequence

from mailbridge.dns.record import Record
from mailbridge.verify import spf
from mailbridge.verify.compare import check_id, compare
from mailbridge.verify.findings import Finding, Status
from mailbridge.verify.lookup import Lookup, Outcome, Resolver, absolute
from mailbridge.verify.tags import parse_tags

_RETRY = "retry; if it persists, check the name servers of the zone"


async def check_records(
    resolver: Resolver, domain: str, records: Sequence[Record], no_mail: Sequence[str]
) -> list[Finding]:
    """One finding per expected record set, all queried at once."""
    lookups = await asyncio.gather(
        *(resolver.query(r.name, str(r.type)) for r in records)
    )
    names = frozenset(no_mail)
    return [
        compare(record, live, check_id(record, domain, names))
        for record, live in zip(records, lookups, strict=True)
    ]


def _unknown(check: str, subject: str, lookup: Lookup, why: str) -> Finding:
    return Finding(
        check=check,
        subject=subject,
        status=Status.UNKNOWN,
        found=lookup.describe(),
        why=why,
        fix=_RETRY,
    )


async def check_mx(resolver: Resolver, domain: str) -> tuple[Finding, list[str]]:
    """Without a spec: the domain must have MX records, and not a null MX."""
    lookup = await resolver.query(domain, "MX")
    subject = f"{domain} MX"
    why = "other servers deliver mail for the domain to its MX hosts"
    if lookup.outcome.is_unknown:
        return _unknown("mx", subject, lookup, why), []
    records = sorted(
        (int(v.split()[0]), v.split()[-1]) for v in lookup.values if len(v.split()) == 2
    )
    if any(host == "." for _, host in records) and len(records) > 1:
        finding = Finding(
            check="mx",
            subject=subject,
            status=Status.ERROR,
            expected="a null MX (`0 .`) alone, or MX hosts without it",
            found=lookup.describe(),
            why="a null MX says the domain takes no mail; other MX records "
            "beside it make receivers' behaviour undefined (RFC 7505 section 3)",
            fix="remove the `0 .` record if the domain takes mail, else the others",
        )
        return finding, []
    # Lowest preference first: the primary MX is the one to check further.
    hosts = [host for _, host in records if host != "."]
    if not hosts:
        finding = Finding(
            check="mx",
            subject=subject,
            status=Status.ERROR,
            expected="at least one MX host",
            found=lookup.describe(),
            why=why,
            fix=f"publish `{domain}. IN MX 10 <mail host>.`",
        )
        return finding, []
    ok = Finding(check="mx", subject=subject, status=Status.OK, found=lookup.describe())
    return ok, [absolute(h).rstrip(".") for h in hosts]


async def check_spf(
    resolver: Resolver, domain: str, *, report_missing: bool
) -> list[Finding]:
    """Walk the live SPF tree: lookup and void-lookup limits, bad includes."""
    top = await resolver.query(domain, "TXT")
    subject = f"{domain} TXT"
    why = (
        "receivers stop at 10 DNS lookups or 2 void lookups and then fail "
        "SPF for every message (RFC 7208 section 4.6.4)"
    )
    if top.outcome.is_unknown:
        return [_unknown("spf", subject, top, why)]
    result = await spf.walk(resolver, domain, top)
    findings: list[Finding] = []
    for issue in result.issues:
        top_missing = issue.kind == spf.IssueKind.NO_RECORD and issue.domain == domain
        if top_missing and not report_missing:
            continue
        findings.append(_spf_issue(domain, issue))
    if result.record is None:
        return findings
    findings.append(
        _limit(
            "spf.lookups",
            subject,
            result.lookups,
            spf.MAX_LOOKUPS,
            result,
            why,
            "flatten includes into ip4/ip6 terms or drop services that no "
            "longer send for the domain",
        )
    )
    findings.append(
        _limit(
            "spf.void-lookups",
            subject,
            result.void_lookups,
            spf.MAX_VOID_LOOKUPS,
            result,
            why,
            "remove include, a, mx or exists terms that name nothing",
        )
    )
    return findings


def _limit(
    check: str,
    subject: str,
    count: int,
    limit: int,
    result: spf.Walk,
    why: str,
    fix: str,
) -> Finding:
    hidden = [m for m in result.macros if m.lower().startswith(("include", "redirect"))]
    if count > limit:
        status = Status.ERROR
    elif not result.complete:
        status = Status.UNKNOWN
        fix = "retry; some lookups got no answer: " + ", ".join(result.unresolved)
    elif hidden:
        # What such an include brings depends on each sender: its lookups
        # cannot be counted here, so the record cannot be called within limits.
        status = Status.WARNING
        fix = (
            "count the lookups behind "
            + ", ".join(hidden)
            + " for your senders, or name the included domain without macros"
        )
    else:
        status = Status.OK
    found = str(count) if result.complete and not hidden else f"at least {count}"
    if result.macros:
        found += (
            f" (not followed, they depend on the sender: {', '.join(result.macros)})"
        )
    return Finding(
        check=check,
        subject=subject,
        status=status,
        expected=f"at most {limit}",
        found=found,
        why=why,
        fix=None if status == Status.OK else fix,
        detail={"count": count},
    )


_SPF_FIX = {
    spf.IssueKind.NO_RECORD: "publish one `v=spf1 ... -all` record at that name, "
    "or drop the term that names it",
    spf.IssueKind.MULTIPLE: "merge the SPF records into one",
    spf.IssueKind.SYNTAX: "fix or remove the term",
    spf.IssueKind.LOOP: "remove the include or redirect that points back",
    spf.IssueKind.MX_HOSTS: "use ip4/ip6 terms instead of mx for that domain",
    spf.IssueKind.PTR: "replace ptr with ip4/ip6 terms",
}


def _spf_issue(domain: str, issue: spf.Issue) -> Finding:
    status = Status.WARNING if issue.kind == spf.IssueKind.PTR else Status.ERROR
    return Finding(
        check=f"spf.{issue.kind}",
        subject=f"{issue.domain} TXT",
        status=status,
        expected="one valid SPF record, every term resolvable",
        found=issue.message,
        why=f"a broken SPF tree makes SPF for {domain} fail (permerror)",
        fix=_SPF_FIX[issue.kind],
    )


_DMARC_VALUES = {
    "p": ("none", "quarantine", "reject"),
    "sp": ("none", "quarantine", "reject"),
    "adkim": ("r", "s"),
    "aspf": ("r", "s"),
}


def dmarc_errors(text: str) -> list[str]:
    """What is wrong with a DMARC record text (RFC 7489 section 6.3)."""
    tags = parse_tags(text)
    if tags is None:
        return ["not a list of tag=value pairs (or a tag repeats)"]
    errors: list[str] = []
    if next(iter(tags), None) != "v" or tags["v"] != "DMARC1":
        errors.append("must start with v=DMARC1")
    if "p" not in tags:
        errors.append("the p= tag is required")
    for name, allowed in _DMARC_VALUES.items():
        # Values compare without regard to case (RFC 7489's ABNF strings).
        if name in tags and tags[name].lower() not in allowed:
            errors.append(f"{name}={tags[name]} is not one of {', '.join(allowed)}")
    pct = tags.get("pct")
    if pct is not None and not (re.fullmatch("[0-9]{1,3}", pct) and int(pct) <= 100):
        errors.append(f"pct={pct} is not 0 to 100")
    for name in ("rua", "ruf"):
        for uri in filter(None, tags.get(name, "").split(",")):
            if not uri.lower().startswith("mailto:") or "@" not in uri:
                errors.append(f"{name} URI {uri!r} is not mailto:address")
    # Tags this check does not know (np=, psd=, t= of newer drafts) are
    # ignored, as receivers must ignore them (RFC 7489 section 6.3).
    return errors


def report_domains(text: str, domain: str) -> list[str]:
    """Domains of rua/ruf addresses outside `domain` (RFC 7489 section 7.1)."""
    tags = parse_tags(text) or {}
    found: list[str] = []
    for name in ("rua", "ruf"):
        for uri in filter(None, tags.get(name, "").split(",")):
            target = uri.split("!", 1)[0].rsplit("@", 1)[-1].lower().rstrip(".")
            # The domain itself, a name below it, or a parent of it (a
            # subdomain reporting to its organization's address) need no
            # authorization record.
            inside = (
                target == domain
                or target.endswith("." + domain)
                or ("." in target and domain.endswith("." + target))
            )
            if "@" in uri and not inside and target not in found:
                found.append(target)
    return found


async def check_dmarc(resolver: Resolver, domain: str) -> list[Finding]:
    """DMARC syntax, and the report authorization of other domains."""
    name = f"_dmarc.{domain}"
    lookup = await resolver.query(name, "TXT")
    why = "receivers apply the policy and send reports only for a valid record"
    if lookup.outcome.is_unknown:
        return [_unknown("dmarc.syntax", f"{name} TXT", lookup, why)]
    records = [v for v in lookup.values if v.replace(" ", "").startswith("v=DMARC1")]
    if len(records) != 1:
        return [
            Finding(
                check="dmarc.syntax",
                subject=f"{name} TXT",
                status=Status.ERROR,
                expected="exactly one v=DMARC1 record",
                found=lookup.describe(),
                why=why + "; Gmail requires DMARC of bulk senders",
                fix=f"publish one record such as `{name}. IN TXT "
                '"v=DMARC1; p=quarantine"`',
            )
        ]
    text = records[0]
    errors = dmarc_errors(text)
    findings = [
        Finding(
            check="dmarc.syntax",
            subject=f"{name} TXT",
            status=Status.ERROR if errors else Status.OK,
            expected="a valid v=DMARC1 record (RFC 7489 section 6.3)",
            found="; ".join(errors) if errors else text,
            why=why,
            fix="correct the record as `mailbridge records SPEC` prints it"
            if errors
            else None,
        )
    ]
    others = report_domains(text, domain)
    auths = await asyncio.gather(
        *(resolver.query(f"{domain}._report._dmarc.{o}", "TXT") for o in others)
    )
    for other, auth in zip(others, auths, strict=True):
        findings.append(_report_auth(domain, other, auth))
    return findings


def _report_auth(domain: str, other: str, auth: Lookup) -> Finding:
    subject = f"{auth.name} TXT"
    why = (
        f"receivers send reports to {other} only if {other} agrees to take "
        f"reports for {domain} (RFC 7489 section 7.1)"
    )
    if auth.outcome.is_unknown:
        return _unknown("dmarc.report-auth", subject, auth, why)
    ok = any(v.replace(" ", "").startswith("v=DMARC1") for v in auth.values)
    return Finding(
        check="dmarc.report-auth",
        subject=subject,
        status=Status.OK if ok else Status.WARNING,
        expected='"v=DMARC1"',
        found=auth.describe(),
        why=why,
        fix=None if ok else f'have {other} publish `{auth.name}. IN TXT "v=DMARC1"`',
    )


async def check_ptr(
    resolver: Resolver, hostname: str, addresses: Sequence[str]
) -> list[Finding]:
    """Each address of the mail host points back to its name, and forward again.

    Gmail and most large receivers refuse or mark mail from an address
    whose PTR is missing or does not resolve back to it.
    """
    lookups = await asyncio.gather(*(resolver.ptr(a) for a in addresses))
    findings = []
    for address, lookup in zip(addresses, lookups, strict=True):
        findings.append(await _ptr(resolver, hostname, address, lookup))
    return findings


async def _ptr(
    resolver: Resolver, hostname: str, address: str, lookup: Lookup
) -> Finding:
    subject = f"{lookup.name} PTR"
    why = (
        "receivers such as Gmail reject or mark mail from an address without "
        "a PTR record that resolves back to it"
    )
    fix = (
        f"ask the owner of {address} (the hosting provider) to set its reverse "
        f"name to {hostname}"
    )
    if lookup.outcome.is_unknown:
        return _unknown("ptr", subject, lookup, why)
    names = [absolute(v).rstrip(".") for v in lookup.values]
    if hostname not in names:
        return Finding(
            check="ptr",
            subject=subject,
            status=Status.ERROR,
            expected=hostname,
            found=lookup.describe(),
            why=why,
            fix=fix,
        )
    family = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
    forward = await resolver.query(hostname, family)
    if forward.outcome.is_unknown:
        return _unknown("ptr", subject, forward, why)
    back = {str(ipaddress.ip_address(v)) for v in forward.values}
    if forward.outcome != Outcome.ANSWER or address not in back:
        return Finding(
            check="ptr",
            subject=subject,
            status=Status.ERROR,
            expected=f"{hostname} {family} {address}",
            found=forward.describe(),
            why=why,
            fix=f"publish {hostname} {family} {address}",
        )
    return Finding(
        check="ptr",
        subject=subject,
        status=Status.OK,
        expected=hostname,
        found=hostname,
    )
