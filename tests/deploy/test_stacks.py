"""Stacks of the project, and those a Git change touches."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mailbridge.cli.main import main
from mailbridge.deploy.stacks import Stack, changed_since, changed_stacks, find_stacks
from mailbridge.errors import InputError

COM = Stack(
    "example.com",
    "stacks/Pulumi.example.com.yaml",
    "stacks/example.com.yaml",
    ("stacks/example.net.yaml",),
)
NET = Stack("example.net", "stacks/Pulumi.example.net.yaml", "stacks/example.net.yaml")


def _names(paths: list[str]) -> list[str]:
    return [c.stack.name for c in changed_stacks([COM, NET], paths)]


def test_a_spec_touches_its_stack_and_those_that_read_it() -> None:
    assert _names(["stacks/example.com.yaml"]) == ["example.com"]
    assert _names(["stacks/example.net.yaml"]) == ["example.com", "example.net"]
    assert _names(["stacks/Pulumi.example.net.yaml"]) == ["example.net"]


def test_code_templates_and_program_touch_every_stack() -> None:
    for path in (
        "templates/postfix/main.cf.j2",
        "mailbridge/render/engine.py",
        "components/dns.py",
        "__main__.py",
        "requirements.lock",
    ):
        assert _names([path]) == ["example.com", "example.net"], path


def test_docs_and_tests_touch_nothing() -> None:
    assert _names(["docs/pulumi.md", "tests/pulumi/test_engine.py", "README.md"]) == []


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "stacks").mkdir()
    for name in (
        "Pulumi.example.com.yaml",
        "Pulumi.example.net.yaml",
        "example.com.yaml",
        "example.net.yaml",
    ):
        (tmp_path / "stacks" / name).write_text((root / "stacks" / name).read_text())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/a.md").write_text("a\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(
        tmp_path,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "-m",
        "one",
    )
    return tmp_path


def test_stack_files_are_found(repo: Path) -> None:
    stacks = find_stacks(repo)
    assert [s.name for s in stacks] == ["example.com", "example.net"]
    assert stacks[0].spec == "stacks/example.com.yaml"
    assert stacks[0].peers == ("stacks/example.net.yaml",)


def test_a_stack_file_that_is_no_mapping_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks/Pulumi.x.example.yaml").write_text("- a list\n")
    with pytest.raises(InputError) as err:
        find_stacks(tmp_path)
    text = err.value.to_text()
    assert "Pulumi.x.example.yaml" in text and "not a Pulumi stack file" in text


def test_changed_since_sees_commits_edits_and_new_files(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = repo / "stacks/example.com.yaml"
    spec.write_text(spec.read_text() + "# edited\n")
    (repo / "docs/b.md").write_text("new\n")
    assert changed_since(repo, "HEAD") == ["docs/b.md", "stacks/example.com.yaml"]

    main(["stacks", "--root", str(repo), "--changed-since", "HEAD"])
    # example.net reads example.com as a peer (loops across the two).
    assert capsys.readouterr().out.split() == ["example.com", "example.net"]
    net = repo / "stacks/Pulumi.example.net.yaml"
    net.write_text(
        net.read_text().replace(
            "  mailbridge:peers:\n    - stacks/example.com.yaml\n", ""
        )
    )
    main(["stacks", "--root", str(repo), "--changed-since", "HEAD", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data == [
        {
            "stack": "example.com",
            "stack_file": "stacks/Pulumi.example.com.yaml",
            "spec": "stacks/example.com.yaml",
            "peers": ["stacks/example.net.yaml"],
            "changed": ["stacks/example.com.yaml"],
        },
        {
            "stack": "example.net",
            "stack_file": "stacks/Pulumi.example.net.yaml",
            "spec": "stacks/example.net.yaml",
            "peers": [],
            "changed": ["stacks/Pulumi.example.net.yaml"],
        },
    ]


def test_unknown_revision_is_bad_input(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["stacks", "--root", str(repo), "--changed-since", "no-such-ref"])
    assert exit_info.value.code == 2
    assert "no-such-ref" in capsys.readouterr().err


def test_all_stacks_without_a_revision(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["stacks", "--root", str(repo)])
    assert capsys.readouterr().out.split() == ["example.com", "example.net"]
