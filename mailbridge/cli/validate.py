"""`mailbridge validate`: load specs and report every problem."""

from __future__ import annotations

from pathlib import Path

import click

from mailbridge.cli.common import emit_json, json_option, spec_paths
from mailbridge.spec import load_specs


@click.command("validate")
@spec_paths
@json_option
def command(paths: tuple[Path, ...], as_json: bool) -> None:
    """Validate domain specs (files, or folders of them)."""
    loaded = load_specs(paths)
    if as_json:
        emit_json([{"file": str(s.path), "domain": s.spec.domain} for s in loaded])
        return
    for item in loaded:
        click.echo(f"ok  {item.spec.domain}  ({item.path})")
