"""The workflow's preview step, run as GitHub would run it, on a copy.

Without a team backend (`PULUMI_BACKEND_URL` empty) the step previews
against a throw-away state; the spec's secrets come from the environment
(`MAILBRIDGE_SECRET_<NAME>`), as the workflow exports them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mailbridge.secrets import env_name
from tests.pulumi.conftest import EXAMPLE_SECRETS
from tests.pulumi.engine import ROOT, clean_env, copy_checkout, require_engine

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def _step(job: str, name: str) -> dict[str, str]:
    workflow = yaml.safe_load((ROOT / ".github/workflows/mailbridge.yml").read_text())
    (step,) = [s for s in workflow["jobs"][job]["steps"] if s.get("name") == name]
    return dict(step)


def test_preview_without_a_team_backend(tmp_path: Path) -> None:
    require_engine()
    checkout = copy_checkout(tmp_path / "checkout")
    (checkout / "out").mkdir()
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    outputs = tmp_path / "github-output"
    secrets = {env_name(name): value for name, value in EXAMPLE_SECRETS.items()}
    env = clean_env(
        PULUMI_BACKEND_URL="",
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_HOME=str(tmp_path / "pulumi-home"),
        RUNNER_TEMP=str(runner_temp),
        GITHUB_OUTPUT=str(outputs),
        STACK="example.com",
        **secrets,
    )
    step = _step("preview", "Preview with the policy pack")
    subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    plan = (checkout / "out/plan-example.com.txt").read_text()
    assert outputs.read_text().strip() == "status=0", plan[-3000:]
    assert "Policy Packs run:" in plan and "mailbridge|local|policies" in plan
    assert "+ 9 to create" in plan, plan[-3000:]
    assert (runner_temp / "pulumi-state/.pulumi").is_dir()
    for value in EXAMPLE_SECRETS.values():
        assert value not in plan


def _deploy(
    checkout: Path, tmp_path: Path, **secrets: str
) -> subprocess.CompletedProcess[str]:
    env = clean_env(
        PULUMI_BACKEND_URL="",
        PULUMI_SKIP_UPDATE_CHECK="true",
        STACK="example.com",
        **secrets,
    )
    return subprocess.run(
        ["bash", "-e", "-c", _step("deploy", "pulumi up")["run"]],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_deploy_without_a_team_backend_never_invents_secrets(tmp_path: Path) -> None:
    """scripts/up would give a missing secret a random value: CI refuses first."""
    require_engine()
    checkout = copy_checkout(tmp_path / "checkout")
    secrets = {env_name(name): value for name, value in EXAMPLE_SECRETS.items()}
    lacking = dict(secrets)
    lacking.pop(env_name("alice-password"))
    refused = _deploy(checkout, tmp_path, **lacking)
    assert refused.returncode == 1
    assert refused.stdout.startswith("::error::stack example.com: no value for ")
    assert env_name("alice-password") in refused.stdout
    assert not (checkout / ".pulumi-state").exists()

    done = _deploy(checkout, tmp_path, **secrets)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "set example secret" not in done.stdout
    host = checkout / "build/host"
    assert EXAMPLE_SECRETS["srs-2026a"] in (host / "etc/postsrsd.secret").read_text()


def test_deploy_to_a_real_target_without_a_team_backend_is_refused(
    tmp_path: Path,
) -> None:
    """Without a team backend every run would start from empty state and
    make new DKIM keys for a real name server or host: CI refuses."""
    checkout = copy_checkout(tmp_path / "checkout")
    spec = checkout / "stacks/example.com.yaml"
    spec.write_text(
        spec.read_text()
        + "dns:\n  backend: rfc2136\n  server: 192.0.2.53\n"
        + '  tsig: {name: deploy.example.com, secret: "secret:tsig"}\n'
    )
    secrets = {env_name(name): value for name, value in EXAMPLE_SECRETS.items()}
    refused = _deploy(checkout, tmp_path, **secrets, **{env_name("tsig"): "c2VjcmV0"})
    assert refused.returncode == 1
    assert refused.stdout.startswith(
        "::error::stack example.com deploys to a real name server; set "
        "PULUMI_BACKEND_URL"
    ), refused.stdout + refused.stderr
    assert not (checkout / ".pulumi-state").exists()
