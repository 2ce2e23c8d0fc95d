"""A throw-away copy of the Pulumi project, run by the real engine.

Each copy has its own file backend, PULUMI_HOME and passphrase under the
test's folder, so tests never touch the user's `.pulumi-state`. The
program, the components and `mailbridge` come from this checkout (the
virtualenv's editable install).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
PULUMI = TOOLS / "pulumi"
PASSPHRASE = "mailbridge-engine-tests"


def require_engine() -> None:
    if not PULUMI.exists():
        pytest.fail(f"the Pulumi engine is missing at {PULUMI}: run scripts/bootstrap")


@dataclass
class Project:
    """A project folder with one stack, and the environment to run it."""

    root: Path
    stack: str = "test"

    @property
    def backend(self) -> Path:
        return self.root / ".state"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PULUMI_BACKEND_URL=f"file://{self.backend}",
            PULUMI_HOME=str(self.root / ".pulumi-home"),
            PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PATH=f"{TOOLS}:{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        )
        env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        env.pop("PULUMI_ACCESS_TOKEN", None)
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(PULUMI), *args, "--non-interactive"],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", "--stack", self.stack, *args)

    def preview_steps(self, *args: str) -> dict[str, str]:
        """`pulumi preview --json`: resource name -> operation."""
        done = self.run("preview", "--json", "--stack", self.stack, *args)
        data = json.loads(done.stdout)
        return {
            step["urn"].rsplit("::", 1)[1]: step["op"] for step in data.get("steps", [])
        }

    def outputs(self) -> dict[str, Any]:
        done = self.run("stack", "output", "--json", "--stack", self.stack)
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def state_text(self) -> str:
        """The stack's checkpoint file as the backend stores it."""
        files = list(self.backend.rglob(f"{self.stack}.json"))
        assert files, f"no state file under {self.backend}"
        return files[0].read_text()

    def spec_path(self, domain: str = "example.com") -> Path:
        return self.root / "stacks" / f"{domain}.yaml"

    def edit_spec(self, old: str, new: str, domain: str = "example.com") -> None:
        path = self.spec_path(domain)
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1))


def make_project(
    root: Path,
    secrets: dict[str, str],
    spec: str = "example.com.yaml",
    peers: tuple[str, ...] = (),
    stack: str = "test",
) -> Project:
    """Copy the program and the example specs to `root` and create a stack."""
    root.mkdir(parents=True, exist_ok=True)
    project_file = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    project_file["runtime"]["options"]["virtualenv"] = str(ROOT / ".venv")
    (root / "Pulumi.yaml").write_text(yaml.safe_dump(project_file, sort_keys=False))
    shutil.copy(ROOT / "__main__.py", root / "__main__.py")
    (root / "stacks").mkdir(exist_ok=True)
    for name in ("example.com.yaml", "example.net.yaml"):
        shutil.copy(ROOT / "stacks" / name, root / "stacks" / name)
    project = Project(root, stack)
    project.backend.mkdir(exist_ok=True)
    project.run("stack", "init", stack, "--secrets-provider", "passphrase")
    project.run("config", "set", "--stack", stack, "mailbridge:spec", f"stacks/{spec}")
    if peers:
        project.run(
            "config",
            "set",
            "--stack",
            stack,
            "--path",
            "mailbridge:peers[0]",
            f"stacks/{peers[0]}",
        )
    args = ["config", "set-all", "--stack", stack, "--path"]
    for name, value in secrets.items():
        args += ["--secret", f"mailbridge:secrets.{name}={value}"]
    project.run(*args)
    return project


def copy_checkout(root: Path) -> Path:
    """A copy of the checkout's program, scripts and stacks at `root`.

    It links this checkout's virtualenv and engine, and gets the lock file
    the virtualenv was synced from, so `scripts/bootstrap` there has
    nothing to do; whatever runs in it keeps its state inside `root`.
    """
    for folder in ("scripts", "stacks", "templates", "policies"):
        shutil.copytree(ROOT / folder, root / folder)
    for name in ("Pulumi.yaml", "__main__.py", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copy(ROOT / ".venv" / ".lock-stamp", root / "requirements.lock")
    (root / ".venv").symlink_to(ROOT / ".venv")
    (root / ".tools").symlink_to(ROOT / ".tools")
    return root


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Pulumi's or mailbridge's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PULUMI_", "MAILBRIDGE_"))
    }
    env["PATH"] = f"{TOOLS}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env
