"""The real Pulumi engine on a local file backend: up, no-op, change, destroy.

These run the engine that scripts/bootstrap builds into .tools/bin, on a
copy of the project with its own backend under the test's folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.deploy.rfc2136 import (
    ServerSettings,
    delete_rrset,
    read_rrset,
    replace_rrset,
)
from tests.pulumi.conftest import EXAMPLE_SECRETS
from tests.pulumi.engine import ROOT, Project, make_project, require_engine
from tests.servers.knot import KnotServer, free_port
from tests.servers.sshd import SSHServer, sshd  # noqa: F401

POLICIES = ROOT / "policies"

pytestmark = [pytest.mark.engine, pytest.mark.slow]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    require_engine()
    project = make_project(tmp_path_factory.mktemp("engine"), EXAMPLE_SECRETS)
    yield project


def _mtimes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_up_noop_change_destroy(deployed: Project) -> None:
    project = deployed
    project.up()
    outputs = project.outputs()
    zone = Path(outputs["zone_fragment"])
    host = Path(outputs["host_root"])
    assert zone == project.root / "build/dns/example.com.zone"
    assert host == project.root / "build/host"
    zone_text = zone.read_text()
    assert re.search(r"s2026a\._domainkey +\d+ IN TXT \"v=DKIM1; k=rsa; p=", zone_text)
    assert (host / "etc/postfix/main.cf").is_file()
    assert (host / "etc/opendkim/keys/example.com/s2026a.key").is_file()
    assert outputs["signing"] == ["s2026a"]

    # Secrets stay secret in the state: no value, no private key in clear.
    state = project.state_text()
    for value in EXAMPLE_SECRETS.values():
        assert value not in state
    assert "PRIVATE KEY" not in state
    assert '"secure"' in state or "ciphertext" in state

    # A second up changes nothing, and leaves every file alone.
    before = _mtimes(host)
    assert set(project.preview_steps().values()) == {"same"}
    project.up("--expect-no-changes")
    assert _mtimes(host) == before

    # One forwarder edited: only the host's files follow, one file changes.
    project.edit_spec("bob.smith@gmail.com", "bob.jones@gmail.com")
    changed = {name: op for name, op in project.preview_steps().items() if op != "same"}
    assert changed == {"example.com": "update", "example.com-host-files": "update"}
    project.up()
    after = _mtimes(host)
    assert {p for p in after if after[p] != before.get(p)} == {
        "etc/postfix/virtual_alias"
    }
    assert "bob.jones@gmail.com" in (host / "etc/postfix/virtual_alias").read_text()
    assert zone.read_text() == zone_text

    project.run("destroy", "--yes", "--stack", project.stack)
    assert not zone.exists()
    assert not any(p.is_file() for p in host.rglob("*"))
    assert project.outputs() == {}


def _knot_zone() -> str:
    return """$ORIGIN example.com.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
