"""The POP3 client against a real Dovecot: TLS checks, logins, streaming."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

import pytest

from mailbridge.sidecar.errors import AuthError, ConfigError, TLSVerifyError
from mailbridge.sidecar.pop3 import POP3Client
from mailbridge.spec.models import TLSMode
from tests.servers.dovecot import DovecotServer, make_certificates
from tests.sidecar.helpers import make_message

pytestmark = pytest.mark.servers


def _client(dovecot: DovecotServer, **kwargs: object) -> POP3Client:
    options: dict[str, object] = {
        "tls": TLSMode.IMPLICIT,
        "ca_file": dovecot.ca_file,
        "timeout": 10,
    }
    options.update(kwargs)
    host = str(options.pop("host", "localhost"))
    port = int(options.pop("port", dovecot.pop3s_port))  # type: ignore[call-overload]
    return POP3Client(host, port, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
@pytest.mark.parametrize("login", ["user", "plain", "xoauth2"])
def test_login_and_streamed_retr(
    dovecot: DovecotServer, user_name: str, mode: str, login: str
) -> None:
    password = dovecot.add_user(user_name)
    sent = make_message("retr", 1, 300_000)
    dovecot.deliver(user_name, sent)
    port = dovecot.pop3s_port if mode == "implicit" else dovecot.pop3_port
    with _client(
        dovecot, port=port, tls=TLSMode(mode), fingerprint=dovecot.certs.fingerprint
    ) as client:
        {"user": client.login_user, "plain": client.login_plain}.get(
            login, client.login_xoauth2
        )(user_name, password)
        listing = client.uidl()
        assert list(listing.values()) == [1]
        assert client.list_sizes() == {1: len(sent)}
        with client.retr(1) as message:
            # Dot-unstuffed, byte for byte what the sender wrote.
            assert message.read_all() == sent
            assert message.message_id == "<retr.1@source.example>"
            assert message.size == len(sent)
        client.quit()


def test_wrong_password_is_an_auth_error_without_the_password(
    dovecot: DovecotServer, user_name: str
) -> None:
    dovecot.add_user(user_name)
    with _client(dovecot) as client, pytest.raises(AuthError) as caught:
        client.login_user(user_name, "not-the-password-9f3a")
    assert "not-the-password-9f3a" not in str(caught.value)


def test_a_pinned_fingerprint_that_differs_is_refused(dovecot: DovecotServer) -> None:
    with pytest.raises(TLSVerifyError, match="fingerprint"):
        _client(dovecot, fingerprint="00" * 32).connect()


def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path, ("pop.other.example",), loopback=False)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with contextlib.suppress(OSError), context.wrap_socket(conn, True) as tls:
            tls.sendall(b"+OK ready\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = POP3Client(
        "localhost",
        listener.getsockname()[1],
        tls=TLSMode.IMPLICIT,
        ca_file=str(certs.ca_file),
        timeout=10,
    )
    with pytest.raises(TLSVerifyError, match="certificate rejected"):
        client.connect()
    thread.join(10)
    listener.close()


def test_an_unknown_ca_is_refused(dovecot: DovecotServer) -> None:
    with pytest.raises(TLSVerifyError, match="certificate rejected"):
        _client(dovecot, ca_file=None).connect()


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_a_ca_file_that_cannot_be_used_is_a_config_error(
    dovecot: DovecotServer, tmp_path: Path, content: bytes | None
) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        _client(dovecot, ca_file=str(ca_file)).connect()
    assert f"ca_file {ca_file} cannot be used" in str(caught.value)
    assert caught.value.kind == "config"
