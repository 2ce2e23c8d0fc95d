"""Small helpers for the routing tests: load a folder, pick findings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mailbridge.routing import Finding, run_checks
from mailbridge.spec import LoadedSpec, load_specs

# write_spec(domain, yaml_body) -> path of the written file
WriteSpec = Callable[[str, str], Path]


def load(folder: Path) -> list[LoadedSpec]:
    return load_specs([folder])


def check(folder: Path) -> list[Finding]:
    return run_checks(load_specs([folder]))


def by_rule(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def line_of(path: Path, needle: str) -> int:
    """The 1-based number of the first line of `path` holding `needle`."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")
