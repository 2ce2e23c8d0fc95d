"""render_host and write_tree: determinism, modes, secrets, atomic writes."""

from __future__ import annotations

import grp
import logging
import os
import stat
import sys
from pathlib import Path

import pytest

from mailbridge.cli.main import main
from mailbridge.errors import InputError
from mailbridge.render import HostOptions, RenderedFile, render_host, write_tree
from mailbridge.secrets import SecretStore
from mailbridge.spec import load_specs
from tests.render.hosts import TEST_PASSWORDS
from tests.render.specs import COM, spec

FAST = HostOptions(password_cost=4)


def render(options: HostOptions = FAST) -> dict[str, RenderedFile]:
    return render_host([spec(COM)], SecretStore(TEST_PASSWORDS, environ={}), options)


def test_same_input_gives_identical_files() -> None:
    assert render() == render()


def test_secrets_only_in_protected_files() -> None:
    files = render()

    assert files["etc/dovecot/passwd"].mode == 0o640
    assert files["etc/dovecot/passwd"].group == "dovecot"
    assert files["etc/postsrsd.secret"].mode == 0o600
    assert files["etc/postsrsd.secret"].content.decode().splitlines() == [
        TEST_PASSWORDS["srs-new"],
        TEST_PASSWORDS["srs-old"],
    ]
    for path, item in files.items():
        text = item.content.decode()
        assert "PRIVATE KEY" not in text, path
        if item.mode & 0o044:
            for value in TEST_PASSWORDS.values():
                assert value not in text, f"{path} holds a secret"


def test_dkim_keys_are_referenced_by_path() -> None:
    files = render(HostOptions(password_cost=4, keys_dir="/etc/dkim"))

    table = files["etc/opendkim/KeyTable"].content.decode()
    assert (
        "s2026a._domainkey.example.com example.com:s2026a:"
        "/etc/dkim/example.com/s2026a.key"
    ) in table


def test_write_tree_sets_modes_and_replaces_the_old_tree(tmp_path: Path) -> None:
    out = tmp_path / "host"
    write_tree({"stale/file": RenderedFile(b"old")}, out)
    files = render()

    write_tree(files, out)

    assert not (out / "stale").exists()
    for rel, item in files.items():
        info = (out / rel).stat()
        assert (out / rel).read_bytes() == item.content
        assert stat.S_IMODE(info.st_mode) == item.mode
        if item.group is not None and os.geteuid() == 0:
            assert info.st_gid == grp.getgrnam(item.group).gr_gid
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host"]


def test_write_tree_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    with pytest.raises(InputError) as err:
        write_tree({"a.txt": RenderedFile(b"x")}, tmp_path)

    assert "did not write" in err.value.to_text()
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_write_tree_failure_keeps_the_old_tree(tmp_path: Path) -> None:
    out = tmp_path / "host"
    write_tree({"a.txt": RenderedFile(b"first")}, out)

    with pytest.raises(ValueError):
        write_tree(
            {"b.txt": RenderedFile(b"new"), "../escape": RenderedFile(b"x")}, out
        )

    assert (out / "a.txt").read_bytes() == b"first"
    assert not (out / "b.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host"]


def with_fetch_job() -> dict[str, object]:
    data = dict(COM)
    data["fetch"] = [
        {
            "name": "isp",
            "pop3": {
                "host": "pop.isp.example",
                "username": "u",
                "password": "secret:isp",
            },
            "deliver_to": "alice.example@gmail.com",
            "via": "imap",
            "imap": {"password": "secret:gmail-app"},
        }
    ]
    return data


