"""End to end: a real Dovecot as the POP3 source, smtp-sink and Dovecot's
IMAP as targets."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.sidecar.account import PollResult, PollStatus
from mailbridge.sidecar.config import load_config
from mailbridge.sidecar.errors import ProtocolError
from mailbridge.sidecar.pop3 import POP3Client
from mailbridge.sidecar.service import Sidecar
from mailbridge.sidecar.state import MessageState
from mailbridge.sidecar.targets.imap import _mailbox
from mailbridge.spec.models import TLSMode
from tests.servers.dovecot import DovecotServer, make_certificates
from tests.sidecar.helpers import (
    SmtpSink,
    env_for,
    imap_block,
    make_message,
    message_ids,
    pop3_block,
    sink_account,
    write_config,
)

pytestmark = pytest.mark.servers


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").rstrip(b"\n")


def test_smtp_relay_delivers_and_deletes(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = dovecot.add_user(user_name)
    monkeypatch.setenv(env_for(user_name), password)
    sent = [make_message("smtp", i, 300 + i * 1000) for i in range(4)]
    sent.append(make_message("smtp", 99, 3_000_000))
    for data in sent:
        dovecot.deliver(user_name, data)
    account = sink_account("relay", dovecot, user_name, smtp_sink.port)
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    results = sidecar.run_once()
    result = results["relay"]
    assert isinstance(result, PollResult), result
    assert (result.delivered, result.deleted) == (5, 5)

    received = smtp_sink.wait_for(5)
    assert {r for r, _ in received} == {"<alice@gmail.example>"}
    assert sorted(_lf(m) for _, m in received) == sorted(_lf(m) for m in sent)
    assert dovecot.messages(user_name) == []
    rows = sidecar.store.messages("relay")
    assert {r.state for r in rows.values()} == {MessageState.DELETED}

    again = sidecar.run_once()["relay"]
    assert isinstance(again, PollResult)
    assert again.listed == 0
    assert len(smtp_sink.messages()) == 5
    sidecar.close()


def _new_uidl(dovecot: DovecotServer, user: str, data: bytes) -> str:
    """Deliver one message and return the UIDL the POP3 server lists it by."""
    before = _uidls(dovecot, user)
    dovecot.deliver(user, data)
    (uidl,) = _uidls(dovecot, user).keys() - before.keys()
    return uidl


def _uidls(dovecot: DovecotServer, user: str) -> dict[str, int]:
    client = POP3Client(
        "localhost",
        dovecot.pop3s_port,
        tls=TLSMode.IMPLICIT,
        ca_file=dovecot.ca_file,
        timeout=10,
    )
    with client:
        client.login_user(user, dovecot.users[user])
        listing = client.uidl()
        client.quit()
    return listing


def test_a_uidl_listed_again_after_its_deletion_is_not_skipped(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server may list a UIDL again after its message was deleted (RFC
    1939 lets it reuse one; a mailbox restored from a backup brings old
    ones back). New mail under such a UIDL is delivered; the very message
    that UIDL delivered before is not sent again, only deleted."""
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    config = write_config(
        tmp_path, [sink_account("again", dovecot, user_name, smtp_sink.port)]
    )
    sidecar = Sidecar(load_config(config))
    store, target = sidecar.store, sidecar.config.accounts[0].target_key
    fresh, restored = make_message("again", 1), make_message("again", 2)
    reused = _new_uidl(dovecot, user_name, fresh)
    back = _new_uidl(dovecot, user_name, restored)
    # What earlier polls left: both UIDLs delivered and deleted, the first
    # for another message, the second for this very one.
    for uidl, key in ((reused, "mid:<older@source.example>"), (back, None)):
        store.record_delivery(
            "again",
            uidl,
            target=target,
            dedupe_key=key or "mid:<again.2@source.example>",
            target_id=None,
        )
    store.mark_many("again", [reused, back], MessageState.DELETED)

    result = sidecar.run_once()["again"]
    assert isinstance(result, PollResult), result
    assert (result.delivered, result.duplicates, result.deleted) == (1, 1, 2)
    received = smtp_sink.wait_for(1)
    assert [_lf(m) for _, m in received] == [_lf(fresh)]
    assert dovecot.messages(user_name) == []
    sidecar.close()


