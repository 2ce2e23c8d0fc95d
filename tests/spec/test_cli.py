"""Bad input under `--json`: the problems reach stdout as JSON too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbridge.cli.main import main, wants_json

BAD = "version: 1\ndomain: bad..com\nfoo: 1\n"


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "--json", "{spec}"],
        ["render", "--json", "{spec}", "{out}"],
        ["records", "--format", "json", "{spec}"],
        ["records", "--format=json", "{spec}"],
    ],
)
def test_bad_input_with_json_prints_problems_on_stdout(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD)
    args = [a.format(spec=spec, out=tmp_path / "out") for a in argv]

    assert run(args) == 2
    out, err = capsys.readouterr()
    data = json.loads(out)

    assert data["ok"] is False
    problems = {(p["field"], p["line"]) for p in data["problems"]}
    assert problems == {("mail_host", 1), ("domain", 2), ("foo", 3)}
    assert all(p["file"] == str(spec) for p in data["problems"])
    assert "3 problems found" in err
    assert not (tmp_path / "out").exists()


def test_bad_input_without_json_keeps_stdout_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD)

    assert run(["records", str(spec)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "unknown key 'foo'" in err


def test_wants_json_reads_options_before_the_separator() -> None:
    assert wants_json(["validate", "--json", "x"])
    assert wants_json(["records", "--format", "json", "x"])
    assert not wants_json(["records", "--format", "zone", "x"])
    assert not wants_json(["validate", "--", "--json"])


def test_stacks_outside_a_project_is_bad_input_not_an_empty_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["stacks", "--root", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{tmp_path}: error: (document): this is not a mailbridge project" in err
    assert "fix:      run the command there, or name it with --root" in err


def test_render_with_only_a_spec_asks_for_the_folder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = str(Path(__file__).parents[2] / "stacks" / "example.com.yaml")
    assert run(["render", spec]) == 2
    err = capsys.readouterr().err
    assert "give the specs first, then the folder to write into" in err
    assert run(["render", spec, spec]) == 2
    assert "is a file; OUTDIR is the folder" in capsys.readouterr().err
