"""`mailbridge check`: the routing graph and policy rules over all specs."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from mailbridge.cli.common import emit_json, json_option, spec_paths
from mailbridge.cli.main import EXIT_FINDINGS
from mailbridge.errors import InputError, Severity, path_to_text
from mailbridge.perf import paused_gc
from mailbridge.routing import Finding, has_errors, run_checks
from mailbridge.spec import load_specs

STYLES = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
INDENT = " " * 4


@click.command("check")
@spec_paths
@json_option
def command(paths: tuple[Path, ...], as_json: bool) -> None:
    """Check specs (files, or folders of them) for loops, limits, weak settings.

    All specs given are checked together, so loops across domains are found.
    Exits 1 when any finding is an error; warnings alone exit 0; a spec that
    does not load exits 2.
    """
    # Loading makes millions of small objects and no garbage cycles worth
    # chasing: without the pause, full collections take half the load time.
    try:
        with paused_gc():
            loaded = load_specs(paths)
    except InputError as err:
        if as_json:
            # Machines read stdout: the input problems come as findings there.
            emit_json(to_json(err.problems, 0))
            err.json_emitted = True
        raise
    findings = run_checks(loaded)
    if as_json:
        emit_json(to_json(findings, len(loaded)))
    else:
        console = Console(highlight=False)
        console.soft_wrap = not console.is_terminal
        print_report(console, findings, len(loaded))
    if has_errors(findings):
        sys.exit(EXIT_FINDINGS)


def summary(findings: Sequence[Finding], specs: int) -> dict[str, int]:
    counts = Counter(str(f.severity) for f in findings)
    return {
        "specs": specs,
        "errors": counts[Severity.ERROR],
        "warnings": counts[Severity.WARNING],
        "info": counts[Severity.INFO],
    }


def to_json(findings: Sequence[Finding], specs: int) -> dict[str, object]:
    return {
        "ok": not has_errors(findings),
        "summary": summary(findings, specs),
        "findings": [f.to_dict() for f in findings],
    }


def _file_of(finding: Finding) -> str:
    return finding.location.file if finding.location else "(no file)"


def print_report(console: Console, findings: Sequence[Finding], specs: int) -> None:
    """Findings grouped by file, each with its line, rule, message and fix."""
    ordered = sorted(findings, key=_file_of)
    for file, group in groupby(ordered, key=_file_of):
        console.print(Text(file, style="bold underline"))
        for finding in group:
            _print_finding(console, finding)
        console.print()
    counts = summary(findings, specs)
    noun = "spec" if specs == 1 else "specs"
    line = Text(f"{specs} {noun} checked: ")
    line.append(_count(counts["errors"], "error"), style=STYLES[Severity.ERROR])
    line.append(", ")
    line.append(_count(counts["warnings"], "warning"), style=STYLES[Severity.WARNING])
    if not findings:
        line = Text(f"{specs} {noun} checked: no findings", style="green")
    console.print(line)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _print_finding(console: Console, finding: Finding) -> None:
    where = finding.location
    line = f"{where.line}:{where.column or 1}" if where and where.line else "-"
    head = Text("  ")
    head.append(f"{finding.severity:<7}", style=STYLES.get(finding.severity, ""))
    head.append(f" {line:<8} ")
    head.append(f"{finding.rule:<14}", style="bold")
    head.append(f" {finding.message}")
    console.print(head)
    details = [
        ("field", path_to_text(finding.path) if finding.path else None),
        ("found", finding.found),
        ("expected", finding.expected),
        ("fix", finding.fix),
    ]
    for name, value in details:
        if value is None:
            continue
        text = Text(f"{INDENT}{name + ':':<10}", style="dim")
        text.append(value, style="green" if name == "fix" else "")
        console.print(text)
