"""`scripts/up`, the README's main job, as a user runs it, on a copy.

The copy (`copy_checkout`) keeps its `.pulumi-state` and `build/` inside
the test's folder.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mailbridge.verify.deployed import read_stack_outputs
from tests.pulumi.engine import clean_env, copy_checkout, require_engine

pytestmark = [pytest.mark.engine, pytest.mark.slow]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_engine()
    return copy_checkout(tmp_path_factory.mktemp("checkout"))


def _up(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(checkout / "scripts/up"), *args],
        cwd=checkout,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _shown(stdout: str, label: str) -> Path:
    found = re.search(rf"^up: {label}: +(\S+)$", stdout, re.MULTILINE)
    assert found, f"no '{label}' line in:\n{stdout}"
    return Path(found.group(1))


def test_up_deploys_the_example_and_says_where_the_results_are(
    checkout: Path,
) -> None:
    done = _up(checkout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    zone = _shown(done.stdout, "zone fragment")
    host = _shown(done.stdout, "host tree")
    outputs = _shown(done.stdout, "outputs")
    assert zone == checkout / "build/dns/example.com.zone"
    assert host == checkout / "build/host"
    assert (host / "etc/postfix/main.cf").is_file()
    assert outputs.parent == checkout / ".pulumi-state/outputs"
    passphrase = checkout / ".pulumi-state/passphrase"
    assert passphrase.stat().st_mode & 0o077 == 0

    # The outputs file is what verify reads: its key is the zone's key.
    deployed = read_stack_outputs([outputs])["example.com"]
    value = deployed.values["s2026a"]
    key = value.split("p=")[1]
    assert key[:60] in zone.read_text()
    assert "PRIVATE KEY" not in outputs.read_text()

    again = _up(checkout)
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(r"^\s+\d+ unchanged$", again.stdout, re.MULTILINE)
    assert "created" not in again.stdout
    assert read_stack_outputs([outputs])["example.com"].values == deployed.values


def test_a_second_stack_on_the_same_host_tree_is_named(checkout: Path) -> None:
    """Both examples keep the default host root: the user is told so."""
    done = _up(checkout, "example.net")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _shown(done.stdout, "host tree") == checkout / "build/host"
    assert (
        f"up: warning: stack example.com also writes {checkout / 'build/host'}"
        in done.stderr
    )


def test_unknown_stack_names_the_stacks(checkout: Path) -> None:
    done = _up(checkout, "example.org")
    assert done.returncode == 2
    assert "no stack file stacks/Pulumi.example.org.yaml" in done.stderr
    assert "example.com" in done.stderr and "example.net" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_secret_set_in_the_local_stack_is_deployed(checkout: Path) -> None:
    """The commands docs/howto-new-domain.md gives to set a real secret value."""
    state = checkout / ".pulumi-state"
    env = clean_env(
        PULUMI_BACKEND_URL=f"file://{state}/backend",
        PULUMI_HOME=str(state / "home"),
        PULUMI_CONFIG_PASSPHRASE_FILE=str(state / "passphrase"),
        PULUMI_SKIP_UPDATE_CHECK="true",
    )
    value = "srs-value-set-by-hand-0123456789"
    subprocess.run(
        [
            "pulumi",
            "-C",
            ".pulumi-state",
            "config",
            "set",
            "--stack",
            "example.com",
            "--secret",
            "--path",
            "mailbridge:secrets.srs-2026a",
        ],
        input=value,
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    working = (state / "stacks/Pulumi.example.com.yaml").read_text()
    assert value not in working and "secure:" in working
    done = _up(checkout)
    assert done.returncode == 0, done.stderr[-3000:]
    secret_file = checkout / "build/host/etc/postsrsd.secret"
    assert value in secret_file.read_text()
    assert value not in done.stdout + done.stderr


def test_a_bad_spec_stops_up_with_its_problems(tmp_path: Path) -> None:
    """A spec with problems stops the main job before Pulumi runs, with the
    located problems and status 2, as `mailbridge validate` reports them."""
    bad = copy_checkout(tmp_path / "checkout")
    spec = bad / "stacks/example.com.yaml"
    spec.write_text(spec.read_text().replace("domain: example.com", "domain: -bad-"))
    done = _up(bad)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "stacks/example.com.yaml:3:9: error: domain:" in done.stderr
    assert "Traceback" not in done.stderr
    assert "deployed" not in done.stdout
