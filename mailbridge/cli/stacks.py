"""`mailbridge stacks`: the project's Pulumi stacks, or those a change touches."""

from __future__ import annotations

from pathlib import Path

import click

from mailbridge.cli.common import emit_json, json_option
from mailbridge.deploy.stacks import (
    ChangedStack,
    GitError,
    changed_since,
    changed_stacks,
    find_stacks,
)
from mailbridge.errors import InputError, Location


@click.command("stacks")
@click.option(
    "--changed-since",
    "ref",
    metavar="REF",
    help="Only stacks that changes since this Git revision touch.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The project folder (holds Pulumi.yaml and stacks/).",
)
@json_option
def command(ref: str | None, root: Path, as_json: bool) -> None:
    """List stacks, one a line; with --changed-since, those a change touches.

    A change to a spec or a stack file touches its stack; a change to the
    code, the templates, the program or the locked dependencies touches all.
    """
    if not (root / "stacks").is_dir():
        raise InputError.single(
            "this is not a mailbridge project folder: it has no stacks/ folder",
            location=Location(str(root)),
            expected="the folder that holds Pulumi.yaml and stacks/",
            fix="run the command there, or name it with --root",
        )
    stacks = find_stacks(root)
    if ref is None:
        selected = [ChangedStack(stack) for stack in stacks]
    else:
        try:
            paths = changed_since(root, ref)
        except GitError as err:
            raise InputError.single(
                f"cannot list the changes since {ref!r} ({str(err).rstrip(': ')})",
                location=Location(str(root)),
                found=ref,
                expected="a Git revision such as origin/main or HEAD~1",
                fix="fetch the revision first (CI: a full clone, fetch-depth 0)",
            ) from err
        selected = changed_stacks(stacks, paths)
    if as_json:
        emit_json([item.to_json() for item in selected])
        return
    for item in selected:
        click.echo(item.stack.name)