def test_sidecar_config_comes_from_the_sidecar_module() -> None:
    render_sidecar = pytest.importorskip("mailbridge.sidecar.render")
    specs = [spec(with_fetch_job())]
    secrets = SecretStore(
        {**TEST_PASSWORDS, "isp": "p1", "gmail-app": "p2"}, environ={}
    )

    files = render_host(specs, secrets, FAST)

    expected = render_sidecar.render_sidecar_config(specs).encode()
    assert files["etc/mailbridge/sidecar.yaml"].content == expected
    folder = render_sidecar.SECRETS_DIR.lstrip("/")
    assert files[f"{folder}/isp"] == RenderedFile(b"p1", 0o600)
    assert files[f"{folder}/gmail-app"] == RenderedFile(b"p2", 0o600)


def test_missing_sidecar_module_skips_its_file(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "mailbridge.sidecar.render", None)
    secrets = SecretStore(
        {**TEST_PASSWORDS, "isp": "p1", "gmail-app": "p2"}, environ={}
    )

    with caplog.at_level(logging.INFO, logger="mailbridge.render.sidecar"):
        files = render_host([spec(with_fetch_job())], secrets, FAST)

    assert "etc/mailbridge/sidecar.yaml" not in files
    assert "sidecar module missing" in caplog.text


def test_host_and_sidecar_secrets_are_missed_in_one_report(stacks_dir: Path) -> None:
    """A user fixes every missing secret in one round, not two."""
    loaded = load_specs([stacks_dir / "example.com.yaml"])

    with pytest.raises(InputError) as err:
        render_host([loaded[0].spec], SecretStore({}, environ={}), FAST)

    assert len(err.value.problems) == 1
    assert err.value.problems[0].message == (
        "secret values are missing: alice-password, archive-password, "
        "gmail-client-secret, gmail-refresh-token, isp-pop3, srs-2026a"
    )


def test_cli_writes_the_tree(
    tmp_path: Path, stacks_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "HELPDESK_PASSWORD": "h",
        "SRS_NET_2026A": "s",
    }.items():
        monkeypatch.setenv(f"MAILBRIDGE_SECRET_{name}", value)

    main(["render", str(stacks_dir / "example.net.yaml"), str(tmp_path / "out")])

    main_cf = (tmp_path / "out/etc/postfix/main.cf").read_text()
    assert "myhostname = mail.example.net" in main_cf


def test_cli_names_missing_secrets_and_exits_2(
    tmp_path: Path,
    stacks_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MAILBRIDGE_SECRET_HELPDESK_PASSWORD", raising=False)
    monkeypatch.delenv("MAILBRIDGE_SECRET_SRS_NET_2026A", raising=False)

    with pytest.raises(SystemExit) as done:
        main(["render", str(stacks_dir / "example.net.yaml"), str(tmp_path / "out")])

    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{stacks_dir / 'example.net.yaml'}: error: ")
    assert "helpdesk-password" in err and "srs-net-2026a" in err
    assert not (tmp_path / "out").exists()


def test_cli_names_the_specs_of_a_host_wide_problem(
    tmp_path: Path, stacks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["render", str(stacks_dir), str(tmp_path / "out")])

    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{stacks_dir}: error: mail_host.hostname: ")
    assert "mail.example.net, mx1.example.com" in err
    assert "--host NAME" in err


def test_cli_names_an_output_folder_it_may_not_replace(
    tmp_path: Path,
    stacks_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MAILBRIDGE_SECRET_HELPDESK_PASSWORD", "h")
    monkeypatch.setenv("MAILBRIDGE_SECRET_SRS_NET_2026A", "s")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    spec_file = str(stacks_dir / "example.net.yaml")

    with pytest.raises(SystemExit) as refused:
        main(["render", spec_file, str(mine)])
    refused_err = capsys.readouterr().err
    with pytest.raises(SystemExit) as failed:
        main(["render", spec_file, str(blocker / "out")])
    failed_err = capsys.readouterr().err

    assert refused.value.code == failed.value.code == 2
    assert refused_err.startswith(f"{mine}: error: ")
    assert "holds files that mailbridge did not write" in refused_err
    assert (mine / "notes.txt").read_text() == "keep me\n"
    assert failed_err.startswith(f"{blocker / 'out'}: error: (document): cannot write")
