"""Entry point of the `mailbridge` command; commands load lazily."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from mailbridge import __version__
from mailbridge.cli.common import emit_json
from mailbridge.errors import InputError

# Command name -> module under mailbridge.cli that defines `command`.
COMMANDS: dict[str, str] = {
    "validate": "validate",
    "schema": "schema",
    "records": "records",
    "check": "check",
    "graph": "graph",
    "render": "render",
    "sidecar": "sidecar",
    "verify": "verify",
    "stacks": "stacks",
}

EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if self._load(n) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        module_name = COMMANDS.get(name)
        if module_name is None:
            return None
        try:
            module = importlib.import_module(f"mailbridge.cli.{module_name}")
        except ModuleNotFoundError as err:
            if err.name == f"mailbridge.cli.{module_name}":
                return None
            raise
        command: click.Command = module.command
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailbridge")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
def cli(verbose: int) -> None:
    """Your domain's mail, delivered into Gmail: specs, DNS, host, checks."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def wants_json(argv: list[str]) -> bool:
    """Whether the command line asked for JSON: `--json` or `--format json`."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    pairs = zip(options, options[1:], strict=False)
    return (
        "--json" in options
        or "--format=json" in options
        or any(a == "--format" and b == "json" for a, b in pairs)
    )


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; bad input exits 2 with its problems, never a traceback.

    With `--json`, the problems also go to stdout as JSON, so a machine
    reading stdout learns why there is no result.
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        return cli.main(args=args, prog_name="mailbridge", standalone_mode=False)
    except InputError as err:
        if wants_json(args) and not err.json_emitted:
            emit_json({"ok": False, "problems": [p.to_dict() for p in err.problems]})
        click.echo(err.to_text(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(EXIT_BAD_INPUT)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
