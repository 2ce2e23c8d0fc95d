"""`mailbridge schema`: the JSON Schema of the domain spec, for editors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mailbridge.cli.common import write_output
from mailbridge.spec import DomainSpec


def spec_schema() -> dict[str, object]:
    schema = DomainSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mailbridge domain spec"
    return schema


@click.command("schema")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here.")
def command(output: Path | None) -> None:
    """Print the JSON Schema of the domain spec."""
    text = json.dumps(spec_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text, "spec.schema.json")
