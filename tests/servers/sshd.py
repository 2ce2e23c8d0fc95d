"""A real OpenSSH server on loopback that lets root in with one test key.

The server runs from a temporary folder: its own host key, config, and
authorized keys file, on 127.0.0.1 at a free high port. Clients check the
host key against `host_key_line`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.common import ServerError, free_port, stop_process, wait_for_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
# sshd refuses to start without its privilege separation folder.
PRIVSEP_DIR = Path("/run/sshd")


@dataclass
class SSHServer:
    """A running sshd; `client_key` is the private key root may log in with."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    host_key_line: str
    client_key: str
    address: str = "127.0.0.1"
    user: str = "root"

    @property
    def log_path(self) -> Path:
        return self.root / "sshd.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return "(no sshd log)"

    def stop(self) -> None:
        stop_process(self.process)


def keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(
        [
            SSH_KEYGEN,
            "-q",
            "-t",
            kind,
            "-N",
            "",
            "-C",
            "mailbridge-test",
            "-f",
            str(path),
        ],
        check=True,
        capture_output=True,
    )


def start_sshd(root: Path) -> SSHServer:
    """Start sshd under `root`; returns once it accepts connections."""
    if not Path(SSHD).exists():
        pytest.fail("sshd is missing: run scripts/bootstrap (Debian openssh-server)")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    host_key = root / "host_ed25519"
    client_key = root / "client_ed25519"
    keygen(host_key)
    keygen(client_key)
    authorized = root / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"""\
ListenAddress 127.0.0.1:{port}
HostKey {host_key}
PidFile {root / "sshd.pid"}
AuthorizedKeysFile {authorized}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""
    )
    with (root / "sshd.log").open("wb") as log_file:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    server = SSHServer(
        root=root,
        port=port,
        process=process,
        host_key_line=host_key.with_suffix(".pub").read_text().strip(),
        client_key=client_key.read_text(),
    )
    try:
        wait_for_port(
            port,
            server.address,
            timeout=10,
            process=process,
            log=server.log_path,
            name="sshd",
        )
    except ServerError:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """An OpenSSH server on loopback for the tests of one module."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()
