"""A minimal real Postfix for the TLS tests: STARTTLS and implicit TLS ports.

Each listener may carry its own certificate (master.cf `-o` overrides), so
one Postfix serves the valid, the expired and the wrong-name certificate.
Postfix only starts from a config folder that the default main.cf lists in
`alternate_config_directories`; `allow_config_dir` adds it under a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.knot import free_port
from tests.verify.certs import Leaf

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
DEFAULT_MAIN_CF = Path("/etc/postfix/main.cf")

_SERVICES = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
virtual   unix  - n n -  - virtual
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def allow_config_dir(config_dir: Path) -> None:
    """List `config_dir` in the default main.cf, keeping the other entries."""
    with open("/run/mailbridge-postfix-config.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = subprocess.run(
            [POSTCONF, "-h", "alternate_config_directories"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        entries = [e.strip(",") for e in current if e.strip(",")]
        if str(config_dir) in entries:
            return
        value = ", ".join([*entries, str(config_dir)])
        subprocess.run(
            [POSTCONF, "-e", f"alternate_config_directories = {value}"], check=True
        )


@dataclass
class Listener:
    port: int
    leaf: Leaf
    implicit: bool = False


@dataclass
class MailHost:
    """A running Postfix; `listeners` name each port's TLS set-up."""

    root: Path
    hostname: str
    domain: str
    aliases: dict[str, str]
    listeners: dict[str, Listener] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "maillog"

    def write_config(self) -> None:
        etc = self.config_dir
        etc.mkdir(parents=True, exist_ok=True)
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        shutil.chown(data, "postfix")
        (self.root / "log").mkdir(exist_ok=True)
        (self.root / "queue").mkdir(exist_ok=True)
        virtual = etc / "virtual"
        virtual.write_text("".join(f"{a} {t}\n" for a, t in self.aliases.items()))
        first = next(iter(self.listeners.values())).leaf
        main = f"""\
compatibility_level = 3.6
queue_directory = {self.root / "queue"}
data_directory = {data}
myhostname = {self.hostname}
mydomain = {self.domain}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# The verify client dials from 127.0.0.1: outside mynetworks, it is "the internet".
mynetworks = 127.0.0.9/32
virtual_alias_domains = {self.domain}
virtual_alias_maps = texthash:{virtual}
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
smtpd_banner = $myhostname ESMTP
smtpd_tls_security_level = may
smtpd_tls_chain_files = {first.key}, {first.cert}
smtpd_tls_protocols = >=TLSv1.2
maillog_file = {self.log_path}
maillog_file_prefixes = {self.root}
biff = no
smtputf8_enable = no
"""
        (etc / "main.cf").write_text(main)
        lines = []
        for listener in self.listeners.values():
            chain = f"{listener.leaf.key},{listener.leaf.cert}"
            options = f" -o smtpd_tls_chain_files={chain}"
            if listener.implicit:
                options += " -o smtpd_tls_wrappermode=yes"
            lines.append(f"127.0.0.1:{listener.port} inet n - n - - smtpd{options}")
        (etc / "master.cf").write_text("\n".join(lines) + "\n" + _SERVICES)

    def _postfix(self, *args: str) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"postfix {' '.join(args)} failed: {done.stdout}{done.stderr}\n"
                + self.log_text()
            )

    def start(self) -> None:
        self.write_config()
        allow_config_dir(self.config_dir)
        self._postfix("start")
        for listener in self.listeners.values():
            _wait_for(listener.port, self)

    def stop(self) -> None:
        pid_file = self.root / "queue" / "pid" / "master.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        with contextlib.suppress(RuntimeError):  # already stopped
            self._postfix("stop")
        # `postfix stop` returns before the master has exited.
        deadline = time.monotonic() + 10
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no Postfix log)"


def _wait_for(port: int, host: MailHost, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"Postfix does not listen on {port}:\n{host.log_text()}")


def start_mail_host(
    hostname: str, domain: str, aliases: dict[str, str], leaves: dict[str, Leaf]
) -> MailHost:
    """Postfix with `smtp`, `submissions`, `submission` on the valid leaf and
    `smtp-expired`, `smtp-wrongname` on the other two (all free ports)."""
    root = Path(tempfile.mkdtemp(prefix="mailbridge-verify-postfix-"))
    root.chmod(0o755)
    host = MailHost(root, hostname, domain, aliases)
    host.listeners = {
        "smtp": Listener(free_port(), leaves["valid"]),
        "submissions": Listener(free_port(), leaves["valid"], implicit=True),
        "submission": Listener(free_port(), leaves["valid"]),
        "smtp-expired": Listener(free_port(), leaves["expired"]),
        "smtp-wrongname": Listener(free_port(), leaves["wrongname"]),
    }
    host.start()
    return host