def test_deletions_whose_reply_was_lost_are_no_uidl_reset(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server committed the DELEs but the reply to QUIT was lost, so
    the store still says `delivered`. When new mail arrives at once, the
    vanished messages are the deletions that were due, not a UIDL reset:
    the account is not paused and the new mail goes."""
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    config = write_config(
        tmp_path, [sink_account("lost", dovecot, user_name, smtp_sink.port)]
    )
    sidecar = Sidecar(load_config(config))
    for i in range(3):
        dovecot.deliver(user_name, make_message("lost", i))
    first = sidecar.run_once()["lost"]
    assert isinstance(first, PollResult) and first.deleted == 3
    sidecar.store.mark_many(
        "lost", sidecar.store.messages("lost"), MessageState.DELIVERED
    )
    for i in range(3, 6):
        dovecot.deliver(user_name, make_message("lost", i))

    second = sidecar.run_once()["lost"]
    assert isinstance(second, PollResult), second
    assert second.status == PollStatus.OK
    assert (second.delivered, second.deleted) == (3, 3)
    assert sidecar.store.account("lost").paused is None
    rows = sidecar.store.messages("lost").values()
    assert sorted(str(r.state) for r in rows) == ["deleted"] * 6
    assert len(smtp_sink.wait_for(6)) == 6
    sidecar.close()


@pytest.mark.parametrize("concurrency", [1, 2], ids=["in-turn", "at-once"])
def test_the_same_message_from_two_paths_is_delivered_once(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
) -> None:
    """Dedupe against the state store: a message already brought to the same
    inbox (by another account, or under another UIDL of the same mailbox) is
    recorded as a duplicate and not sent again, by Message-ID or, without
    one, by content; also when both accounts are polled at once. Duplicates
    count as delivered, so they leave the mailbox like the rest."""
    shared = make_message("dup", 1)
    no_id = make_message("dup", 2).replace(
        b"Message-ID: <dup.2@source.example>\r\n", b""
    )
    assert b"Message-ID" not in no_id
    other = user_name + "-b"
    accounts = []
    for name, user, messages in (
        ("first", user_name, [shared, shared, no_id]),
        ("second", other, [shared, no_id, make_message("dup", 3)]),
    ):
        monkeypatch.setenv(env_for(user), dovecot.add_user(user))
        for data in messages:
            dovecot.deliver(user, data)
        accounts.append(sink_account(name, dovecot, user, smtp_sink.port))
    config = write_config(tmp_path, accounts, concurrency=concurrency)
    sidecar = Sidecar(load_config(config))
    results = sidecar.run_once()
    first, second = results["first"], results["second"]
    assert isinstance(first, PollResult) and isinstance(second, PollResult)
    assert first.delivered + second.delivered == 3
    assert first.duplicates + second.duplicates == 3
    assert first.deleted == second.deleted == 3
    if concurrency == 1:
        # In turn, the second account finds what the first recorded.
        assert (first.delivered, second.delivered) == (2, 1)

    expected = sorted(_lf(m) for m in (shared, no_id, make_message("dup", 3)))
    assert sorted(_lf(m) for _, m in smtp_sink.wait_for(3)) == expected
    assert sorted(_lf(m) for _, m in smtp_sink.messages()) == expected
    assert dovecot.messages(user_name) == dovecot.messages(other) == []
    states = [r.state for r in sidecar.store.messages("second").values()]
    assert sorted(states) == [MessageState.DELETED] * 3
    sidecar.close()


def test_imap_append_keeps_source_and_never_duplicates(
    dovecot: DovecotServer,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = dovecot.add_user(user_name)
    inbox = user_name + "-gmail"
    inbox_password = dovecot.add_user(inbox)
    monkeypatch.setenv(env_for(user_name), password)
    monkeypatch.setenv(env_for(inbox), inbox_password)
    sent = [make_message("imap", i, 2000) for i in range(6)]
    for data in sent:
        dovecot.deliver(user_name, data)
    account = {
        "name": "imap-keep",
        "pop3": pop3_block(dovecot, user_name),
        "keep_on_server": True,
        "deliver_to": "alice@gmail.example",
        "via": "imap",
        "imap": imap_block(dovecot, inbox, folder="INBOX"),
    }
    config = load_config(write_config(tmp_path, [account]))
    sidecar = Sidecar(config)
    first = sidecar.run_once()["imap-keep"]
    assert isinstance(first, PollResult), first
    assert first.delivered == 6
    assert sorted(message_ids(dovecot.messages(inbox))) == sorted(message_ids(sent))
    assert len(dovecot.messages(user_name)) == 6

    dovecot.deliver(user_name, make_message("imap", 6, 2000))
    second = sidecar.run_once()["imap-keep"]
    assert isinstance(second, PollResult)
    assert (second.listed, second.delivered, second.deleted) == (7, 1, 0)
    assert len(dovecot.messages(inbox)) == 7
    rows = sidecar.store.messages("imap-keep")
    assert all(r.target_id and r.target_id.count(":") == 1 for r in rows.values())
    sidecar.close()


@pytest.mark.parametrize(
    ("folder", "on_disk"),
    [("Imported", "Imported"), ("Rückläufer", "R&APw-ckl&AOQ-ufer")],
    ids=["ascii", "beyond-ascii"],
)
def test_imap_folder_that_does_not_exist_yet_is_created(
    dovecot: DovecotServer,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    folder: str,
    on_disk: str,
) -> None:
    """A folder (a Gmail label) missing at the target is answered with
    [TRYCREATE]: the sidecar creates it and appends there. As a backup path
    it first probes that folder, which finds nothing rather than failing;
    the next poll probes it by the same name. Names go in IMAP's modified
    UTF-7 (RFC 3501 5.1.3), as Gmail and Dovecot expect."""
    assert _mailbox("~peter/mail/台北/日本語") == '"~peter/mail/&U,BTFw-/&ZeVnLIqe-"'
    assert _mailbox("R&D") == '"R&-D"'
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    inbox = user_name + "-gmail"
    monkeypatch.setenv(env_for(inbox), dovecot.add_user(inbox))
    assert not dovecot.maildir(inbox, on_disk).exists()
    account = {
        "name": "labelled",
        "pop3": pop3_block(dovecot, user_name),
        "deliver_to": "alice@gmail.example",
        "backup_of": "alice@example.com",
        "via": "imap",
        "imap": imap_block(dovecot, inbox, folder=folder),
    }
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    sent = [make_message("label", i) for i in range(3)]
    for batch in (sent[:2], sent[2:]):
        for data in batch:
            dovecot.deliver(user_name, data)
        result = sidecar.run_once()["labelled"]
        assert isinstance(result, PollResult), result
        assert (result.delivered, result.duplicates) == (len(batch), 0)
    landed = dovecot.messages(inbox, on_disk)
    assert sorted(message_ids(landed)) == sorted(message_ids(sent))
    assert dovecot.messages(inbox) == []
    sidecar.close()


def test_a_delivery_another_account_was_cut_off_in_is_looked_up_first(
    dovecot: DovecotServer,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Account one was appending a message when the process died; account
    two fetches the same message for the same inbox. Account two looks for
    it there before sending, finds it, and records a duplicate."""
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    inbox = user_name + "-gmail"
    monkeypatch.setenv(env_for(inbox), dovecot.add_user(inbox))
    message = make_message("cut", 1)
    dovecot.deliver(user_name, message)
    dovecot.deliver(inbox, message)  # account one's APPEND went through
    account = {
        "name": "two",
        "pop3": pop3_block(dovecot, user_name),
        "deliver_to": "alice@gmail.example",
        "via": "imap",
        "imap": imap_block(dovecot, inbox, folder="INBOX"),
    }
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    sidecar.store.mark(
        "one",
        "u-cut",
        MessageState.DELIVERING,
        dedupe_key="mid:<cut.1@source.example>",
    )
    result = sidecar.run_once()["two"]
    assert isinstance(result, PollResult), result
    assert (result.delivered, result.duplicates, result.deleted) == (0, 1, 1)
    assert len(dovecot.messages(inbox)) == 1
    (row,) = sidecar.store.messages("two").values()
    assert row.target_id and row.target_id.startswith("uid:")
    sidecar.close()


def test_interrupted_append_without_message_id_is_found_by_content(
    dovecot: DovecotServer,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mailbridge.sidecar.targets.imap import IMAPDelivery

    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    inbox = user_name + "-inbox"
    monkeypatch.setenv(env_for(inbox), dovecot.add_user(inbox))
    anonymous = b"\r\n".join(
        line
        for line in make_message("anon", 1, 4000).split(b"\r\n")
        if not line.startswith(b"Message-ID:")
    )
    dovecot.deliver(user_name, anonymous)
    account = {
        "name": "anon",
        "pop3": pop3_block(dovecot, user_name),
        "deliver_to": "alice@gmail.example",
        "via": "imap",
        "imap": imap_block(dovecot, inbox),
    }
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    real = IMAPDelivery.deliver

    def deliver_then_die(self: IMAPDelivery, *args: object) -> str | None:
        real(self, *args)  # type: ignore[arg-type]
        raise SystemExit("killed after APPEND, before the state write")

    monkeypatch.setattr(IMAPDelivery, "deliver", deliver_then_die)
    with pytest.raises(SystemExit):
        sidecar.pollers["anon"].poll()
    monkeypatch.setattr(IMAPDelivery, "deliver", real)
    (row,) = sidecar.store.messages("anon").values()
    assert row.state == MessageState.DELIVERING
    assert row.dedupe_key is not None and row.dedupe_key.startswith("sha256:")

    result = sidecar.run_once()["anon"]
    assert isinstance(result, PollResult), result
    assert (result.delivered, result.deleted) == (1, 1)
    assert len(dovecot.messages(inbox)) == 1, "found by content, not appended again"
    (row,) = sidecar.store.messages("anon").values()
    assert row.target_id is not None and row.target_id.startswith("uid:")
    sidecar.close()


def test_a_non_ascii_return_path_does_not_stop_the_account(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """smtplib cannot send a UTF-8 MAIL FROM without SMTPUTF8, which
    smtp-sink does not offer: the message goes with the null sender instead
    of failing every poll, and the mail behind it still moves."""
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    utf8 = make_message("utf8", 1).replace(
        b"Return-Path: <sender1@source.example>",
        "Return-Path: <jörg@source.example>".encode(),
    )
    dovecot.deliver(user_name, utf8)
    dovecot.deliver(user_name, make_message("utf8", 2))
    account = sink_account("relay", dovecot, user_name, smtp_sink.port)
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    result = sidecar.run_once()["relay"]
    sidecar.close()
    assert isinstance(result, PollResult), result
    assert (result.delivered, result.deleted) == (2, 2)
    assert len(smtp_sink.wait_for(2)) == 2
    senders = {}
    for path in smtp_sink.root.iterdir():
        lines = path.read_bytes().split(b"\n")
        args = next(x for x in lines if x.startswith(b"X-Mail-Args:"))
        mid = next(x for x in lines if x.startswith(b"Message-ID:"))
        senders[mid.split()[1].decode()] = args.split(b":", 1)[1].split()[0]
    assert senders == {
        "<utf8.1@source.example>": b"<>",
        "<utf8.2@source.example>": b"<sender2@source.example>",
    }


class QuotaDovecot(DovecotServer):
    """The test Dovecot with a 30 KB quota per user, for a full target."""

    def write_config(self) -> None:
        super().write_config()
        with self.config_path.open("a") as config:
            config.write(
                "mail_plugins = $mail_plugins quota\n"
                "plugin {\n"
                "  quota = count:User quota\n"
                "  quota_vsizes = yes\n"
                "  quota_rule = *:storage=30K\n"
                "}\n"
            )


@pytest.fixture(scope="module")
def full_dovecot() -> Iterator[QuotaDovecot]:
    root = Path(tempfile.mkdtemp(prefix="mailbridge-quota-"))
    os.chmod(root, 0o755)
    certs = make_certificates(root)
    os.chmod(certs.key_file, 0o600)
    server = QuotaDovecot(root=root, certs=certs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_full_imap_target_is_retried_not_quarantined(
    dovecot: DovecotServer,
    full_dovecot: QuotaDovecot,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """APPEND refused with NO [OVERQUOTA] is the inbox's state, not the
    message's fault: the message stays spooled and on the POP3 server, and
    goes once there is room; nothing lands in quarantine."""
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    inbox = user_name + "-inbox"
    monkeypatch.setenv(env_for(inbox), full_dovecot.add_user(inbox))
    dovecot.deliver(user_name, make_message("quota", 1, 15_000))
    dovecot.deliver(user_name, make_message("quota", 2, 20_000))
    account = {
        "name": "full",
        "pop3": pop3_block(dovecot, user_name),
        "deliver_to": "alice@gmail.example",
        "via": "imap",
        "imap": imap_block(full_dovecot, inbox),
    }
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    failed = sidecar.run_once()["full"]
    assert isinstance(failed, ProtocolError), failed
    assert "OVERQUOTA" in str(failed) and failed.not_delivered
    states = {r.state for r in sidecar.store.messages("full").values()}
    assert states == {MessageState.DELETED, MessageState.SPOOLED}
    assert len(full_dovecot.messages(inbox)) == 1
    assert len(dovecot.messages(user_name)) == 1
    assert not (tmp_path / "quarantine").exists()

    full_dovecot.clear(inbox)  # room again
    result = sidecar.run_once()["full"]
    assert isinstance(result, PollResult), result
    assert (result.delivered, result.deleted, result.quarantined) == (1, 1, 0)
    assert message_ids(full_dovecot.messages(inbox)) == ["<quota.2@source.example>"]
    sidecar.close()
