"""Host trees written to a folder here and to a real OpenSSH server on loopback."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.deploy.hostfiles import (
    HostError,
    HostFile,
    LocalTarget,
    SSHSettings,
    SSHTarget,
    Target,
    apply_tree,
    open_target,
    read_tree,
    reload_services,
    services_for,
)
from tests.servers.sshd import SSHServer, keygen, sshd  # noqa: F401

TREE = {
    "etc/postfix/main.cf": HostFile(b"myhostname = mx1.example.com\n"),
    "etc/dovecot/passwd": HostFile(b"alice:{BLF-CRYPT}x\n", 0o640, "dovecot"),
    "etc/postsrsd.secret": HostFile(b"s3cret\n", 0o600),
}


def _check_round_trip(target: Target, root: Path) -> None:
    assert apply_tree(target, TREE) == sorted(TREE)
    assert apply_tree(target, TREE) == []
    assert read_tree(target, TREE) == TREE
    passwd = root / "etc/dovecot/passwd"
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o640
    assert passwd.group() == "dovecot"

    changed = dict(TREE)
    changed["etc/postfix/main.cf"] = HostFile(b"myhostname = mx2.example.com\n")
    del changed["etc/postsrsd.secret"]
    written = apply_tree(target, changed, previous=TREE)
    assert written == ["etc/postfix/main.cf", "etc/postsrsd.secret"]
    assert not (root / "etc/postsrsd.secret").exists()
    assert (root / "etc/postfix/main.cf").read_bytes().endswith(b"mx2.example.com\n")

    for path in changed:
        target.remove(path)
    assert not (root / "etc").exists()


def test_ssh_settings_never_show_the_private_key() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n"
    settings = SSHSettings(host="192.0.2.1", port=22, user="deploy", private_key=key)
    assert "PRIVATE KEY" not in repr(settings) and "b3BlbnNzaC1rZXk" not in str(
        settings
    )


def test_local_target(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    _check_round_trip(target, tmp_path)


def test_paths_outside_the_tree_are_refused(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "root")
    with pytest.raises(HostError, match="outside the host tree"):
        target.write("../escape", HostFile(b"x"))


def test_services_and_reload(tmp_path: Path) -> None:
    assert services_for(["/etc/dovecot/passwd", "etc/postfix/main.cf"]) == [
        "postfix",
        "dovecot",
    ]
    assert services_for(["etc/opendkim/keys/example.com/s1.key"]) == ["opendkim"]
    assert services_for(
        [
            "etc/opendkim-ed25519.conf",
            "etc/systemd/system/opendkim-ed25519.service",
            "etc/rspamd/local.d/arc.conf",
        ]
    ) == ["systemd", "opendkim-ed25519", "rspamd"]
    marker = tmp_path / "reloaded"
    target = LocalTarget(tmp_path)
    done = reload_services(
        target, ["postfix", "unknown"], {"postfix": f"echo postfix >> {marker}"}
    )
    assert done == ["postfix"]
    assert marker.read_text() == "postfix\n"
    with pytest.raises(HostError, match="status 3"):
        reload_services(target, ["postfix"], {"postfix": "exit 3"})


@pytest.fixture
def remote_root(sshd: SSHServer, tmp_path: Path) -> Iterator[Path]:  # noqa: F811
    yield tmp_path / "remote"


@pytest.mark.servers
def test_ssh_target(sshd: SSHServer, remote_root: Path) -> None:  # noqa: F811
    settings = SSHSettings(
        host=sshd.address,
        port=sshd.port,
        user=sshd.user,
        private_key=sshd.client_key,
        host_key=sshd.host_key_line,
    )
    target = SSHTarget(settings, str(remote_root))
    try:
        _check_round_trip(target, remote_root)
        assert target.run("echo hello").strip() == "hello"
        with pytest.raises(HostError, match="status 4"):
            target.run("exit 4")
    finally:
        target.close()


@pytest.mark.servers
def test_ssh_refuses_a_wrong_host_key(
    sshd: SSHServer,  # noqa: F811
    remote_root: Path,
) -> None:
    keygen(remote_root.parent / "other")
    other = (remote_root.parent / "other.pub").read_text()
    connection = {
        "backend": "ssh",
        "host": sshd.address,
        "port": sshd.port,
        "user": sshd.user,
        "private_key": sshd.client_key,
        "host_key": other,
        "root": str(remote_root),
    }
    with pytest.raises(HostError, match="cannot log in"), open_target(connection):
        pass


def test_ssh_host_key_must_be_a_key_line(remote_root: Path) -> None:
    settings = SSHSettings("127.0.0.1", 1, "root", "", host_key="not-a-key")
    with pytest.raises(HostError, match="not an OpenSSH public key line"):
        SSHTarget(settings, str(remote_root))
