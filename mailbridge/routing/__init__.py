"""The routing graph of all loaded domains and the checks that read it."""

from mailbridge.routing.checks import evaluate, has_errors, run_checks
from mailbridge.routing.graph import (
    Edge,
    EdgeKind,
    Node,
    NodeKind,
    Origin,
    RoutingGraph,
    build_graph,
)
from mailbridge.routing.rules import RULES, Finding, Rule, SpecFinding

__all__ = [
    "RULES",
    "Edge",
    "EdgeKind",
    "Finding",
    "Node",
    "NodeKind",
    "Origin",
    "RoutingGraph",
    "Rule",
    "SpecFinding",
    "build_graph",
    "evaluate",
    "has_errors",
    "run_checks",
]
