"""A mail host run from rendered files: Postfix, Dovecot, OpenDKIM, postsrsd.

`MailHostUnderTest.start` renders the specs with test options (loopback
high ports, everything below one folder), writes the tree with
`write_tree`, adds what a deploy would add (a TLS certificate, DKIM keys,
runtime folders) and starts each program from the rendered files.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import shutil
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

from mailbridge.render import HostOptions, render_host, write_tree
from mailbridge.secrets import SecretStore
from mailbridge.spec.models import DomainSpec
from tests.servers.common import (
    LOOPBACK,
    ServerError,
    free_ports,
    remove_dir,
    server_dir,
    stop_process,
    wait_for_port,
)
from tests.servers.postfix import (
    PostfixServer,
    allowed_config_directory,
    prepare_runtime,
)

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
RSPAMD_USER = "_rspamd"
# rspamd compiles its patterns (hyperscan) for about half a minute on a
# fresh data folder; the compiled files are kept here between test runs.
RSPAMD_CACHE = Path("/var/cache/mailbridge-tests/rspamd-hs")
POSTSRSD = shutil.which("postsrsd") or "/usr/sbin/postsrsd"
# The same command line as Debian's postsrsd-systemd-launcher, reading the
# rendered settings file instead of /etc/default/postsrsd.
POSTSRSD_LAUNCH = (
    '. "$1"; exec "$2" -f "$SRS_FORWARD_PORT" -r "$SRS_REVERSE_PORT" '
    '-d "$SRS_DOMAIN" -s "$SRS_SECRET" -a "$SRS_SEPARATOR" -n "$SRS_HASHLENGTH" '
    '-N "$SRS_HASHMIN" -u "$RUN_AS" -l "$SRS_LISTEN_ADDR" -c "$CHROOT" '
    '"-X$SRS_EXCLUDE_DOMAINS"'
)
TEST_PASSWORDS = {
    "alice-password": "alice-Secret-1",
    "bob-password": "bob-Secret-2",
    "carol-password": "carol-Secret-3",
    "srs-new": "srs-new-secret-0123456789",
    "srs-old": "srs-old-secret-9876543210",
}


def options_for_test(root: Path, ports: dict[str, int], **extra: Any) -> HostOptions:
    """Options for a host below `root`, listening on `ports` at 127.0.0.1."""
    return HostOptions(
        root=str(root),
        listen_address=LOOPBACK,
        mynetworks=("127.0.0.1/32",),
        mail_user="mail",
        mail_group="mail",
        first_valid_uid=8,
        maillog_file=str(root / "var/log/postfix.log"),
        dovecot_log=str(root / "var/log/dovecot.log"),
        password_cost=4,
        tls_cert="/etc/tls/cert.pem",
        tls_key="/etc/tls/key.pem",
        gmail_rate_delay="0s",
        **ports,
        **extra,
    )


def make_tls(hostname: str, cert_path: Path, key_path: Path) -> None:
    """A self-signed certificate for `hostname` (tests only)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


def make_dkim_key(
    path: Path, owner: str | None, group: str | None = None, algorithm: str = "rsa"
) -> str:
    """A DKIM key at `path`; returns its DNS TXT value (RFC 6376, RFC 8463).

    With `group`, that group may read it too (rspamd seals ARC with it).
    """
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        pem_format = serialization.PrivateFormat.PKCS8
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem_format = serialization.PrivateFormat.TraditionalOpenSSL
        public = key.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, pem_format, serialization.NoEncryption()
        )
    )
    path.chmod(0o600 if group is None else 0o640)
    if owner is not None or group is not None:
        shutil.chown(path, user=owner, group=group)  # type: ignore[call-overload]
    return f"v=DKIM1; k={algorithm}; p=" + base64.b64encode(public).decode()


def _keep_rspamd_cache(data_dir: Path) -> None:
    """Save rspamd's compiled patterns once it has stopped writing them."""
    RSPAMD_CACHE.mkdir(parents=True, exist_ok=True)
    for compiled in data_dir.glob("*.hs*"):
        if not (RSPAMD_CACHE / compiled.name).exists():
            shutil.copy2(compiled, RSPAMD_CACHE)


PORT_NAMES = (
    "smtp_port",
    "submission_port",
    "smtps_port",
    "pop3_port",
    "pop3s_port",
    "imap_port",
    "imaps_port",
    "opendkim_port",
    "opendkim_ed25519_port",
    "srs_forward_port",
    "srs_reverse_port",
    "rspamd_milter_port",
    "rspamd_normal_port",
    "rspamd_controller_port",
)


