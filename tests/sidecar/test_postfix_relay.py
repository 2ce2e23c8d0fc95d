"""Relay through a real Postfix on a submission-like port: STARTTLS, then
SASL AUTH (checked by Dovecot), keeping the envelope recipient; Postfix
hands the mail on to smtp-sink. Like mailbridge's own 587 and 465, the relay
lets a login send only as addresses it owns."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.sidecar.account import PollResult
from mailbridge.sidecar.config import load_config
from mailbridge.sidecar.errors import AuthError, TemporaryError
from mailbridge.sidecar.quarantine import Quarantine
from mailbridge.sidecar.service import Sidecar
from mailbridge.sidecar.state import MessageState
from tests.servers.common import free_port
from tests.servers.dovecot import DovecotServer
from tests.servers.postfix import (
    INTERNAL_SERVICES,
    PostfixServer,
    allowed_config_directory,
    prepare_runtime,
)
from tests.sidecar.helpers import (
    SmtpSink,
    env_for,
    make_message,
    pop3_block,
    write_config,
)

pytestmark = pytest.mark.servers

MASTER_CF = "127.0.0.1:{port} inet n - n - - smtpd\n" + INTERNAL_SERVICES

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/var/spool/postfix
data_directory = {root}/var/lib/postfix
myhostname = relay.test.example
mydomain = test.example
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# No client is trusted by address: relaying needs SASL AUTH.
mynetworks = 127.0.0.250/32
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
relayhost = [127.0.0.1]:{sink}
smtp_tls_security_level = none
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth}
# As on the rendered 587 and 465: login NAME owns NAME@relay.test.example only.
smtpd_sender_login_maps = regexp:{root}/etc/postfix/sender_login
# poison@ is deferred (450) whoever sends it: a message a relay keeps refusing.
smtpd_sender_restrictions = check_sender_access regexp:{root}/etc/postfix/sender_access,
    reject_authenticated_sender_login_mismatch
maillog_file = {root}/var/log/postfix.log
maillog_file_prefixes = {root}/var/log
alias_maps =
alias_database =
local_recipient_maps =
biff = no
"""


@pytest.fixture(scope="module")
def relay(dovecot: DovecotServer) -> Iterator[tuple[int, SmtpSink]]:
    """A Postfix relay on a free port, authenticating against Dovecot and
    relaying everything to smtp-sink."""
    sink = SmtpSink()
    root = Path(tempfile.mkdtemp(prefix="mailbridge-relay-"))
    root.chmod(0o755)  # the postfix user walks into var/lib/postfix
    config_dir = root / "etc/postfix"
    config_dir.mkdir(parents=True)
    port = free_port()
    (config_dir / "main.cf").write_text(
        MAIN_CF.format(
            root=root,
            sink=sink.port,
            cert=dovecot.certs.cert_file,
            key=dovecot.certs.key_file,
            auth=dovecot.auth_port,
        )
    )
    (config_dir / "master.cf").write_text(MASTER_CF.format(port=port))
    (config_dir / "sender_access").write_text(
        "/^poison@/ 450 4.7.1 held for the test\n"
    )
    (config_dir / "sender_login").write_text(
        "/^([^@]+)@relay\\.test\\.example$/ ${1}\n"
    )
    try:
        with allowed_config_directory(config_dir):
            prepare_runtime(root)
            server = PostfixServer(config_dir, root / "var/log/postfix.log")
            server.start(ports=[port])
            try:
                yield port, sink
            finally:
                server.stop()
    finally:
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)


def _account(
    dovecot: DovecotServer,
    user: str,
    port: int,
    sender: str,
    envelope_sender: str | None = None,
) -> dict:
    smtp: dict = {
        "host": "localhost",
        "port": port,
        "tls": "starttls",
        "username": sender,
        "password": {"env": env_for(sender)},
        "ca_file": dovecot.ca_file,
        "fingerprint": dovecot.certs.fingerprint,
    }
    if envelope_sender is not None:
        smtp["sender"] = envelope_sender
    return {
        "name": "relay",
        "pop3": pop3_block(dovecot, user),
        "deliver_to": "alice@gmail.example",
        "via": "smtp",
        "smtp": smtp,
    }


def _mail_from(sink: SmtpSink, tag: str) -> set[str]:
    """The MAIL FROM addresses smtp-sink saw for messages tagged `tag`."""
    found = set()
    for path in sink.root.iterdir():
        data = path.read_bytes()
        if f"Message-ID: <{tag}.".encode() not in data:
            continue
        for line in data.split(b"\n"):
            if line.startswith(b"X-Mail-Args:"):
                found.add(line.split(b":", 1)[1].split()[0].decode())
    return found


