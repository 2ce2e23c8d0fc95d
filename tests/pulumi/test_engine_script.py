"""`scripts/pulumi-engine`: which engine it picks, and that its pins agree.

Each run uses a copy of `scripts/` so that its `.tools/bin` is the test's
own; the built engine comes from the machine's cache, as in a real run.
A `pulumi` "installed on PATH" is a two-line shell script reporting a
version: only the selection by version is under test there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pulumi.engine import ROOT, TOOLS, clean_env, require_engine

SCRIPT = ROOT / "scripts" / "pulumi-engine"


def _setting(name: str) -> str:
    found = re.search(rf"^{name}=(\S+)$", SCRIPT.read_text(), re.MULTILINE)
    assert found, f"no {name}= in {SCRIPT}"
    return found.group(1)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.lstrip("v").split("."))


def test_pins_agree_with_the_lock_and_the_recipe() -> None:
    """The CLI is at least the locked SDK; CLI and SDK come from one release."""
    lock = (ROOT / "requirements.lock").read_text()
    sdk = re.search(r"^pulumi==(\S+)$", lock, re.MULTILINE)
    assert sdk is not None
    assert _setting("MIN_VERSION") == sdk.group(1)
    engine = _setting("ENGINE_VERSION")
    assert _version(engine) >= _version(sdk.group(1))
    go_mod = (ROOT / "scripts/pulumi-engine.d/go.mod").read_text()
    for module in ("pkg", "sdk"):
        assert f"github.com/pulumi/pulumi/{module}/v3 v{engine}" in go_mod


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    return tmp_path / "scripts" / "pulumi-engine"


def _run(script: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    cache = Path(os.readlink(TOOLS / "pulumi")).parents[2]
    return subprocess.run(
        [str(script), *args],
        env=clean_env(PATH=path, MAILBRIDGE_CACHE=str(cache)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _fake_pulumi(folder: Path, version: str) -> Path:
    folder.mkdir()
    fake = folder / "pulumi"
    fake.write_text(f"#!/bin/sh\necho {version}\n")
    fake.chmod(0o755)
    return fake


def _system_path() -> str:
    """PATH without any folder holding a `pulumi`, Go's folder kept."""
    keep = [
        d
        for d in os.environ.get("PATH", "").split(":")
        if d and not (Path(d) / "pulumi").exists()
    ]
    go = shutil.which("go")
    if go:
        keep.append(str(Path(go).parent))
    return ":".join(keep)


def test_an_older_installed_cli_is_ignored_for_the_built_one(tmp_path: Path) -> None:
    require_engine()
    built = Path(os.readlink(TOOLS / "pulumi")).parent
    if not (built.parent / "stamp").is_file():
        pytest.skip(f"{TOOLS / 'pulumi'} is an installed CLI, not a build")
    script = _copy(tmp_path)
    fake = _fake_pulumi(tmp_path / "old", "v3.100.0")
    done = _run(script, f"{fake.parent}:{_system_path()}", "--print-bin")
    assert done.returncode == 0, done.stderr
    assert "older than" in done.stderr
    tools = tmp_path / ".tools/bin"
    assert done.stdout.strip() == str(tools)
    assert (tools / "pulumi").resolve() == (TOOLS / "pulumi").resolve()
    for name in ("pulumi-language-python-exec", "pulumi-resource-pulumi-python"):
        assert os.access(tools / name, os.X_OK)
    version = subprocess.run(
        [str(tools / "pulumi"), "version"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
    )
    assert version.stdout.strip() == "v" + _setting("ENGINE_VERSION")


def test_a_newer_installed_cli_is_used_with_the_launchers(tmp_path: Path) -> None:
    script = _copy(tmp_path)
    fake = _fake_pulumi(tmp_path / "installed", "v3.999.0")
    done = _run(script, f"{fake.parent}:{_system_path()}")
    assert done.returncode == 0, done.stderr
    tools = tmp_path / ".tools/bin"
    assert done.stdout.strip() == str(tools / "pulumi")
    assert (tools / "pulumi").resolve() == fake
    recipe = ROOT / "scripts/pulumi-engine.d"
    for name in ("pulumi-language-python-exec", "pulumi-resource-pulumi-python"):
        launcher = tools / name
        assert os.access(launcher, os.X_OK)
        assert launcher.read_bytes() == (recipe / name).read_bytes()
