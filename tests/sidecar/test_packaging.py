"""The sidecar's packaging: the systemd unit, the Dockerfile and the
Kubernetes manifest agree with each other and with the config format."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mailbridge.sidecar.config import PostgresState, load_config

PACKAGING = Path(__file__).resolve().parents[2] / "packaging" / "sidecar"
UID = 10001


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(PACKAGING / "mailbridge-sidecar.service")
    return parser


def test_the_systemd_unit_runs_unprivileged_and_stops_gently() -> None:
    service = _unit()["Service"]
    assert service["User"] == "mailbridge"
    assert service["ExecStart"].split()[1:] == [
        "sidecar",
        "run",
        "--config",
        "/etc/mailbridge/sidecar.yaml",
    ]
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 60
    assert service["UMask"] == "0077"
    assert service["StateDirectory"] == "mailbridge"
    assert "/var/lib/mailbridge" in service["ReadWritePaths"].split()


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (PACKAGING / "mailbridge-sidecar.service").read_text()
    # The paths of this machine, so `verify` finds the programs it names.
    text = text.replace(
        "/opt/mailbridge/bin/mailbridge",
        str(Path(sys.executable).parent / "mailbridge"),
    ).replace("/usr/bin/chown", shutil.which("chown") or "/usr/bin/chown")
    unit = tmp_path / "mailbridge-sidecar.service"
    unit.write_text(text)
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    complaints = [
        line for line in (done.stdout + done.stderr).splitlines() if unit.name in line
    ]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_the_image_is_non_root_and_needs_no_pulumi() -> None:
    text = (PACKAGING / "Dockerfile").read_text()
    assert re.search(rf"^USER {UID}:{UID}$", text, re.MULTILINE)
    assert '"mailbridge", "sidecar", "run"' in text
    installs = re.findall(r"pip install[^\n]*", text)
    assert installs and all(
        "pulumi" not in line and "[" not in line for line in installs
    )


def test_the_kubernetes_manifest_holds_a_valid_config(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((PACKAGING / "kubernetes.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    config_file = tmp_path / "sidecar.yaml"
    config_file.write_text(kinds["ConfigMap"]["data"]["sidecar.yaml"])
    config = load_config(config_file)
    # Replicas share accounts only through PostgreSQL.
    assert isinstance(config.state, PostgresState)
    assert config.metrics.bind == "0.0.0.0"
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] >= 60
    (container,) = pod["containers"]
    assert container["args"] == ["--config", "/etc/mailbridge/sidecar.yaml"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/mailbridge"]["readOnly"] is True
    assert config.spool_dir is not None
    assert config.spool_dir.startswith("/var/lib/mailbridge")
    assert str(config.quarantine_dir).startswith("/var/lib/mailbridge")
    assert "/var/lib/mailbridge" in mounts