def test_starttls_auth_relay_keeps_the_envelope(
    dovecot: DovecotServer,
    relay: tuple[int, SmtpSink],
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, sink = relay
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    sender = user_name + "-smtp"
    monkeypatch.setenv(env_for(sender), dovecot.add_user(sender))
    sent = [make_message("relay", i, 5000) for i in range(3)]
    for data in sent:
        dovecot.deliver(user_name, data)
    owned = f"{sender}@relay.test.example"
    config = write_config(tmp_path, [_account(dovecot, user_name, port, sender, owned)])
    sidecar = Sidecar(load_config(config))
    result = sidecar.run_once()["relay"]
    assert isinstance(result, PollResult), result
    assert (result.delivered, result.deleted) == (3, 3)
    rows = sidecar.store.messages("relay").values()
    assert all("queued as" in (row.target_id or "") for row in rows)
    sidecar.close()

    received = sink.wait_for(3)
    assert {rcpt.split()[0] for rcpt, _ in received} == {"<alice@gmail.example>"}
    for index in range(3):
        assert any(
            f"Message-ID: <relay.{index}@source.example>".encode() in body
            for _, body in received
        )
    assert dovecot.messages(user_name) == []
    # The envelope sender is the address the login owns, for every message.
    assert _mail_from(sink, "relay") == {f"<{owned}>"}


def test_a_relay_that_checks_the_sender_refuses_foreign_return_paths(
    dovecot: DovecotServer,
    relay: tuple[int, SmtpSink],
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without `sender`, MAIL FROM is the message's Return-Path, which the
    login does not own: the relay refuses it for good, so the message is
    quarantined and stays on the POP3 server."""
    port, sink = relay
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    sender = user_name + "-smtp"
    monkeypatch.setenv(env_for(sender), dovecot.add_user(sender))
    dovecot.deliver(user_name, make_message("foreign", 1, 2000))
    config = write_config(tmp_path, [_account(dovecot, user_name, port, sender)])
    sidecar = Sidecar(load_config(config))
    result = sidecar.run_once()["relay"]
    assert isinstance(result, PollResult), result
    assert (result.delivered, result.quarantined, result.deleted) == (0, 1, 0)
    (entry,) = Quarantine(tmp_path / "quarantine").entries("relay")
    assert "553" in str(entry["reason"])
    assert "not owned by user" in str(entry["reason"])
    assert len(dovecot.messages(user_name)) == 1
    assert _mail_from(sink, "foreign") == set()
    sidecar.close()


def test_a_message_the_relay_keeps_deferring_does_not_hold_up_the_rest(
    dovecot: DovecotServer,
    relay: tuple[int, SmtpSink],
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After STUCK_ATTEMPTS deferrals a message goes last and its next
    deferral no longer ends the poll: the mail behind it moves, and it
    stays spooled on the POP3 server, never quarantined. A relay that
    cannot be reached is another matter: the poll fails, stuck or not."""
    from mailbridge.sidecar.account import STUCK_ATTEMPTS

    port, sink = relay
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    login = user_name + "-smtp"
    monkeypatch.setenv(env_for(login), dovecot.add_user(login))
    owned = f"<{login}@relay.test.example>"
    for index, sender in enumerate((owned, "<poison@relay.test.example>", owned)):
        message = make_message("stuck", index).replace(
            f"Return-Path: <sender{index}@source.example>".encode(),
            f"Return-Path: {sender}".encode(),
        )
        dovecot.deliver(user_name, message)
    config = write_config(tmp_path, [_account(dovecot, user_name, port, login)])
    sidecar = Sidecar(load_config(config))
    for _ in range(STUCK_ATTEMPTS):
        failed = sidecar.run_once()["relay"]
        assert isinstance(failed, TemporaryError), failed
        assert "450 4.7.1" in str(failed) and "held for the test" in str(failed)
        assert "<stuck.2@source.example>" not in _message_ids(sink, "stuck")

    result = sidecar.run_once()["relay"]
    assert isinstance(result, PollResult), result
    assert (result.delivered, result.deleted, result.quarantined) == (1, 1, 0)
    assert result.outcomes.get("deferred") == 1
    # Postfix passes the mail on to smtp-sink in its own time.
    wanted = {"<stuck.0@source.example>", "<stuck.2@source.example>"}
    deadline = time.monotonic() + 30
    while _message_ids(sink, "stuck") != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _message_ids(sink, "stuck") == wanted
    (left,) = dovecot.messages(user_name)
    assert b"Message-ID: <stuck.1@source.example>" in left
    states = sorted(str(r.state) for r in sidecar.store.messages("relay").values())
    assert states == ["deleted", "deleted", str(MessageState.SPOOLED)]
    assert not (tmp_path / "quarantine").exists()
    # It shows as mail waiting since its first fetch.
    waiting = sidecar.metrics.registry.get_sample_value(
        "mailbridge_sidecar_oldest_undelivered_seconds", {"account": "relay"}
    )
    assert waiting is not None and waiting > 0
    sidecar.close()

    # The same state, with nothing listening where the relay was.
    config = write_config(tmp_path, [_account(dovecot, user_name, free_port(), login)])
    sidecar = Sidecar(load_config(config))
    down = sidecar.run_once()["relay"]
    assert isinstance(down, TemporaryError) and not down.refused, down
    assert sidecar.store.account("relay").failures == 1
    assert len(dovecot.messages(user_name)) == 1
    sidecar.close()


def _message_ids(sink: SmtpSink, tag: str) -> set[str]:
    found = set()
    for _, body in sink.messages():
        for line in body.split(b"\n"):
            if line.startswith(f"Message-ID: <{tag}.".encode()):
                found.add(line.split(b" ", 1)[1].strip().decode())
    return found


def test_a_refused_relay_login_is_an_auth_error(
    dovecot: DovecotServer,
    relay: tuple[int, SmtpSink],
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, _ = relay
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    sender = user_name + "-smtp"
    dovecot.add_user(sender)
    monkeypatch.setenv(env_for(sender), "not-the-password")
    dovecot.deliver(user_name, make_message("refused", 1))
    config = write_config(tmp_path, [_account(dovecot, user_name, port, sender)])
    sidecar = Sidecar(load_config(config))
    result = sidecar.run_once()["relay"]
    assert isinstance(result, AuthError), result
    assert "not-the-password" not in str(result)
    assert len(dovecot.messages(user_name)) == 1
    sidecar.close()
