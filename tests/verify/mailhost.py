"""A minimal real Postfix for the TLS tests: STARTTLS and implicit TLS ports.

Each listener carries its own certificate (master.cf `-o` overrides), so
one Postfix serves the valid, the expired and the wrong-name certificate.
Starting, stopping and the `alternate_config_directories` entry come from
the shared helpers of tests/servers/postfix.py; this module only writes the
configuration.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.common import free_port, remove_dir, server_dir
from tests.servers.postfix import (
    INTERNAL_SERVICES,
    PostfixServer,
    allowed_config_directory,
    prepare_runtime,
)
from tests.verify.certs import Leaf


@dataclass
class Listener:
    port: int
    leaf: Leaf
    implicit: bool = False


@dataclass
class MailHost:
    """The Postfix of one test module; `listeners` name each port's TLS set-up."""

    root: Path
    hostname: str
    domain: str
    aliases: dict[str, str]
    listeners: dict[str, Listener] = field(default_factory=dict)
    server: PostfixServer | None = None

    @property
    def config_dir(self) -> Path:
        return self.root / "etc" / "postfix"

    @property
    def log_path(self) -> Path:
        return self.root / "var" / "log" / "postfix.log"

    def write_config(self) -> None:
        etc = self.config_dir
        etc.mkdir(parents=True, exist_ok=True)
        virtual = etc / "virtual"
        virtual.write_text("".join(f"{a} {t}\n" for a, t in self.aliases.items()))
        first = next(iter(self.listeners.values())).leaf
        main = f"""\
compatibility_level = 3.6
queue_directory = {self.root / "var/spool/postfix"}
data_directory = {self.root / "var/lib/postfix"}
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
        (etc / "master.cf").write_text("\n".join(lines) + "\n" + INTERNAL_SERVICES)

    def log_text(self) -> str:
        return self.server.log_text()[-4000:] if self.server else "(not started)"


@contextlib.contextmanager
def running_mail_host(
    hostname: str, domain: str, aliases: dict[str, str], leaves: dict[str, Leaf]
) -> Iterator[MailHost]:
    """Postfix with `smtp`, `submissions`, `submission` on the valid leaf and
    `smtp-expired`, `smtp-wrongname` on the other two (all free ports)."""
    root = server_dir("mailbridge-verify-postfix")
    host = MailHost(root, hostname, domain, aliases)
    host.listeners = {
        "smtp": Listener(free_port(), leaves["valid"]),
        "submissions": Listener(free_port(), leaves["valid"], implicit=True),
        "submission": Listener(free_port(), leaves["valid"]),
        "smtp-expired": Listener(free_port(), leaves["expired"]),
        "smtp-wrongname": Listener(free_port(), leaves["wrongname"]),
    }
    try:
        with allowed_config_directory(host.config_dir):
            prepare_runtime(root)
            host.write_config()
            host.server = PostfixServer(host.config_dir, host.log_path)
            try:
                host.server.start([lst.port for lst in host.listeners.values()])
                yield host
            finally:
                host.server.stop()
    finally:
        remove_dir(root)
