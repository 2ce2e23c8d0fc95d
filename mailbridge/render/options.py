"""What a rendered host tree is made of, and the settings a host may change."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

# Modes of rendered files: configs are world-readable, secrets are not.
PUBLIC = 0o644
SECRET = 0o600
GROUP_SECRET = 0o640


@dataclass(frozen=True)
class RenderedFile:
    """One file of the host tree: its bytes, mode and owning group.

    `group` is None for files owned by root's group; otherwise the named
    group must be able to read the file (mode 0640).
    """

    content: bytes
    mode: int = PUBLIC
    group: str | None = None


@dataclass(frozen=True)
class HostOptions:
    """Settings that differ between a production host and a test run.

    The defaults describe a Debian host serving the standard ports. Every
    absolute path below is a path on the host; `root` is prefixed to each of
    them in the rendered configs, so a test can run the servers from a
    temporary folder::

        HostOptions(root="/tmp/host", listen_address="127.0.0.1", smtp_port=2525)
    """

    root: str = "/"
    hostname: str | None = None
    listen_address: str | None = None
    smtp_port: int = 25
    submission_port: int = 587
    smtps_port: int = 465
    pop3_port: int = 110
    pop3s_port: int = 995
    imap_port: int = 143
    imaps_port: int = 993
    opendkim_port: int = 8891
    opendkim_ed25519_port: int = 8892
    arc: bool = True
    rspamd_milter_port: int = 11332
    rspamd_normal_port: int = 11333
    rspamd_controller_port: int = 11334
    srs_forward_port: int = 10001
    srs_reverse_port: int = 10002
    mynetworks: tuple[str, ...] = ("127.0.0.0/8", "[::1]/128")
    tls_cert: str | None = None
    tls_key: str | None = None
    keys_dir: str = "/etc/opendkim/keys"
    vmail_dir: str = "/var/vmail"
    mail_user: str = "vmail"
    mail_group: str = "vmail"
    first_valid_uid: int = 100
    dovecot_group: str = "dovecot"
    opendkim_user: str | None = "opendkim"
    postsrsd_user: str = "postsrsd"
    maillog_file: str | None = None
    dovecot_log: str | None = None
    password_cost: int = 12
    gmail_rate_delay: str = "1s"
    minimal_backoff_time: str = "300s"
    maximal_backoff_time: str = "4000s"
    maximal_queue_lifetime: str = "5d"
    transport_overrides: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )
    templates_dir: Path | None = None

    def path(self, host_path: str) -> str:
        """`host_path` as the servers see it: below `root`."""
        return posixpath.join(self.root, host_path.lstrip("/"))

    def cert_path(self, hostname: str) -> str:
        default = f"/etc/letsencrypt/live/{hostname}/fullchain.pem"
        return self.path(self.tls_cert or default)

    def key_path(self, hostname: str) -> str:
        default = f"/etc/letsencrypt/live/{hostname}/privkey.pem"
        return self.path(self.tls_key or default)

    def service(self, port: int) -> str:
        """A Postfix master.cf service name for a TCP listener on `port`."""
        if self.listen_address is None:
            return str(port)
        return f"{self.listen_address}:{port}"
