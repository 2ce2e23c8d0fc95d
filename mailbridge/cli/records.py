"""`mailbridge records`: the DNS records a domain spec needs, and why."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mailbridge.cli.common import emit_json, writing
from mailbridge.dns.dkim import generate_missing_keys, load_keys
from mailbridge.dns.policy import mta_sts_policy
from mailbridge.dns.record import Level, Record
from mailbridge.dns.records import build_records
from mailbridge.dns.zone import ZoneOptions, zone_json, zone_text
from mailbridge.errors import InputError
from mailbridge.spec import load_spec
from mailbridge.spec.models import DomainSpec
from mailbridge.spec.types import FieldValueError, normalize_hostname

VALUE_WIDTH = 48
# Values up to this length are shown whole, folded over lines: SPF and
# DMARC must be read in full. Longer ones (DKIM keys) are cut; the zone and
# JSON formats give them whole.
VALUE_SHOWN = 200
PIPE_WIDTH = 160
_LEVEL_STYLE = {
    Level.REQUIRED: "bold",
    Level.RECOMMENDED: "",
    Level.OPTIONAL: "dim",
}


def default_keys_dir(spec_path: Path) -> Path:
    """`keys/` beside the spec file: `stacks/example.com.yaml` -> `stacks/keys`."""
    return spec_path.parent / "keys"


def _shorten(value: str) -> str:
    if len(value) <= VALUE_SHOWN:
        return value
    return value[: VALUE_WIDTH - 1] + "… (whole in --format zone)"


def _print_table(spec: DomainSpec, records: list[Record]) -> None:
    # Piped output has no terminal width; rich would squeeze it to 80.
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    console = Console(highlight=False, width=width)
    table = Table(title=f"DNS records of {spec.domain} (TTL {spec.dns.ttl})")
    table.add_column("name", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("value", max_width=VALUE_WIDTH, overflow="fold")
    table.add_column("level", no_wrap=True)
    table.add_column("reason", ratio=1)
    for record in records:
        style = "bold red" if record.placeholder else _LEVEL_STYLE[record.level]
        for i, value in enumerate(record.values):
            first = i == 0
            table.add_row(
                record.name if first else "",
                str(record.type) if first else "",
                _shorten(value),
                str(record.level) if first else "",
                record.reason if first else "",
                style=style,
            )
    console.print(table)
    if spec.mta_sts is not None:
        console.print(
            f"\nMTA-STS policy to serve at https://mta-sts.{spec.domain}"
            "/.well-known/mta-sts.txt:"
        )
        console.print(mta_sts_policy(spec).replace("\r\n", "\n"), end="")


def _hostnames(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    try:
        return tuple(normalize_hostname(name) for name in value)
    except FieldValueError as err:
        raise click.BadParameter(str(err)) from err


def _warn_placeholders(records: list[Record], spec_path: Path, keys_dir: Path) -> None:
    for record in records:
        if not record.placeholder:
            continue
        click.secho(
            f"WARNING: {record.name} TXT is a PLACEHOLDER, not a DKIM key: "
            f"no key for it in {keys_dir}. Do not publish it; run "
            f"`mailbridge records {spec_path} --generate-keys` first.",
            fg="red",
            bold=True,
            err=True,
        )


@click.command("records")
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "zone", "json"]),
    default="table",
    show_default=True,
    help="A table for people, a zone file, or JSON for machines.",
)
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="DKIM key folder (holds <domain>/<selector>.key). "
    "Default: keys/ beside the spec file.",
)
@click.option(
    "--generate-keys",
    is_flag=True,
    help="Generate and store DKIM keys for selectors that have none.",
)
@click.option(
    "--fragment",
    is_flag=True,
    help="Zone format: only the mail records, without $TTL, SOA and NS.",
)
@click.option(
    "--serial",
    type=click.IntRange(1, 2**32 - 1),
    default=None,
    help="SOA serial of a stand-alone zone. Default: the current Unix time.",
)
@click.option(
    "--nameserver",
    "nameservers",
    multiple=True,
    callback=_hostnames,
    help="Name server of a stand-alone zone (repeat for more). "
    "Default: ns1.<domain> at the mail host's addresses.",
)
def command(
    spec_path: Path,
    output: str,
    keys_dir: Path | None,
    generate_keys: bool,
    fragment: bool,
    serial: int | None,
    nameservers: tuple[str, ...],
) -> None:
    """Show the DNS records that SPEC needs, each with the reason it exists."""
    loaded = load_spec(spec_path)
    spec = loaded.spec
    keys_dir = keys_dir if keys_dir is not None else default_keys_dir(spec_path)
    try:
        if generate_keys:
            with writing(keys_dir):
                written = generate_missing_keys(keys_dir, spec)
            for path in written:
                click.echo(f"wrote DKIM key {path} (mode 0600) and its .pub", err=True)
        records = build_records(spec, load_keys(keys_dir, spec), keys_dir=keys_dir)
        if output == "json":
            emit_json(zone_json(spec, records))
        elif output == "zone":
            options = ZoneOptions(
                serial=serial if serial is not None else int(time.time()),
                nameservers=nameservers,
            )
            text = zone_text(spec, records, fragment=fragment, options=options)
            click.echo(text, nl=False)
        else:
            _print_table(spec, records)
    except InputError as err:
        # A record problem names a field of the spec: point at its line.
        raise loaded.located(err) from err
    _warn_placeholders(records, spec_path, keys_dir)
