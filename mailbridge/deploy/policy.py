"""The checks of `mailbridge check`, as the policy pack runs them on resources.

The MailDomain component carries its spec (and its peers' specs) as JSON
inputs; these functions rebuild the specs and return the findings of one
rule, phrased for a policy violation.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from mailbridge.errors import Severity, path_to_text
from mailbridge.routing import RULES, evaluate
from mailbridge.routing.rules import Finding, dkim_weak
from mailbridge.spec.models import DomainSpec

SPEC_PROP = "mailbridgeSpec"
PEERS_PROP = "mailbridgePeers"
DKIM_KEY_TYPE = "pulumi-python:dynamic/mailbridge:DkimKeyPair"


def _key(finding: Finding) -> tuple[str, str, str]:
    return (finding.rule, path_to_text(finding.path), finding.message)


@lru_cache(maxsize=32)
def domain_findings(
    spec_json: str, peers_json: tuple[str, ...] = ()
) -> tuple[tuple[str, Finding], ...]:
    """Findings that concern the stack's domain, as (domain, finding) pairs.

    Those of the domain itself, and those of a peer that show only together
    with this domain (a loop through both): a peer's own problems are its
    own stack's business.
    """
    spec = DomainSpec.model_validate_json(spec_json)
    peers = [DomainSpec.model_validate_json(p) for p in peers_json]
    found: list[tuple[str, Finding]] = []
    alone = {p.domain: {_key(f.finding) for f in evaluate([p])} for p in peers}
    for item in evaluate([spec, *peers]):
        domain = item.domain or spec.domain
        if domain == spec.domain or _key(item.finding) not in alone.get(domain, set()):
            found.append((domain, item.finding))
    return tuple(found)


def violation_text(domain: str, finding: Finding) -> str:
    """One violation message: where in which spec, what, and the fix."""
    where = f"{domain}: {path_to_text(finding.path)}"
    text = f"{where}: {finding.message}"
    if finding.fix:
        text += f" (fix: {finding.fix})"
    return text


def spec_violations(
    rule_id: str,
    spec_json: str,
    peers_json: Sequence[str] = (),
    severity: Severity | None = None,
) -> list[str]:
    """Messages for the findings of `rule_id` on a MailDomain's inputs.

    With `severity`, only findings of that severity count: a rule whose
    findings are usually errors may also warn (a fetch job without TLS that
    says `insecure: true`), and a warning must not block a deploy.
    """
    return [
        violation_text(domain, finding)
        for domain, finding in domain_findings(spec_json, tuple(peers_json))
        if finding.rule == rule_id and severity in (None, finding.severity)
    ]


# The advisory policy that shows the warnings of mandatory rules (a fetch job
# without TLS marked `insecure: true`, an SPF record ending in `?all`): a
# policy has one enforcement level, and a warning must not block a deploy.
WARNINGS_POLICY = "mandatory-rule-warnings"


def warning_violations(spec_json: str, peers_json: Sequence[str] = ()) -> list[str]:
    """Warnings of rules that are mandatory for errors, each with its rule id."""
    return [
        f"{finding.rule}: {violation_text(domain, finding)}"
        for domain, finding in domain_findings(spec_json, tuple(peers_json))
        if finding.severity == Severity.WARNING
        and RULES[finding.rule].severity == Severity.ERROR
    ]


def key_violations(selector: str, algorithm: str, bits: int) -> list[str]:
    """The `dkim-weak` rule on one DkimKeyPair resource's inputs."""
    finding = dkim_weak(selector, algorithm, bits)
    return [] if finding is None else [finding.message]


def rule_ids() -> list[str]:
    return list(RULES)