ns1 A 127.0.0.1
"""


@pytest.mark.servers
def test_rfc2136_against_knot(tmp_path: Path) -> None:
    require_engine()
    # The spec wants a TSIG key name that is a fully qualified name.
    knot = KnotServer(
        root=tmp_path / "knot", port=free_port(), tsig_name="deploy.example.com"
    )
    knot.zones["example.com"] = _knot_zone()
    (knot.root / "zones").mkdir(parents=True)
    (knot.root / "zones/example.com.zone").write_text(_knot_zone())
    knot.start()
    try:
        project = make_project(
            tmp_path / "project", {**EXAMPLE_SECRETS, "tsig": knot.tsig_secret}
        )
        spec = project.spec_path()
        spec.write_text(
            spec.read_text()
            + "dns:\n"
            + "  backend: rfc2136\n"
            + f"  server: {knot.address}\n"
            + f"  port: {knot.port}\n"
            + "  ttl: 300\n"
            + f"  tsig: {{name: {knot.tsig_name}, algorithm: {knot.tsig_algorithm}, "
            + 'secret: "secret:tsig"}\n'
        )
        settings = ServerSettings(
            knot.address,
            knot.port,
            "example.com",
            knot.tsig_name,
            knot.tsig_algorithm,
            knot.tsig_secret,
        )
        project.up()
        assert read_rrset(settings, "example.com", "MX").values == (  # type: ignore[union-attr]
            "10 mx1.example.com.",
        )
        dkim = read_rrset(settings, "s2026a._domainkey.example.com", "TXT")
        assert dkim is not None and "k=rsa" in dkim.values[0]
        assert knot.tsig_secret not in project.state_text()

        project.edit_spec("policy: quarantine", "policy: reject")
        project.up()
        dmarc = read_rrset(settings, "_dmarc.example.com", "TXT")
        assert dmarc is not None and "p=reject" in dmarc.values[0]

        # Drift: a record changed behind Pulumi's back shows in refresh.
        replace_rrset(
            settings, "_dmarc.example.com", "TXT", 300, ['"v=DMARC1; p=none"']
        )
        done = project.run("refresh", "--yes", "--stack", project.stack)
        updated = re.findall(r"RecordSet (\S+) updated", done.stdout)
        assert updated == ["example.com-dns-TXT-_dmarc.example.com"], done.stdout
        state = json.loads(
            project.run("stack", "export", "--stack", project.stack).stdout
        )
        found = [
            r["outputs"]["values"]
            for r in state["deployment"]["resources"]
            if r["urn"].endswith("::example.com-dns-TXT-_dmarc.example.com")
        ]
        assert found == [['"v=DMARC1; p=none"']]
        # Refreshed outputs keep the TSIG key and the DKIM key encrypted.
        assert knot.tsig_secret not in project.state_text()
        assert "PRIVATE KEY" not in project.state_text()
        steps = project.preview_steps()
        assert steps["example.com-dns-TXT-_dmarc.example.com"] == "update"
        project.up()
        assert "p=reject" in read_rrset(settings, "_dmarc.example.com", "TXT").values[0]  # type: ignore[union-attr]

        # The signing selector's record deleted behind Pulumi's back: refresh
        # sees it gone, and the next up publishes and confirms it again
        # instead of refusing to deploy from then on.
        dkim_name = "s2026a._domainkey.example.com"
        delete_rrset(settings, dkim_name, "TXT")
        project.run("refresh", "--yes", "--stack", project.stack)
        steps = project.preview_steps()
        assert steps[f"example.com-dns-TXT-{dkim_name}"] == "update"
        assert steps["example.com-dns-confirm-s2026a"] == "update"
        project.up()
        assert read_rrset(settings, dkim_name, "TXT") == dkim
        assert project.outputs()["signing"] == ["s2026a"]

        # Rotation through the primary: a new selector is published there
        # first, and signs only on the run after it was confirmed there.
        project.edit_spec(
            "    - {name: s2026a, algorithm: rsa, bits: 2048}",
            "    - {name: s2026a, algorithm: rsa, bits: 2048}\n"
            "    - {name: s2026b, algorithm: ed25519, state: published}",
        )
        project.up()
        new_name = "s2026b._domainkey.example.com"
        published = read_rrset(settings, new_name, "TXT")
        assert published is not None and "k=ed25519" in published.values[0]
        assert project.outputs()["signing"] == ["s2026a"]
        assert "s2026b" not in _key_table(project)
        project.edit_spec("bits: 2048}", "bits: 2048, state: retiring}")
        project.edit_spec("state: published}", "state: active}")
        project.up()
        assert project.outputs()["signing"] == ["s2026b"]
        assert "s2026b" in _key_table(project) and "s2026a" not in _key_table(project)
        assert read_rrset(settings, new_name, "TXT") == published
        assert read_rrset(settings, dkim_name, "TXT") == dkim, "kept while retiring"

        project.run("destroy", "--yes", "--stack", project.stack)
        for name, rtype in (
            ("example.com", "MX"),
            ("_dmarc.example.com", "TXT"),
            ("s2026a._domainkey.example.com", "TXT"),
            (new_name, "TXT"),
        ):
            assert read_rrset(settings, name, rtype) is None
        assert read_rrset(settings, "example.com", "SOA") is not None
    finally:
        knot.stop()


def test_policy_pack_blocks_a_loop(tmp_path: Path) -> None:
    require_engine()
    project = make_project(tmp_path, EXAMPLE_SECRETS)
    project.edit_spec(
        "  - {address: sales@example.com,",
        "  - {address: x@example.com, to: [y@example.com]}\n"
        "  - {address: y@example.com, to: [x@example.com]}\n"
        "  - {address: sales@example.com,",
    )
    done = project.run(
        "preview",
        "--stack",
        project.stack,
        "--policy-pack",
        str(POLICIES),
        check=False,
    )
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "mandatory" in text and "loop" in text
    assert "x@example.com -> y@example.com -> x@example.com" in text
    up = project.run(
        "up",
        "--yes",
        "--stack",
        project.stack,
        "--policy-pack",
        str(POLICIES),
        check=False,
    )
    assert up.returncode != 0
    assert not (project.root / "build").exists()


def _key_table(project: Project) -> str:
    """Every OpenDKIM instance's KeyTable (one per algorithm), joined."""
    tables = sorted((project.root / "build/host/etc/opendkim").rglob("KeyTable"))
    return "".join(t.read_text() for t in tables)


def _dkim_names(project: Project) -> list[str]:
    zone = (project.root / "build/dns/example.com.zone").read_text()
    return sorted(set(re.findall(r"^(s\w+)\._domainkey", zone, re.MULTILINE)))


