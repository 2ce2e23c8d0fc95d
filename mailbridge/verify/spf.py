"""Walk a live SPF record: every include and redirect, counting DNS lookups.

RFC 7208 section 4.6.4 caps the terms that cause DNS lookups (include, a,
mx, ptr, exists, redirect) at 10 per evaluation and the "void" lookups
(NXDOMAIN or an empty answer) at 2; past either, receivers return permerror
and SPF fails for everyone. An `mx` mechanism may name at most 10 hosts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mailbridge.verify.lookup import Lookup, Outcome, Resolver

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_HOSTS = 10
# Stop walking a broken tree after this many queries: the verdict is clear.
_QUERY_CAP = 60

_LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists", "redirect")


class IssueKind(enum.StrEnum):
    NO_RECORD = "no-record"
    MULTIPLE = "multiple-records"
    SYNTAX = "syntax"
    LOOP = "loop"
    MX_HOSTS = "mx-hosts"
    PTR = "ptr"


@dataclass(frozen=True)
class Issue:
    kind: IssueKind
    domain: str
    message: str


@dataclass(frozen=True)
class Term:
    qualifier: str
    name: str
    value: str | None
    is_modifier: bool

    @property
    def text(self) -> str:
        sep = "=" if self.is_modifier else ":"
        tail = f"{sep}{self.value}" if self.value is not None else ""
        return f"{self.qualifier if self.qualifier != '+' else ''}{self.name}{tail}"


def spf_records(lookup: Lookup) -> list[str]:
    """The TXT values of `lookup` that are SPF records (`v=spf1` first)."""
    return [
        v
        for v in lookup.values
        if v.lower() == "v=spf1" or v.lower().startswith("v=spf1 ")
    ]


def parse(record: str) -> tuple[list[Term], list[str]]:
    """Terms of a `v=spf1 ...` record, and the text of each bad term."""
    terms: list[Term] = []
    bad: list[str] = []
    for word in record.split()[1:]:
        qualifier = "+"
        if word[0] in "+-~?":
            qualifier, word = word[0], word[1:]
        name, sep, value = _split_term(word)
        if sep == "=":
            terms.append(Term("+", name.lower(), value, is_modifier=True))
            continue
        lname = name.lower()
        known = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
        if lname not in known:
            bad.append(word)
            continue
        needs_value = lname in ("include", "exists", "ip4", "ip6")
        if needs_value and not value:
            bad.append(word)
            continue
        terms.append(Term(qualifier, lname, value or None, is_modifier=False))
    return terms, bad


def _split_term(word: str) -> tuple[str, str, str]:
    for index, char in enumerate(word):
        if char in ":=/":
            if char == "/":
                return word[:index], ":", word[index:]
            return word[:index], char, word[index + 1 :]
    return word, "", ""


def _target(term: Term, domain: str) -> str | None:
    """The domain a mechanism queries; None when it holds macros (RFC 7208 7)."""
    value = term.value or ""
    if value.startswith("/"):
        value = ""
    value = value.split("/", 1)[0]
    # %{d} is the domain being checked, known here; other macros name the
    # sender or its address, which only a receiver knows.
    value = value.replace("%{d}", domain).replace("%{D}", domain)
    if "%" in value:
        return None
    return (value or domain).rstrip(".").lower()


@dataclass
class Walk:
    """What a walk of the SPF tree found."""

    domain: str
    record: str | None = None
    lookups: int = 0
    # Void lookups as a receiver checking an IPv4 sender, and an IPv6 one,
    # counts them: an `a` term asks for A or AAAA, not both.
    void_v4: int = 0
    void_v6: int = 0
    issues: list[Issue] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    macros: list[str] = field(default_factory=list)
    trail: list[str] = field(default_factory=list)
    queries: int = 0

    @property
    def void_lookups(self) -> int:
        """The void lookups of the worse of the two kinds of sender."""
        return max(self.void_v4, self.void_v6)

    @property
    def complete(self) -> bool:
        """True when every lookup got an answer, so the counts are exact."""
        return not self.unresolved


async def walk(resolver: Resolver, domain: str, top: Lookup) -> Walk:
    """Walk the SPF record found in `top` (the TXT lookup of `domain`)."""
    result = Walk(domain=domain)
    records = spf_records(top)
    if not records:
        result.issues.append(Issue(IssueKind.NO_RECORD, domain, "no SPF record"))
        return result
    if len(records) > 1:
        result.issues.append(
            Issue(IssueKind.MULTIPLE, domain, f"{len(records)} SPF records")
        )
        return result
    result.record = records[0]
    await _walk_record(resolver, result, domain, records[0], [domain])
    return result


async def _walk_record(
    resolver: Resolver, result: Walk, domain: str, record: str, path: list[str]
) -> None:
    terms, bad = parse(record)
    for word in bad:
        result.issues.append(
            Issue(IssueKind.SYNTAX, domain, f"unknown or incomplete term {word!r}")
        )
    for name in ("redirect", "exp"):
        if sum(t.name == name and t.is_modifier for t in terms) > 1:
            result.issues.append(
                Issue(
                    IssueKind.SYNTAX,
                    domain,
                    f"{name}= appears more than once; receivers fail SPF for "
                    f"every message (RFC 7208 section 6)",
                )
            )
    has_all = any(t.name == "all" and not t.is_modifier for t in terms)
    for term in terms:
        if term.name not in _LOOKUP_TERMS:
            continue
        if term.name == "redirect" and (not term.is_modifier or has_all):
            # RFC 7208 section 6.1: redirect is ignored when `all` is present.
            continue
        result.lookups += 1
        result.trail.append(f"{' > '.join(path)}: {term.text}")
        if result.queries >= _QUERY_CAP:
            continue
        target = _target(term, domain)
        if target is None:
            # Its target depends on the sender (RFC 7208 section 7): the term
            # counts as one lookup, but nothing behind it can be followed.
            result.macros.append(term.text)
            continue
        if term.name in ("include", "redirect"):
            await _follow(resolver, result, target, term, path)
        elif term.name == "a":
            a, aaaa = await resolver.addresses(target)
            result.queries += 2
            _count(result, term, a, aaaa)
        elif term.name == "mx":
            await _mx(resolver, result, target, term)
        elif term.name == "exists":
            result.queries += 1
            _count(result, term, await resolver.query(target, "A"))
        elif term.name == "ptr":
            result.issues.append(
                Issue(
                    IssueKind.PTR,
                    domain,
                    "the ptr mechanism is slow and unreliable (RFC 7208 5.5)",
                )
            )


def _count(result: Walk, term: Term, *lookups: Lookup) -> None:
    """Note one term's lookups: one lookup for both kinds of sender, or the
    A and the AAAA lookup of an `a` term, each for its own kind."""
    if any(lookup.outcome.is_unknown for lookup in lookups):
        result.unresolved.append(f"{term.text} ({lookups[0].error or 'no answer'})")
        return
    v4, v6 = (lookups[0], lookups[-1])
    result.void_v4 += v4.outcome.is_void
    result.void_v6 += v6.outcome.is_void


async def _follow(
    resolver: Resolver, result: Walk, target: str, term: Term, path: list[str]
) -> None:
    if target in path:
        result.issues.append(
            Issue(IssueKind.LOOP, target, f"{' > '.join([*path, target])} loops")
        )
        return
    lookup = await resolver.query(target, "TXT")
    result.queries += 1
    _count(result, term, lookup)
    if lookup.outcome.is_unknown:
        return
    records = spf_records(lookup)
    if len(records) != 1:
        kind = IssueKind.NO_RECORD if not records else IssueKind.MULTIPLE
        count = "no SPF record" if not records else f"{len(records)} SPF records"
        result.issues.append(
            Issue(kind, target, f"{term.text} names {target}, which has {count}")
        )
        return
    await _walk_record(resolver, result, target, records[0], [*path, target])


async def _mx(resolver: Resolver, result: Walk, target: str, term: Term) -> None:
    lookup = await resolver.query(target, "MX")
    result.queries += 1
    _count(result, term, lookup)
    if lookup.outcome != Outcome.ANSWER:
        return
    hosts = [value.split()[-1] for value in lookup.values]
    if len(hosts) > MAX_MX_HOSTS:
        result.issues.append(
            Issue(
                IssueKind.MX_HOSTS,
                target,
                f"{term.text} names {len(hosts)} MX hosts; at most "
                f"{MAX_MX_HOSTS} are looked up",
            )
        )
