"""A real Knot DNS server on loopback, serving zones the tests hand it.

Knot keeps its folders owned by root (root here cannot write into folders
owned by other users), listens on 127.0.0.1 at a free high port, and accepts
dynamic updates (RFC 2136) signed with one TSIG key.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.common import stop_process

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"


def free_port() -> int:
    """A TCP and UDP port on 127.0.0.1 that nothing listens on right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port for Knot")


@dataclass
class KnotServer:
    """A running knotd; `add_zone` (re)loads a zone from text."""

    root: Path
    port: int
    tsig_name: str = "mailbridge-test"
    tsig_algorithm: str = "hmac-sha256"
    tsig_secret: str = field(
        default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
    address: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    zones: dict[str, str] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.root / "knot.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "knot.log"

    def keyring(self) -> dict[str, object]:
        """A dnspython keyring for the server's TSIG key."""
        import dns.name
        import dns.tsig

        key = dns.tsig.Key(self.tsig_name, self.tsig_secret, self.tsig_algorithm)
        return {dns.name.from_text(self.tsig_name): key}

    def _write_config(self) -> None:
        zones = "\n".join(
            f"  - domain: {name}\n    file: {self.root / 'zones' / (name + '.zone')}"
            for name in sorted(self.zones)
        )
        config = f"""\
server:
    rundir: {self.root / "run"}
    listen: {self.address}@{self.port}
log:
  - target: {self.log_path}
    any: info
database:
    storage: {self.root / "db"}
key:
  - id: {self.tsig_name}
    algorithm: {self.tsig_algorithm}
    secret: {self.tsig_secret}
acl:
  - id: updates
    key: {self.tsig_name}
    action: update
template:
  - id: default
    storage: {self.root / "zones"}
    acl: updates
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
    semantic-checks: on
zone:
{zones if zones else "  []"}
"""
        if not zones:
            config = config.replace("zone:\n  []\n", "")
        self.config_path.write_text(config)

    def add_zone(self, name: str, text: str) -> None:
        """Serve `text` as zone `name`, replacing an earlier version."""
        name = name.rstrip(".")
        self.zones[name] = text
        (self.root / "zones" / f"{name}.zone").write_text(text)
        self._write_config()
        if self.process is not None:
            self._knotc("reload")
            self._wait_zone(name)

    def _knotc(self, *args: str) -> str:
        done = subprocess.run(
            [KNOTC, "-c", str(self.config_path), "-t", "10", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"knotc {' '.join(args)} failed: {done.stdout}{done.stderr}\n"
                + self.log_text()
            )
        return done.stdout

    def _wait_zone(self, name: str, timeout: float = 10.0) -> None:
        import dns.message
        import dns.query
        import dns.rcode

        deadline = time.monotonic() + timeout
        while True:
            query = dns.message.make_query(name, "SOA")
            try:
                reply = dns.query.udp(query, self.address, port=self.port, timeout=1)
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    return
            except (OSError, dns.exception.Timeout):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Knot did not serve {name}:\n{self.log_text()}")
            time.sleep(0.1)

    def start(self) -> None:
        for sub in ("run", "db", "zones"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._write_config()
        self.process = subprocess.Popen(
            [KNOTD, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"knotd exited:\n{self.log_text()}")
            with socket.socket() as probe:
                if probe.connect_ex((self.address, self.port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"knotd did not listen:\n{self.log_text()}")
            time.sleep(0.05)
        for name in self.zones:
            self._wait_zone(name)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return "(no Knot log)"


def start_knot(root: Path, zones: dict[str, str] | None = None) -> KnotServer:
    """Start knotd under `root` with `zones` (name -> zone file text)."""
    if not Path(KNOTD).exists():
        pytest.fail("knotd is missing: run scripts/bootstrap (Debian package knot)")
    server = KnotServer(root=root, port=free_port())
    for sub in ("run", "db", "zones"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, text in (zones or {}).items():
        server.zones[name.rstrip(".")] = text
        (root / "zones" / f"{name.rstrip('.')}.zone").write_text(text)
    server.start()
    return server


@pytest.fixture
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    """A Knot DNS server with no zones yet; add them with `add_zone`."""
    server = start_knot(tmp_path_factory.mktemp("knot"))
    try:
        yield server
    finally:
        server.stop()
