"""The `check` and `graph` commands: report, JSON, exit statuses, SVG."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from mailbridge.cli.main import main
from tests.routing.helpers import WriteSpec, line_of

SVG = "{http://www.w3.org/2000/svg}"
LOOP = """
forwarders:
  - {address: a@x.com, to: [b@x.com]}
  - {address: b@x.com, to: [a@x.com]}
"""


def run(argv: list[str]) -> int:
    """Run the CLI as the `mailbridge` script does; return its exit status."""
    try:
        main(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def test_check_examples_exit_zero(
    stacks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["check", str(stacks_dir)]) == 0
    assert "2 specs checked: no findings" in capsys.readouterr().out


def test_check_report_and_exit_one_on_error(
    write_spec: WriteSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec("x.com", LOOP)
    assert run(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    line = line_of(spec, "a@x.com, to")
    assert str(spec) in out
    assert f"error   {line}:" in out
    assert "loop" in out
    assert "forwarding loop: a@x.com -> b@x.com -> a@x.com" in out
    assert "fix:" in out
    assert "1 error, 0 warnings" in out


def test_check_json(
    write_spec: WriteSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec("x.com", LOOP + "dmarc: {policy: none}\n")
    assert run(["check", "--json", str(tmp_path / "x.com.yaml")]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert data["summary"] == {"specs": 1, "errors": 1, "warnings": 1, "info": 0}
    first, second = data["findings"]
    assert first["rule"] == "loop" and first["severity"] == "error"
    assert first["file"] == str(spec)
    assert first["line"] == line_of(spec, "a@x.com, to")
    assert first["field"] == "forwarders[0].to[0]"
    assert second["rule"] == "dmarc-no-rua" and second["severity"] == "warning"


def test_check_warnings_alone_exit_zero(
    write_spec: WriteSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_spec("x.com", "dmarc: {policy: none}\n")
    assert run(["check", str(tmp_path)]) == 0
    assert "dmarc-no-rua" in capsys.readouterr().out


def test_check_bad_input_exits_two(
    write_spec: WriteSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_spec("x.com", "forwarders: [{address: a@x.com}]\n")
    assert run(["check", str(tmp_path)]) == 2
    assert "required key 'to' is missing" in capsys.readouterr().err


def test_check_json_bad_input_still_prints_json(
    write_spec: WriteSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec("x.com", "forwarders: [{address: a@x.com}]\n")

    assert run(["check", "--json", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    data = json.loads(out)

    assert data["ok"] is False
    assert data["summary"] == {"specs": 0, "errors": 1, "warnings": 0, "info": 0}
    [problem] = data["findings"]
    assert problem["rule"] == "spec" and problem["file"] == str(spec)
    assert problem["message"] == "required key 'to' is missing"
    assert "required key 'to' is missing" in err


def test_graph_dot_to_file(
    write_spec: WriteSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_spec("x.com", LOOP)
    target = tmp_path / "out" / "routing.dot"
    target.parent.mkdir()
    assert run(["graph", str(tmp_path / "x.com.yaml"), "-o", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("digraph mailbridge {")
    assert "color=red" in text


def test_graph_svg_through_dot(
    stacks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["graph", "--format", "svg", str(stacks_dir)]) == 0
    svg = capsys.readouterr().out
    assert "<svg" in svg
    assert "alice@example.com" in svg
    assert "example.net" in svg


def test_graph_svg_draws_the_loop_in_red(
    write_spec: WriteSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Graphviz really draws it: the two loop edges are red, the exit is not."""
    write_spec(
        "x.com",
        LOOP + "  - {address: c@x.com, to: [a@x.com, c.example@gmail.com]}\n",
    )
    target = tmp_path / "routing.svg"

    assert run(["graph", "--format", "svg", str(tmp_path), "-o", str(target)]) == 0
    root = ElementTree.fromstring(target.read_text())
    edges = {
        group.findtext(f"{SVG}title"): group.find(f"{SVG}path")
        for group in root.iter(f"{SVG}g")
        if group.get("class") == "edge"
    }
    red = sorted(
        t for t, p in edges.items() if p is not None and p.get("stroke") == "red"
    )

    assert len(edges) == 4
    assert len(red) == 2
    assert "wrote" in capsys.readouterr().err


def test_graph_svg_without_dot_is_a_clear_error(
    stacks_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run(["graph", "--format", "svg", str(stacks_dir)]) == 2
    err = capsys.readouterr().err
    assert "`dot` program of Graphviz is not installed" in err
    assert "--format dot" in err


def test_graph_into_a_missing_folder_exits_two(
    write_spec: WriteSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_spec("x.com", LOOP)
    target = tmp_path / "no-such-folder" / "routing.dot"

    assert run(["graph", str(tmp_path), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{target}: error: (document): cannot write here: ")
    assert "fix:      create the folder, or choose another path" in err