def test_dkim_rotation(tmp_path: Path) -> None:
    require_engine()
    project = make_project(tmp_path, EXAMPLE_SECRETS)
    keys = project.root / "build/host/etc/opendkim/keys/example.com"
    project.up()
    assert _dkim_names(project) == ["s2026a"]
    old_zone = (project.root / "build/dns/example.com.zone").read_text()

    # 1. Publish the new selector; signing stays with the old one.
    project.edit_spec(
        "    - {name: s2026a, algorithm: rsa, bits: 2048}",
        "    - {name: s2026a, algorithm: rsa, bits: 2048}\n"
        "    - {name: s2026b, algorithm: ed25519, state: published}\n"
        "  retire_after_days: 0",
    )
    project.up()
    assert _dkim_names(project) == ["s2026a", "s2026b"]
    assert "s2026b" not in _key_table(project)
    assert sorted(p.name for p in keys.iterdir()) == ["s2026a.key"]
    assert project.outputs()["dkim"]["s2026b"]["state"] == "published"

    # 2. Switch signing; the old selector stays published while retiring.
    project.edit_spec("bits: 2048}", "bits: 2048, state: retiring}")
    project.edit_spec("state: published}", "state: active}")
    project.up()
    assert "s2026b" in _key_table(project) and "s2026a" not in _key_table(project)
    assert sorted(p.name for p in keys.iterdir()) == ["s2026b.key"]
    assert _dkim_names(project) == ["s2026a", "s2026b"]
    a_record = re.search(r"^s2026a\._domainkey.*$", old_zone, re.MULTILINE)
    assert a_record is not None
    zone = (project.root / "build/dns/example.com.zone").read_text()
    assert a_record.group(0) in zone  # the same key, never regenerated

    # 3. The window (0 days) has passed by the next run: the record goes.
    steps = project.preview_steps()
    assert steps["example.com-dkim-s2026a-pair"] == "update"
    project.up()
    assert _dkim_names(project) == ["s2026b"]
    assert project.outputs()["dkim"]["s2026a"]["retired"] is True

    # 4. The selector leaves the spec: its key leaves the state.
    project.edit_spec(
        "    - {name: s2026a, algorithm: rsa, bits: 2048, state: retiring}\n", ""
    )
    project.up()
    assert "s2026a" not in project.outputs()["dkim"]
    assert "example.com-dkim-s2026a-pair" not in project.state_text()
    assert _dkim_names(project) == ["s2026b"]


@pytest.mark.servers
def test_ssh_host(tmp_path: Path, sshd: SSHServer) -> None:  # noqa: F811
    require_engine()
    remote = tmp_path / "remote"
    project = make_project(
        tmp_path / "project", {**EXAMPLE_SECRETS, "ssh-key": sshd.client_key}
    )
    spec = project.spec_path()
    spec.write_text(
        spec.read_text()
        + "host:\n"
        + "  backend: ssh\n"
        + f"  host: {sshd.address}\n"
        + f"  port: {sshd.port}\n"
        + '  private_key: "secret:ssh-key"\n'
        + f"  host_key: {sshd.host_key_line}\n"
        + f"  root: {remote}\n"
        + "  reload: false\n"
    )
    project.up()
    assert (remote / "etc/postfix/main.cf").is_file()
    assert (remote / "etc/opendkim/keys/example.com/s2026a.key").is_file()
    assert "OPENSSH PRIVATE KEY" not in project.state_text()
    project.run("destroy", "--yes", "--stack", project.stack)
    assert not (remote / "etc").exists()


def test_secrets_from_the_environment_stay_out_of_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No config secrets at all: every value comes as MAILBRIDGE_SECRET_<NAME>."""
    require_engine()
    from mailbridge.secrets import env_name

    for name, value in EXAMPLE_SECRETS.items():
        monkeypatch.setenv(env_name(name), value)
    project = make_project(tmp_path, {})
    done = project.up()
    host = project.root / "build/host"
    srs = EXAMPLE_SECRETS["srs-2026a"]
    assert srs in (host / "etc/postsrsd.secret").read_text()
    project.run("refresh", "--yes", "--stack", project.stack)
    state = project.state_text()
    for value in EXAMPLE_SECRETS.values():
        assert value not in state
        assert value not in done.stdout + done.stderr
    assert "PRIVATE KEY" not in state


def test_a_missing_secret_is_named_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_engine()
    from mailbridge.secrets import env_name

    monkeypatch.delenv(env_name("alice-password"), raising=False)
    secrets = {k: v for k, v in EXAMPLE_SECRETS.items() if k != "alice-password"}
    project = make_project(tmp_path, secrets)
    done = project.run(
        "up", "--yes", "--skip-preview", "--stack", project.stack, check=False
    )
    text = done.stdout + done.stderr
    assert done.returncode != 0
    assert "secret values are missing: alice-password" in text, text[-3000:]
    assert "pulumi config set --secret --path mailbridge:secrets.NAME" in text
    assert "Traceback" not in text
    assert not (project.root / "build/host").exists()
