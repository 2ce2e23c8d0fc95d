"""The mailbridge policy pack: `mailbridge check`'s rules on a stack's resources.

One policy per rule id, mandatory for rules whose findings are errors (a
loop, an SPF record over its lookup budget, a weak DKIM key, a fetch job
without TLS...), advisory for the others; one more advisory policy shows
the warnings of mandatory rules (`?all`, a fetch job marked `insecure`).
Run it with `pulumi preview --policy-pack policies`.
"""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from mailbridge.deploy.policy import (
    DKIM_KEY_TYPE,
    PEERS_PROP,
    SPEC_PROP,
    WARNINGS_POLICY,
    key_violations,
    spec_violations,
    warning_violations,
)
from mailbridge.errors import Severity
from mailbridge.routing import RULES, Rule

Validate = Callable[[ResourceValidationArgs, ReportViolation], None]


def _validator(rule: Rule) -> Validate:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        spec = args.props.get(SPEC_PROP)
        if isinstance(spec, str):
            peers = [p for p in args.props.get(PEERS_PROP) or [] if isinstance(p, str)]
            for message in spec_violations(rule.id, spec, peers, rule.severity):
                report(message, None)
        elif rule.id == "dkim-weak" and args.resource_type == DKIM_KEY_TYPE:
            props = args.props
            for message in key_violations(
                str(props["selector"]), str(props["algorithm"]), int(props["bits"])
            ):
                report(message, None)

    return validate


def _warnings(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = args.props.get(SPEC_PROP)
    if isinstance(spec, str):
        peers = [p for p in args.props.get(PEERS_PROP) or [] if isinstance(p, str)]
        for message in warning_violations(spec, peers):
            report(message, None)


def _level(rule: Rule) -> EnforcementLevel:
    if rule.severity == Severity.ERROR:
        return EnforcementLevel.MANDATORY
    return EnforcementLevel.ADVISORY


POLICIES: list[Policy] = [
    ResourceValidationPolicy(
        name=rule.id,
        description=rule.summary,
        validate=_validator(rule),
        enforcement_level=_level(rule),
    )
    for rule in RULES.values()
]
POLICIES.append(
    ResourceValidationPolicy(
        name=WARNINGS_POLICY,
        description="warnings of the mandatory rules (never blocking)",
        validate=_warnings,
        enforcement_level=EnforcementLevel.ADVISORY,
    )
)

PolicyPack(name="mailbridge", policies=POLICIES)
