"""The GitHub Actions workflow parses, has its jobs, and calls what exists.

GitHub's runners cannot run here; this checks the file's structure and that
every script, `mailbridge` command and option it names is real.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from mailbridge.cli.main import LazyGroup

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "mailbridge.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def _runs(workflow: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (name, step["run"])
        for name, job in workflow["jobs"].items()
        for step in job["steps"]
        if "run" in step
    ]


def _commands(script: str) -> list[list[str]]:
    """Each shell command of a `run:` block, split into words."""
    joined = script.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        for part in re.split(r"\s*(?:\|\||&&|;|\|)\s*", line.strip()):
            if part and not part.startswith("#"):
                try:
                    commands.append(shlex.split(part))
                except ValueError:
                    continue
    return commands


def test_triggers_and_jobs(workflow: dict[str, Any]) -> None:
    triggers = workflow["on"]
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["schedule"][0]["cron"]
    jobs = workflow["jobs"]
    assert set(jobs) >= {"test", "changes", "preview", "comment", "deploy", "verify"}
    assert "pull_request" in jobs["preview"]["if"]
    assert "push" in jobs["deploy"]["if"]
    assert "schedule" in jobs["verify"]["if"]
    assert jobs["preview"]["needs"] == ["changes"]
    assert jobs["deploy"]["needs"] == ["test", "changes"]
    assert jobs["verify"]["permissions"]["issues"] == "write"
    assert jobs["comment"]["permissions"] == {
        "contents": "write",
        "pull-requests": "write",
    }


def test_pulumi_steps_use_the_policy_pack(workflow: dict[str, Any]) -> None:
    seen = set()
    for _, script in _runs(workflow):
        for words in _commands(script):
            if words and words[0] == "pulumi" and words[1] != "stack":
                seen.add(words[1])
                assert "--policy-pack" in words
                policy = words[words.index("--policy-pack") + 1]
                assert (ROOT / policy / "PulumiPolicy.yaml").is_file()
    assert seen == {"preview", "up"}


def test_deploy_uses_scripts_up_without_a_team_backend(
    workflow: dict[str, Any],
) -> None:
    script = "\n".join(s for job, s in _runs(workflow) if job == "deploy")
    ups = [w for w in _commands(script) if w and w[0] == "scripts/up"]
    assert ups == [["scripts/up", "$STACK", "--policy-pack", "policies"]]


def test_every_script_it_runs_exists(workflow: dict[str, Any]) -> None:
    scripts = set()
    for _, script in _runs(workflow):
        scripts.update(re.findall(r"(?<![\w/.])scripts/[\w.-]+", script))
    expected = {
        "scripts/test",
        "scripts/bootstrap",
        "scripts/up",
    }
    assert expected <= scripts
    for name in scripts:
        path = ROOT / name
        assert path.is_file(), f"{name} is named in the workflow but missing"
        assert os.access(path, os.X_OK), f"{name} is not executable"
        if (ROOT / ".git").exists():
            tracked = subprocess.run(
                ["git", "-C", str(ROOT), "ls-files", "--error-unmatch", name],
                capture_output=True,
                check=False,
            )
            assert tracked.returncode == 0, f"{name} is not committed"


def _options(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def test_every_mailbridge_command_and_option_exists(workflow: dict[str, Any]) -> None:
    used: dict[str, set[str]] = {}
    for _, script in _runs(workflow):
        for words in _commands(script):
            if not words or not words[0].endswith("bin/mailbridge"):
                continue
            used.setdefault(words[1], set()).update(
                w.split("=")[0] for w in words[2:] if w.startswith("-")
            )
    assert {"stacks", "check", "graph", "verify"} <= set(used)
    assert "--changed-since" in used["stacks"]
    for name, options in used.items():
        command = LazyGroup._load(name)
        assert command is not None, f"mailbridge {name} does not exist"
        missing = options - _options(command)
        assert not missing, f"mailbridge {name} has no {sorted(missing)}"


def test_scheduled_verify_compares_dkim_with_the_stacks_outputs(
    workflow: dict[str, Any],
) -> None:
    """The keys are not in the repo: verify reads them from the stack outputs."""
    script = "\n".join(s for job, s in _runs(workflow) if job == "verify")
    commands = _commands(script)
    outputs = [c for c in commands if c[:3] == ["pulumi", "stack", "output"]]
    assert outputs and "--json" in outputs[0]
    assert "(--dkim-from-stack-output " in script
    runs = [c for c in commands if c[:2] == [".venv/bin/mailbridge", "verify"]]
    assert len(runs) == 1 and "${deployed[@]}" in runs[0]
    verify = LazyGroup._load("verify")
    assert verify is not None
    assert "--dkim-from-stack-output" in _options(verify)
    steps = workflow["jobs"]["verify"]["steps"]
    assert any(s.get("uses", "").startswith("pulumi/actions@") for s in steps)


def test_scheduled_verify_dials_every_service_by_default(
    workflow: dict[str, Any],
) -> None:
    from mailbridge.verify.options import SERVICES

    (step,) = [
        s for s in workflow["jobs"]["verify"]["steps"] if s.get("id") == "verify"
    ]
    default = re.search(r"\|\| '([\w,]+)'", step["env"]["SERVICES"])
    assert default is not None
    assert default.group(1).split(",") == list(SERVICES)
    assert '--services "$SERVICES"' in step["run"]


@pytest.mark.parametrize("job", ["preview", "deploy"])
def test_mailbridge_secrets_reach_the_pulumi_steps(
    workflow: dict[str, Any], job: str, tmp_path: Path
) -> None:
    """The step runs as GitHub would: only MAILBRIDGE_SECRET_* are exported."""
    steps = workflow["jobs"][job]["steps"]
    names = [s.get("name", "") for s in steps]
    (index,) = [i for i, n in enumerate(names) if n.startswith("Secrets the specs")]
    pulumi_step = next(i for i, s in enumerate(steps) if "pulumi " in s.get("run", ""))
    assert index < pulumi_step
    github_env = tmp_path / "github.env"
    given = {
        "MAILBRIDGE_SECRET_SSH_KEY": "-----BEGIN KEY-----\nAAAA\n-----END KEY-----",
        "PULUMI_CONFIG_PASSPHRASE": "not for this step",
        "GITHUB_TOKEN": "not for this step either",
        "AWS_ACCESS_KEY_ID": "AKIATEST",
    }
    env = {
        **os.environ,
        "GITHUB_ENV": str(github_env),
        "ALL_SECRETS": json.dumps(given),
    }
    subprocess.run(["bash", "-e", "-c", steps[index]["run"]], env=env, check=True)
    text = github_env.read_text()
    assert "PULUMI_CONFIG_PASSPHRASE" not in text and "GITHUB_TOKEN" not in text
    values = {
        name: value
        for name, _, value in re.findall(
            r"^(\w+)<<(\w+)\n(.*?)\n\2$", text, re.M | re.S
        )
    }
    assert values["MAILBRIDGE_SECRET_SSH_KEY"] == given["MAILBRIDGE_SECRET_SSH_KEY"]
    assert values["AWS_ACCESS_KEY_ID"] == "AKIATEST"
    assert set(values) == {"MAILBRIDGE_SECRET_SSH_KEY", "AWS_ACCESS_KEY_ID"}


def test_scheduled_verify_without_any_dns_answer_is_no_drift(
    workflow: dict[str, Any], tmp_path: Path
) -> None:
    """The step as GitHub runs it, its resolver a socket that never answers."""
    import shutil
    import socket

    (step,) = [
        s for s in workflow["jobs"]["verify"]["steps"] if s.get("id") == "verify"
    ]
    (tmp_path / "stacks").mkdir()
    shutil.copy(ROOT / "stacks/example.com.yaml", tmp_path / "stacks")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "stacks.json").write_text(
        json.dumps([{"stack": "example.com", "spec": "stacks/example.com.yaml"}])
    )
    output = tmp_path / "github-output"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        env = {
            **os.environ,
            "GITHUB_OUTPUT": str(output),
            "SERVICES": "imaps",
            "RESOLVER": f"127.0.0.1:{silent.getsockname()[1]}",
        }
        done = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "verify: no DNS answer at all" in done.stderr
    assert "example.com" in (tmp_path / "verify.txt").read_text()
    # Not 1: the drift issue is opened only for findings; the job fails.
    assert output.read_text().strip() == "status=3"
    (drift,) = [
        s
        for s in workflow["jobs"]["verify"]["steps"]
        if s.get("name") == "Open or update the drift issue"
    ]
    assert drift["if"] == "steps.verify.outputs.status == '1'"
