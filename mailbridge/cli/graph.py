"""`mailbridge graph`: draw the routing graph of the specs with Graphviz."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import click

from mailbridge.cli.common import write_output
from mailbridge.routing import build_graph
from mailbridge.routing.dot import to_dot
from mailbridge.spec import load_specs

log = logging.getLogger(__name__)

DOT_TIMEOUT_SECONDS = 120


def render_svg(dot_text: str) -> str:
    """Run Graphviz's `dot` on the text; a clear error when it is missing."""
    program = shutil.which("dot")
    if program is None:
        raise click.ClickException(
            "the `dot` program of Graphviz is not installed, so no SVG can be "
            "drawn; install it (Debian package graphviz) or use --format dot"
        )
    log.debug("graph svg program=%s bytes=%d", program, len(dot_text))
    try:
        result = subprocess.run(
            [program, "-Tsvg"],
            input=dot_text,
            capture_output=True,
            text=True,
            check=False,
            timeout=DOT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as err:
        raise click.ClickException(
            f"`dot` did not finish within {DOT_TIMEOUT_SECONDS} s; "
            "use --format dot for very large graphs"
        ) from err
    if result.returncode != 0:
        raise click.ClickException(
            f"`dot -Tsvg` failed with status {result.returncode}: "
            f"{result.stderr.strip()}"
        )
    return result.stdout


@click.command("graph")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["dot", "svg"]),
    default="dot",
    show_default=True,
    help="Graphviz source, or an SVG drawn by `dot`.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
def command(paths: tuple[Path, ...], output_format: str, output: Path | None) -> None:
    """Draw where mail for every address of the specs goes; loops are red.

    PATHS are spec files, or folders of them.

    Domains are boxes; aliases are ellipses, mailboxes cylinders, Gmail
    inboxes tabs, fetch jobs components; external forwards are dashed.
    """
    graph = build_graph(load_specs(paths))
    text = to_dot(graph)
    if output_format == "svg":
        text = render_svg(text)
    if output is None:
        click.echo(text, nl=False)
        return
    write_output(output, text, f"routing.{output_format}")
    click.echo(f"wrote {output} ({len(graph.nodes)} nodes)", err=True)
