"""`mailbridge render`: write a mail host's configuration from specs."""

from __future__ import annotations

from pathlib import Path

import click

from mailbridge.cli.common import emit_json, json_option, writing
from mailbridge.errors import InputError, Location
from mailbridge.render import HostOptions, render_host, write_tree
from mailbridge.secrets import SecretStore
from mailbridge.spec import load_specs


@click.command("render")
@click.argument("specs", nargs=-1, metavar="SPECS...", type=click.Path(path_type=Path))
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option(
    "--host",
    "hostname",
    help="Render only the specs whose mail_host.hostname is this name.",
)
@click.option(
    "--root",
    default="/",
    show_default=True,
    help="Folder that stands for / in the paths inside the configs.",
)
@json_option
def command(
    specs: tuple[Path, ...],
    outdir: Path,
    hostname: str | None,
    root: str,
    as_json: bool,
) -> None:
    """Render the mail host of SPECS (files or folders) into OUTDIR.

    Secrets come from MAILBRIDGE_SECRET_<NAME> environment variables.
    """
    if not specs:
        # One argument lands in OUTDIR; what is missing is one of the two.
        raise click.UsageError(
            f"give the specs first, then the folder to write into, e.g. "
            f"mailbridge render stacks/example.com.yaml build/host "
            f"(only one argument was given: {outdir})"
        )
    if outdir.exists() and not outdir.is_dir():
        raise click.BadParameter(
            f"{outdir} is a file; OUTDIR is the folder the host's files go into "
            "(it is created when missing)",
            param_hint="'OUTDIR'",
        )
    loaded = [item.spec for item in load_specs(specs)]
    try:
        if hostname is not None:
            loaded = [s for s in loaded if s.mail_host.hostname == hostname.lower()]
            if not loaded:
                raise InputError.single(
                    f"no spec names {hostname} as its mail host",
                    path=("mail_host", "hostname"),
                    found=hostname,
                    fix="check the name given to --host",
                )
        options = HostOptions(
            root=root, hostname=hostname.lower() if hostname else None
        )
        files = render_host(loaded, SecretStore(), options)
    except InputError as err:
        # Problems of the host as a whole have no line; name the specs given.
        raise _located(err, ", ".join(str(p) for p in specs)) from err
    try:
        with writing(outdir):
            target = write_tree(files, outdir)
    except InputError as err:
        raise _located(err, str(outdir)) from err
    if as_json:
        emit_json(
            {
                "outdir": str(target),
                "files": [
                    {"path": p, "mode": f"{f.mode:04o}", "group": f.group}
                    for p, f in files.items()
                ],
            }
        )
        return
    for path, item in files.items():
        click.echo(f"{item.mode:04o}  {item.group or '-':8}  {path}")
    click.echo(f"{len(files)} files written to {target}")


def _located(err: InputError, where: str) -> InputError:
    """The same problems, those without a position placed at `where`."""
    location = Location(where)
    return InputError(
        [p if p.location else p.with_location(location) for p in err.problems]
    )
