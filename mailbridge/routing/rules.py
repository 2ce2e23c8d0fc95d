"""The registry of check rules, and the rules that read one value at a time.

Rule ids are stable: the CLI report, its JSON and the Pulumi policy pack
all name findings by them. The value rules take plain values (bits,
policy, TLS mode) so the policy pack can run them on resources too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from mailbridge.dns.spf import SPF_LOOKUP_LIMIT, spf_lookup_count
from mailbridge.errors import FieldPath, Problem, Severity
from mailbridge.spec.models import DomainSpec, Limits

# A finding is a Problem whose `rule` names an entry of RULES.
Finding = Problem

MIN_RSA_BITS = 2048
DEFAULT_MAX_FANOUT: int = Limits.model_fields["max_fanout"].default
DEFAULT_MAX_CHAIN: int = Limits.model_fields["max_chain"].default


@dataclass(frozen=True)
class Rule:
    """One check: a stable id, its usual severity and what it catches."""

    id: str
    severity: Severity
    summary: str

    def finding(
        self,
        message: str,
        *,
        path: FieldPath = (),
        expected: str | None = None,
        found: str | None = None,
        fix: str | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        return Problem(
            message,
            path=path,
            expected=expected,
            found=found,
            fix=fix,
            severity=severity or self.severity,
            rule=self.id,
        )


_ALL = [
    Rule("loop", Severity.ERROR, "mail forwarded in a circle, across any domains"),
    Rule("self-alias", Severity.ERROR, "an alias whose only target is itself"),
    Rule("fanout", Severity.ERROR, "an alias with more targets than the limit"),
    Rule("chain-length", Severity.ERROR, "a forwarding chain longer than the limit"),
    Rule(
        "duplicate-path",
        Severity.ERROR,
        "an inbox reached by a fetch job and a forwarder, neither marked backup",
    ),
    Rule("no-route", Severity.WARNING, "a target of a loaded domain that bounces"),
    Rule("spf-lookups", Severity.ERROR, "an SPF record over the DNS lookup limit"),
    Rule("spf-all", Severity.ERROR, "an SPF record that lets anyone send (+all)"),
    Rule("dmarc-no-rua", Severity.WARNING, "DMARC p=none without report address"),
    Rule("dkim-weak", Severity.ERROR, "an RSA DKIM key under 2048 bits"),
    Rule("fetch-tls", Severity.ERROR, "a fetch job that logs in without TLS"),
]

RULES: dict[str, Rule] = {rule.id: rule for rule in _ALL}


def spf_lookups(domain: str, count: int) -> Finding | None:
    """SPF terms that need DNS lookups, over RFC 7208's limit of 10."""
    if count <= SPF_LOOKUP_LIMIT:
        return None
    return RULES["spf-lookups"].finding(
        f"the SPF record of {domain} needs {count} DNS lookups, over the "
        f"limit of {SPF_LOOKUP_LIMIT} (RFC 7208 section 4.6.4): receivers "
        "fail every message",
        found=f"{count} lookup terms (include, a, mx, ptr, exists, redirect)",
        expected=f"at most {SPF_LOOKUP_LIMIT}",
        fix="write the mail host's addresses as ip4/ip6 instead of a or mx, "
        "or drop includes of services that do not send for this domain",
    )


def spf_all(domain: str, qualifier: str) -> Finding | None:
    """`+all` authorizes every host on the internet (RFC 7208 section 5.1).

    `?all` says nothing either way, so it only warns.
    """
    if qualifier not in ("+all", "?all"):
        return None
    rule = RULES["spf-all"]
    return rule.finding(
        f"the SPF record of {domain} ends in {qualifier}: "
        + (
            "every host may send as this domain"
            if qualifier == "+all"
            else "receivers learn nothing about other hosts"
        ),
        found=f"all: {qualifier}",
        expected='all: "-all" (or "~all" while testing)',
        fix='set spf.all to "-all" once every sender is listed',
        severity=None if qualifier == "+all" else Severity.WARNING,
    )


def dmarc_no_rua(domain: str, policy: str, rua: Sequence[str]) -> Finding | None:
    """p=none only makes sense while reports arrive (RFC 7489 section 6.3)."""
    if policy != "none" or rua:
        return None
    return RULES["dmarc-no-rua"].finding(
        f"DMARC of {domain} is p=none without rua: nothing is enforced and no "
        "aggregate reports arrive, so the policy does nothing",
        found="policy: none, no rua",
        expected="rua: [mailto:...] while the policy is none",
        fix='add `rua: ["mailto:dmarc@<domain>"]`, or move to policy: quarantine',
    )


def dkim_weak(selector: str, algorithm: str, bits: int) -> Finding | None:
    """RSA keys under 2048 bits are refused by verifiers (RFC 8301 3.2)."""
    if algorithm != "rsa" or bits >= MIN_RSA_BITS:
        return None
    return RULES["dkim-weak"].finding(
        f"DKIM key {selector} is RSA {bits} bits, under {MIN_RSA_BITS}",
        found=f"{bits} bits",
        expected=f"at least {MIN_RSA_BITS} bits (RFC 8301)",
        fix="publish a new selector with bits: 2048, or use ed25519 "
        "alongside an RSA key",
    )


def fetch_tls(job: str, host: str, tls: str, insecure: bool) -> Finding | None:
    """A POP3 login without TLS sends the password in clear text.

    Allowed only with `insecure: true` (a test server), and then a warning.
    """
    if tls != "none":
        return None
    rule = RULES["fetch-tls"]
    if insecure:
        return rule.finding(
            f"fetch job {job} logs in to {host} without TLS (insecure: true)",
            found="tls: none, insecure: true",
            fix="use tls: implicit or starttls outside a test set-up",
            severity=Severity.WARNING,
        )
    return rule.finding(
        f"fetch job {job} would log in to {host} without TLS",
        found="tls: none",
        expected="tls: implicit or tls: starttls",
        fix="use TLS; only for a test server, add `insecure: true`",
    )


def spec_findings(spec: DomainSpec) -> Iterator[Finding]:
    """Findings of the rules that read one spec's own values."""
    found = spf_lookups(spec.domain, spf_lookup_count(spec.spf))
    if found is not None:
        yield replace(found, path=("spf",))
    found = spf_all(spec.domain, spec.spf.all)
    if found is not None:
        yield replace(found, path=("spf", "all"))
    found = dmarc_no_rua(spec.domain, spec.dmarc.policy, spec.dmarc.rua)
    if found is not None:
        yield replace(found, path=("dmarc", "policy"))
    for i, sel in enumerate(spec.dkim.selectors if spec.dkim else []):
        found = dkim_weak(sel.name, sel.algorithm, sel.bits)
        if found is not None:
            yield replace(found, path=("dkim", "selectors", i, "bits"))
    for i, job in enumerate(spec.fetch):
        pop3 = job.pop3
        found = fetch_tls(job.name, pop3.host, pop3.tls, pop3.insecure)
        if found is not None:
            yield replace(found, path=("fetch", i, "pop3", "tls"))


@dataclass(frozen=True)
class SpecFinding:
    """A finding and the domain whose spec it points into (None: no spec)."""

    domain: str | None
    finding: Finding
