"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mailbridge.errors import InputError, Location

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


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Report a failure to write below `path` as bad input that names it."""
    try:
        yield
    except OSError as err:
        raise InputError.single(
            f"cannot write here: {err.strerror or err}",
            location=Location(str(path)),
            found=str(err.filename) if err.filename else None,
            expected="a path whose folder exists and may be written",
            fix="create the folder, or choose another path",
        ) from err
