"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

spec_paths = click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON for machines."
)


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