@dataclass
class MailHostUnderTest:
    """The rendered host and its running programs; `stop` ends every one."""

    specs: list[DomainSpec]
    root: Path = field(default_factory=lambda: server_dir("mailhost"))
    ports: dict[str, int] = field(default_factory=dict)
    options: HostOptions | None = None
    dkim_txt: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    postfix: PostfixServer | None = None
    cleanups: ExitStack = field(default_factory=ExitStack)

    def __post_init__(self) -> None:
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))

    @property
    def smtp_port(self) -> int:
        return self.ports["smtp_port"]

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def render(self, transport_overrides: dict[str, str]) -> None:
        self.options = options_for_test(
            self.root, self.ports, transport_overrides=transport_overrides
        )
        files = render_host(
            self.specs, SecretStore(TEST_PASSWORDS, environ={}), self.options
        )
        write_tree(files, self.root)
        assert self.options.tls_cert and self.options.tls_key
        make_tls(
            self.specs[0].mail_host.hostname,
            self.path(self.options.tls_cert),
            self.path(self.options.tls_key),
        )
        for spec in self.specs:
            if spec.dkim is None:
                continue
            for sel in spec.dkim.selectors:
                key = self.path(f"{self.options.keys_dir}/{spec.domain}/{sel.name}.key")
                group = RSPAMD_USER if self.options.arc else None
                txt = make_dkim_key(
                    key, self.options.opendkim_user, group, sel.algorithm.value
                )
                self.dkim_txt[f"{sel.name}._domainkey.{spec.domain}"] = txt
        for sub in (
            "run/dovecot",
            "var/lib/dovecot",
            "var/lib/postsrsd",
            "run/opendkim",
            "run/rspamd",
            "var/lib/rspamd",
        ):
            self.path(sub).mkdir(parents=True, exist_ok=True)
        vmail = self.path(self.options.vmail_dir)
        vmail.mkdir(parents=True, exist_ok=True)
        shutil.chown(vmail, user="mail", group="mail")
        for sub in ("run/rspamd", "var/lib/rspamd"):
            shutil.chown(self.path(sub), user=RSPAMD_USER, group=RSPAMD_USER)
        if self.options.opendkim_user:
            shutil.chown(self.path("run/opendkim"), user=self.options.opendkim_user)
        prepare_runtime(self.root)

    def start(
        self, transport_overrides: dict[str, str], *, services: tuple[str, ...]
    ) -> None:
        """Render, then start `services` (postsrsd, opendkim, dovecot, postfix)."""
        self.render(transport_overrides)
        try:
            for name in services:
                getattr(self, f"_start_{name}")()
        except BaseException:
            self.stop()
            raise

    def _spawn(
        self,
        name: str,
        args: list[str],
        port: int,
        log: Path | None,
        timeout: float = 15.0,
    ) -> None:
        output = self.path(f"var/log/{name}.out")
        with output.open("wb") as sink:
            proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
        self.processes[name] = proc
        wait_for_port(port, process=proc, log=log or output, name=name, timeout=timeout)

    def _start_postsrsd(self) -> None:
        settings = self.path("etc/default/postsrsd")
        self._spawn(
            "postsrsd",
            ["sh", "-c", POSTSRSD_LAUNCH, "postsrsd", str(settings), POSTSRSD],
            self.ports["srs_reverse_port"],
            None,
        )

    def _start_opendkim(self) -> None:
        """Every rendered OpenDKIM instance (one per key algorithm)."""
        for name, port in (
            ("opendkim", "opendkim_port"),
            ("opendkim-ed25519", "opendkim_ed25519_port"),
        ):
            conf = self.path(f"etc/{name}.conf")
            if conf.exists():
                args = [OPENDKIM, "-f", "-x", str(conf)]
                self._spawn(name, args, self.ports[port], None)

    def _start_rspamd(self) -> None:
        """Debian's rspamd.conf with the rendered local.d and override.d."""
        variables = {
            "LOCAL_CONFDIR": self.path("etc/rspamd"),
            "DBDIR": self.path("var/lib/rspamd"),
            "RUNDIR": self.path("run/rspamd"),
            "LOGDIR": self.path("var/log"),
        }
        args = [RSPAMD, "-f", "-u", RSPAMD_USER, "-g", RSPAMD_USER]
        args += ["-c", "/etc/rspamd/rspamd.conf"]
        for name, value in variables.items():
            args += ["--var", f"{name}={value}"]
        log = self.path("var/log/rspamd.log")
        for cached in RSPAMD_CACHE.glob("*.hs*"):
            shutil.copy2(cached, variables["DBDIR"])
            shutil.chown(variables["DBDIR"] / cached.name, user=RSPAMD_USER)
        port = self.ports["rspamd_milter_port"]
        self._spawn("rspamd", args, port, log, timeout=180)

    def _start_dovecot(self) -> None:
        conf = self.path("etc/dovecot/dovecot.conf")
        log = self.path("var/log/dovecot.log")
        self._spawn(
            "dovecot", [DOVECOT, "-F", "-c", str(conf)], self.ports["imaps_port"], log
        )
        for port in ("imap_port", "pop3_port", "pop3s_port"):
            wait_for_port(self.ports[port], log=log, name="dovecot")

    def _start_postfix(self) -> None:
        config_dir = self.path("etc/postfix")
        self.cleanups.enter_context(allowed_config_directory(config_dir))
        self.postfix = PostfixServer(config_dir, self.path("var/log/postfix.log"))
        self.postfix.start(
            [self.ports[p] for p in ("smtp_port", "submission_port", "smtps_port")]
        )

    def stop(self) -> None:
        if self.postfix is not None:
            self.postfix.stop()
            self.postfix = None
        self.cleanups.close()
        for proc in reversed(list(self.processes.values())):
            stop_process(proc)
        if "rspamd" in self.processes:
            _keep_rspamd_cache(self.path("var/lib/rspamd"))
        self.processes.clear()

    def cleanup(self) -> None:
        self.stop()
        remove_dir(self.root)

    def doveadm(self, *args: str) -> str:
        conf = self.path("etc/dovecot/dovecot.conf")
        done = subprocess.run(
            ["doveadm", "-c", str(conf), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(f"doveadm {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def log(self, name: str) -> str:
        try:
            return self.path(f"var/log/{name}").read_text(errors="replace")
        except OSError:
            return ""
