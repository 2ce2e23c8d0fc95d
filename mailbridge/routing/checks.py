"""Run every rule over a set of specs and place each finding in its file."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mailbridge.errors import Severity
from mailbridge.perf import paused_gc
from mailbridge.routing.graph import RoutingGraph, build_graph
from mailbridge.routing.paths import Analysis, graph_findings
from mailbridge.routing.rules import Finding, SpecFinding, spec_findings
from mailbridge.spec.loader import LoadedSpec
from mailbridge.spec.models import DomainSpec

log = logging.getLogger(__name__)

SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def evaluate(
    specs: Sequence[DomainSpec], graph: RoutingGraph | None = None
) -> list[SpecFinding]:
    """Every finding of every rule, each with the domain it belongs to.

    For callers without files (the policy pack): findings carry field
    paths but no locations. `graph` saves rebuilding one already built.
    """
    if graph is None:
        graph = build_graph(specs)
    with paused_gc():
        found = [SpecFinding(s.domain, f) for s in specs for f in spec_findings(s)]
        limits = {s.domain: s.limits for s in specs}
        found.extend(graph_findings(Analysis.of(graph), limits))
    log.debug(
        "checks specs=%d nodes=%d edges=%d findings=%d",
        len(specs),
        len(graph.nodes),
        len(graph.edges),
        len(found),
    )
    return found


def run_checks(
    specs: Sequence[LoadedSpec], graph: RoutingGraph | None = None
) -> list[Finding]:
    """Every finding, located at file:line:column, errors first."""
    by_domain = {s.spec.domain: s for s in specs}
    located: list[Finding] = []
    for item in evaluate([s.spec for s in specs], graph):
        finding = item.finding
        source = by_domain.get(item.domain) if item.domain else None
        if source is not None:
            finding = finding.with_location(source.locate(finding.path))
        located.append(finding)
    located.sort(key=_order)
    return located


def _order(finding: Finding) -> tuple[int, str, int, int, str]:
    where = finding.location
    return (
        SEVERITY_ORDER.get(finding.severity, 3),
        where.file if where else "",
        (where.line or 0) if where else 0,
        (where.column or 0) if where else 0,
        finding.rule,
    )


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(f.severity == Severity.ERROR for f in findings)
