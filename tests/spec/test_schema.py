"""The JSON Schema shipped for editors matches the models."""

import json
from pathlib import Path

from mailbridge.cli.schema import spec_schema

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_schema_is_current() -> None:
    shipped = json.loads((ROOT / "docs" / "spec.schema.json").read_text())
    assert shipped == spec_schema(), "run: mailbridge schema -o docs/spec.schema.json"


def test_schema_forbids_unknown_keys() -> None:
    schema = spec_schema()
    assert schema["additionalProperties"] is False
    assert "from" in schema["$defs"]["ExternalForward"]["properties"]


def test_example_specs_carry_the_modeline() -> None:
    for spec in (ROOT / "stacks").glob("example.*.yaml"):
        first = spec.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../docs/spec.schema.json"
