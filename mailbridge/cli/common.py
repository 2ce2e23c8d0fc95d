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
from mailbridge.fsutil import write_atomic

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
        if isinstance(err, FileNotFoundError):
            fix = "create the folder, or choose another path"
        elif isinstance(err, NotADirectoryError | FileExistsError):
            fix = (
                "a file stands where a folder must be: move it, or choose another path"
            )
        else:
            fix = "choose another path, or make the folder writable"
        found = Path(err.filename) if err.filename else None
        if found is not None and found.name.startswith("."):
            # A temporary file of an atomic write: its folder is what matters.
            found = found.parent
        raise InputError.single(
            f"cannot write here: {err.strerror or err}",
            location=Location(str(path)),
            found=str(found) if found is not None else None,
            expected="a path whose folder exists and may be written",
            fix=fix,
        ) from err


def write_output(path: Path, text: str, example: str = "output") -> None:
    """Write a command's output file whole or not at all, into an existing folder.

    An earlier version of the file stays as it was when the write fails.
    """
    if path.is_dir():
        raise InputError.single(
            "cannot write here: this is a folder",
            location=Location(str(path)),
            expected="the path of a file",
            fix=f"name a file inside it, such as {path / example}",
        )
    if not path.parent.is_dir():
        raise InputError.single(
            "cannot write here: No such file or directory",
            location=Location(str(path)),
            found=f"no folder {path.parent}",
            expected="a path whose folder exists and may be written",
            fix="create the folder, or choose another path",
        )
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as err:
        raise InputError.single(
            f"cannot write here: {err.strerror or err}",
            location=Location(str(path)),
            found=f"folder {path.parent}",
            expected="a folder this user may write to",
            fix="choose another path, or make the folder writable",
        ) from err
