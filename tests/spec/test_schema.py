"""The JSON Schema shipped for editors matches the models."""

import json
from pathlib import Path

import pytest

from mailbridge.cli.main import main
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


def test_schema_into_a_missing_folder_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "spec.schema.json"

    with pytest.raises(SystemExit) as exited:
        main(["schema", "-o", str(target)])

    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(f"{target}: error: (document): cannot")


def test_schema_onto_a_folder_names_a_file_inside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["schema", "-o", str(tmp_path)])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert (
        f"fix:      name a file inside it, such as {tmp_path}/spec.schema.json" in err
    )
    assert list(tmp_path.iterdir()) == []


def test_schema_replaces_an_earlier_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "spec.schema.json"
    target.write_text("x" * 100_000)

    main(["schema", "-o", str(target)])

    assert json.loads(target.read_text()) == spec_schema()
    assert [p.name for p in tmp_path.iterdir()] == ["spec.schema.json"]
