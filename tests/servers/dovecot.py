"""A real Dovecot on loopback: POP3 and IMAP, plaintext and TLS ports.

Users live in passwd files, one per user (plain passwords; Dovecot 2.3
also checks an XOAUTH2 bearer token against that password), mail in
Maildirs owned by the `mail` user. A private CA signs the server
certificate for `localhost` and 127.0.0.1, so clients verify the chain and
the name with `ca_file`.
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.common import free_port, wait_for_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
MAIL_UID = 8  # the `mail` user: above first_valid_uid, not root
MAIL_GID = 8


@dataclass
class TestCertificates:
    """A CA and a server certificate it signed, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    fingerprint: str  # SHA-256 of the server certificate's DER form


def make_certificates(
    folder: Path, names: tuple[str, ...] = ("localhost",), *, loopback: bool = True
) -> TestCertificates:
    """Write a CA and a server certificate for `names` (and 127.0.0.1 unless
    `loopback` is false)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbridge test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    if loopback:
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    result = TestCertificates(
        ca_file=folder / "ca.pem",
        cert_file=folder / "server.pem",
        key_file=folder / "server.key",
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )
    result.ca_file.write_bytes(ca.public_bytes(pem))
    result.cert_file.write_bytes(cert.public_bytes(pem))
    result.key_file.write_bytes(
        key.private_bytes(
            pem,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return result


@dataclass
class DovecotServer:
    """A running Dovecot; users and mail are added while it runs."""

    root: Path
    certs: TestCertificates
    pop3_port: int = field(default_factory=free_port)
    pop3s_port: int = field(default_factory=free_port)
    imap_port: int = field(default_factory=free_port)
    imaps_port: int = field(default_factory=free_port)
    # Dovecot's SASL service over TCP, for a Postfix that authenticates with it.
    auth_port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _counter: int = 0
    _stamp: int = 0

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def ca_file(self) -> str:
        return str(self.certs.ca_file)

    def home(self, user: str) -> Path:
        return self.root / "mail" / user

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        base = self.home(user) / "Maildir"
        return base if folder == "INBOX" else base / f".{folder}"

    def add_user(self, user: str, password: str | None = None) -> str:
        """Create (or update) a user; returns its password."""
        password = password or secrets.token_urlsafe(12)
        self.users[user] = password
        # One passwd file per user: Dovecot looks at a file it already read at
        # most once a second, but opens a file for a new user right away.
        folder = self.root / "passwd.d"
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o755)
        tmp = folder / f".{user}.tmp"
        tmp.write_text(f"{user}:{{PLAIN}}{password}::::::\n")
        os.chmod(tmp, 0o644)
        self._stamp = max(self._stamp + 1, int(time.time()))
        os.utime(tmp, (self._stamp, self._stamp))
        tmp.replace(folder / user)
        for sub in ("cur", "new", "tmp"):
            self._mkdir(self.maildir(user) / sub)
        return password

    def _mkdir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        probe = path
        while probe != self.root and probe.is_relative_to(self.root):
            os.chown(probe, MAIL_UID, MAIL_GID)
            probe = probe.parent

    def deliver(self, user: str, message: bytes, folder: str = "INBOX") -> Path:
        """Drop one message into a Maildir folder (new/), as a local MDA would.

        Line ends are stored as LF, Maildir's convention; Dovecot sends CRLF.
        """
        self._counter += 1
        base = self.maildir(user, folder)
        for sub in ("cur", "new", "tmp"):
            self._mkdir(base / sub)
        data = message.replace(b"\r\n", b"\n")
        name = f"{int(time.time())}.M{self._counter}P{os.getpid()}.test"
        tmp = base / "tmp" / name
        tmp.write_bytes(data)
        os.chown(tmp, MAIL_UID, MAIL_GID)
        final = base / "new" / name
        tmp.rename(final)
        return final

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """Every message in a folder (LF line ends), in no particular order."""
        base = self.maildir(user, folder)
        found = []
        for sub in ("new", "cur"):
            folder_path = base / sub
            if folder_path.is_dir():
                found.extend(p.read_bytes() for p in sorted(folder_path.iterdir()))
        return found

    def clear(self, user: str) -> None:
        """Empty a user's Maildir, indexes included."""
        shutil.rmtree(self.home(user), ignore_errors=True)
        self.add_user(user, self.users.get(user))

    def reset_uidls(self, user: str) -> None:
        """Make Dovecot forget its UIDs, as after a server migration: every
        message gets a new UIDL."""
        base = self.maildir(user)
        uidlist = base / "dovecot-uidlist"
        validity = int(time.time()) + 1000 + self._counter
        self._counter += 1
        for path in base.glob("dovecot.index*"):
            path.unlink()
        uidlist.unlink(missing_ok=True)
        # Rename every file so Dovecot sees new messages; keep the contents.
        for sub in ("cur", "new"):
            for path in (base / sub).iterdir():
                self._counter += 1
                path.rename(base / "new" / f"{validity}.M{self._counter}P1.reset")

    def write_config(self) -> None:
        log = self.log_path
        config = f"""\
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {log}
info_log_path = {log}
protocols = pop3 imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{self.certs.cert_file}
ssl_key = <{self.certs.key_file}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
mail_location = maildir:{self.root}/mail/%u/Maildir
first_valid_uid = {MAIL_UID}
mail_uid = {MAIL_UID}
mail_gid = {MAIL_GID}
default_process_limit = 1000
default_client_limit = 4000
default_vsz_limit = 512M
pop3_uidl_format = %08Xu%08Xv
mail_max_userip_connections = 1000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_GID} home={self.root}/mail/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = {self.pop3s_port}
    ssl = yes
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service auth {{
  client_limit = 4000
  inet_listener auth-inet {{
    address = 127.0.0.1
    port = {self.auth_port}
  }}
}}
service anvil {{
  client_limit = 4000
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
protocol pop3 {{
  mail_max_userip_connections = 1000
}}
"""
        self.config_path.write_text(config)

    def start(self) -> None:
        self.write_config()
        (self.root / "passwd.d").mkdir(exist_ok=True)
        os.chmod(self.root / "passwd.d", 0o755)
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        ports = (self.pop3_port, self.pop3s_port, self.imap_port, self.imaps_port)
        for port in (*ports, self.auth_port):
            try:
                wait_for_port(
                    port, process=self.process, log=self.log_path, name="dovecot"
                )
            except RuntimeError:
                self.stop()
                raise

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


def start_dovecot() -> DovecotServer:
    """A Dovecot in a fresh folder that the `dovecot` and `mail` users reach."""
    root = Path(tempfile.mkdtemp(prefix="mailbridge-dovecot-"))
    os.chmod(root, 0o755)
    certs = make_certificates(root)
    os.chmod(certs.key_file, 0o600)
    server = DovecotServer(root=root, certs=certs)
    server.start()
    return server


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One Dovecot for the whole session; tests use their own user names."""
    if not Path(DOVECOT).exists():
        pytest.fail("dovecot is not installed: run scripts/bootstrap")
    server = start_dovecot()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
