"""Mail through a host run from rendered files, with the real Debian programs.

Host A serves example.com (mailboxes, forwarders, SRS, DKIM); host B serves
example.net and only forwards. An smtp-sink stands in for Gmail's MX and
for outside.test: the transport entries pointing there exist only here.
"""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import dkim
import pytest

from tests.render.hosts import POSTSRSD, TEST_PASSWORDS, MailHostUnderTest
from tests.render.specs import COM, NET, spec
from tests.servers.common import (
    LOOPBACK,
    OUTSIDE,
    free_port,
    free_ports,
    remove_dir,
    server_dir,
    stop_process,
    wait_for_port,
)
from tests.servers.postfix import SinkMessage, SmtpSink

pytestmark = pytest.mark.servers

SENDER = "someone@outside.test"
SRS0 = re.compile(r"^SRS0=[^=]+=[A-Z0-9]{2}=outside\.test=someone@example\.com$")


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    root = server_dir("sink")
    target = SmtpSink(root, free_port())
    target.start()
    try:
        yield target
    finally:
        target.stop()
        remove_dir(root)


@pytest.fixture(scope="module")
def hosts(sink: SmtpSink) -> Iterator[tuple[MailHostUnderTest, MailHostUnderTest]]:
    """Host A (everything) and host B (Postfix only), forwarding to each other."""
    host_a = MailHostUnderTest([spec(COM)])
    host_b = MailHostUnderTest([spec(NET)])
    to_sink = f"smtp:[{LOOPBACK}]:{sink.port}"
    try:
        host_a.start(
            {
                "gmail.com": f"gmail:[{LOOPBACK}]:{sink.port}",
                "outside.test": to_sink,
                "example.net": f"smtp:[{LOOPBACK}]:{host_b.smtp_port}",
            },
            services=("postsrsd", "opendkim", "rspamd", "dovecot", "postfix"),
        )
        host_b.start(
            {
                "outside.test": to_sink,
                "example.com": f"smtp:[{LOOPBACK}]:{host_a.smtp_port}",
            },
            services=("postfix",),
        )
        yield host_a, host_b
    finally:
        host_b.cleanup()
        host_a.cleanup()


@pytest.fixture(scope="module")
def host(hosts: tuple[MailHostUnderTest, MailHostUnderTest]) -> MailHostUnderTest:
    return hosts[0]


def message(to: str, subject: str, sender: str = SENDER) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Some One <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@outside.test>"
    msg["X-Original-Header"] = "kept as sent"
    msg.set_content("Hello from the outside.\n")
    return msg


def send_from_outside(host: MailHostUnderTest, msg: EmailMessage, to: str) -> None:
    """Deliver over port 25 from 127.0.0.5, outside the host's mynetworks."""
    with smtplib.SMTP(source_address=(OUTSIDE, 0), timeout=20) as client:
        client.connect(LOOPBACK, host.smtp_port)
        client.ehlo("client.outside.test")
        client.send_message(msg, from_addr=SENDER, to_addrs=[to])


def tls_context(host: MailHostUnderTest) -> ssl.SSLContext:
    assert host.options is not None and host.options.tls_cert
    return ssl.create_default_context(cafile=host.path(host.options.tls_cert))


def wait_lmtp(host: MailHostUnderTest, address: str, msgid: str) -> None:
    assert host.postfix is not None
    host.postfix.wait_log(f"message-id={msgid}")
    host.postfix.wait_log(f"to=<{address}>")
    host.postfix.wait_log("Saved")


def pop3_messages(
    host: MailHostUnderTest, user: str
) -> tuple[list[bytes], list[bytes]]:
    """UIDL lines and the raw messages of `user`, over POP3 with implicit TLS."""
    client = poplib.POP3_SSL(
        LOOPBACK, host.ports["pop3s_port"], context=tls_context(host), timeout=20
    )
    try:
        client.user(user)
        client.pass_(TEST_PASSWORDS[user.split("@")[0] + "-password"])
        uidls = client.uidl()[1]
        bodies = [b"\r\n".join(client.retr(i + 1)[1]) for i in range(len(uidls))]
        return uidls, bodies
    finally:
        client.quit()


def imap_subjects(host: MailHostUnderTest, user: str) -> list[str]:
    client = imaplib.IMAP4_SSL(
        LOOPBACK, host.ports["imaps_port"], ssl_context=tls_context(host), timeout=20
    )
    try:
        client.login(user, TEST_PASSWORDS[user.split("@")[0] + "-password"])
        client.select("INBOX", readonly=True)
        _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [
            part[1].decode().strip().removeprefix("Subject: ")
            for part in data
            if isinstance(part, tuple)
        ]
    finally:
        client.logout()


def dkim_selectors(host: MailHostUnderTest, received: SinkMessage) -> list[str]:
    """The selectors of the DKIM signatures that dkimpy verifies, in order."""

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return host.dkim_txt[name.decode().rstrip(".")].encode()

    raw = received.raw.replace(b"\n", b"\r\n")
    count = len(received.message.get_all("DKIM-Signature") or [])
    valid = []
    for index in range(count):
        checker = dkim.DKIM(raw)
        if checker.verify(idx=index, dnsfunc=lookup):
            assert checker.selector is not None
            valid.append(checker.selector.decode())
    return sorted(valid)


def dkim_valid(host: MailHostUnderTest, received: SinkMessage) -> bool:
    """Every active key of example.com signed, and each signature verifies."""
    return dkim_selectors(host, received) == ["s2026a", "s2026e"]


def arc_result(host: MailHostUnderTest, received: SinkMessage) -> bytes:
    """dkimpy's verdict on the ARC chain (RFC 8617) of a received message."""

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return host.dkim_txt[name.decode().rstrip(".")].encode()

    raw = received.raw.replace(b"\n", b"\r\n")
    verdict, _, _ = dkim.arc_verify(raw, dnsfunc=lookup)
    return bytes(verdict)


def test_forwarded_mail_reaches_gmail_with_srs_and_dkim(
    host: MailHostUnderTest, sink: SmtpSink
) -> None:
    msg = message("sales@example.com", "forwarded to gmail")
    send_from_outside(host, msg, "sales@example.com")

    got = sink.wait_message(
        "sales.team@gmail.com", log=host.path("var/log/postfix.log")
    )

    assert SRS0.match(got.mail_from), got.mail_from
    assert host.postfix is not None
    assert "relay=127.0.0.1" in host.postfix.wait_log("postfix/gmail/smtp")
    assert got.message["DKIM-Signature"] is not None
    assert "d=example.com" in got.message["DKIM-Signature"].replace(" ", "")
    assert dkim_valid(host, got)
    assert arc_result(host, got) == b"pass"
    assert "example.com" in got.message["ARC-Seal"].replace(" ", "")
    for name in ("From", "To", "Subject", "Message-ID", "X-Original-Header"):
        assert got.message[name] == msg[name]
    assert got.message.get_content().rstrip() == msg.get_content().rstrip()


def tcp_table_get(port: int, key: str) -> tuple[int, str]:
    """One lookup in a Postfix tcp_table server such as postsrsd."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as conn:
        conn.sendall(f"get {key}\n".encode())
        reply = conn.makefile("rb").readline().decode().strip()
    code, _, value = reply.partition(" ")
    return int(code), value


def test_srs_addresses_of_an_older_secret_still_reverse(
    host: MailHostUnderTest,
) -> None:
    """postsrsd signs with the first secret and verifies with all of them."""
    root = server_dir("postsrsd-old")
    secret = root / "secret"
    secret.write_text(TEST_PASSWORDS["srs-old"] + "\n")
    forward, reverse = free_ports(2)
    old = subprocess.Popen(
        [POSTSRSD, "-d", "example.com", "-s", str(secret), "-l", LOOPBACK]
        + [f"-f{forward}", f"-r{reverse}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(reverse, process=old, name="postsrsd")
        _, signed_old = tcp_table_get(forward, SENDER)
    finally:
        stop_process(old)
        remove_dir(root)
    _, signed_new = tcp_table_get(host.ports["srs_forward_port"], SENDER)
    forged = re.sub(r"^SRS0=[^=]+=", "SRS0=AAAA=", signed_new)

    assert SRS0.match(signed_old) and SRS0.match(signed_new)
    assert signed_old != signed_new
    reverse_port = host.ports["srs_reverse_port"]
    assert tcp_table_get(reverse_port, signed_old) == (200, SENDER)
    assert tcp_table_get(reverse_port, signed_new) == (200, SENDER)
    assert tcp_table_get(reverse_port, forged)[0] != 200


def test_mailbox_mail_is_read_over_pop3_and_imap(
    host: MailHostUnderTest, sink: SmtpSink
) -> None:
    msg = message("bob@example.com", "for bob's mailbox")
    send_from_outside(host, msg, "bob@example.com")
    wait_lmtp(host, "bob@example.com", msg["Message-ID"])

    uidls, bodies = pop3_messages(host, "bob@example.com")
    again, _ = pop3_messages(host, "bob@example.com")

    assert any(msg["Message-ID"].encode() in body for body in bodies)
    assert uidls == again
    assert "for bob's mailbox" in imap_subjects(host, "bob@example.com")
    # The mailbox wins over the catch-all: nothing went to owner@gmail.com.
    assert not any(
        m.message["Message-ID"] == msg["Message-ID"] for m in sink.messages()
    )


def test_pop3_uidls_stay_when_new_mail_arrives(host: MailHostUnderTest) -> None:
    """A client that keeps mail on the server (RFC 1939 UIDL) sees no change."""
    first = message("bob@example.com", "uidl one")
    send_from_outside(host, first, "bob@example.com")
    wait_lmtp(host, "bob@example.com", first["Message-ID"])
    before, _ = pop3_messages(host, "bob@example.com")

    second = message("bob@example.com", "uidl two")
    send_from_outside(host, second, "bob@example.com")
    wait_lmtp(host, "bob@example.com", second["Message-ID"])
    after, bodies = pop3_messages(host, "bob@example.com")

    assert after[: len(before)] == before
    assert len(after) == len(before) + 1
    assert second["Message-ID"].encode() in bodies[-1]
    uids = [line.split()[1] for line in after]
    assert len(set(uids)) == len(uids)


def test_keep_a_copy_forwarder_delivers_both(
    host: MailHostUnderTest, sink: SmtpSink
) -> None:
    msg = message("alice@example.com", "alice keeps a copy")
    send_from_outside(host, msg, "alice@example.com")

    got = sink.wait_message("alice.example@gmail.com")
    wait_lmtp(host, "alice@example.com", msg["Message-ID"])

    assert got.message["Message-ID"] == msg["Message-ID"]
    assert "alice keeps a copy" in imap_subjects(host, "alice@example.com")


def test_catch_all_forwards_unknown_local_parts(
    host: MailHostUnderTest, sink: SmtpSink
) -> None:
    msg = message("nobody-here@example.com", "to the catch-all")
    send_from_outside(host, msg, "nobody-here@example.com")

    got = sink.wait_message("owner@gmail.com")

    assert got.message["Message-ID"] == msg["Message-ID"]


def test_quota_of_the_spec_is_applied(host: MailHostUnderTest) -> None:
    report = host.doveadm("quota", "get", "-u", "alice@example.com")

    storage = next(line for line in report.splitlines() if "STORAGE" in line)
    assert " 51200 " in f" {' '.join(storage.split())} "


def test_mail_over_quota_is_bounced_to_the_sender(
    host: MailHostUnderTest, sink: SmtpSink
) -> None:
    msg = message("carol@example.com", "too big for carol")
    msg.set_content(("y" * 76 + "\n") * 20000)  # about 1.5 MB, quota 1 MB
    send_from_outside(host, msg, "carol@example.com")

    bounce = sink.wait_message(
        SENDER, log=host.path("var/log/postfix.log"), containing=msg["Message-ID"]
    )

    assert bounce.mail_from == ""
    report = bounce.raw.decode(errors="replace")
    assert "carol@example.com" in report
    assert "5.2.2" in report


def test_relay_from_outside_is_refused(host: MailHostUnderTest) -> None:
    with smtplib.SMTP(source_address=(OUTSIDE, 0), timeout=20) as client:
        client.connect(LOOPBACK, host.smtp_port)
        client.ehlo("client.outside.test")
        client.mail(SENDER)
        code, reply = client.rcpt("victim@elsewhere.test")

    assert 500 <= code < 600, reply
    assert b"Relay access denied" in reply


def test_auth_before_starttls_is_refused(host: MailHostUnderTest) -> None:
    with smtplib.SMTP(LOOPBACK, host.ports["submission_port"], timeout=20) as client:
        client.ehlo("client.example.com")
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==")
        assert code in (503, 530)  # 530: "Must issue a STARTTLS command first"
        client.starttls(context=tls_context(host))
        client.ehlo("client.example.com")
        assert client.has_extn("auth")


def test_dovecot_refuses_plaintext_login_without_tls(host: MailHostUnderTest) -> None:
    """A client outside (127.0.0.5) on the plain POP3 port must use STLS first."""
    with socket.create_connection(
        (LOOPBACK, host.ports["pop3_port"]), timeout=20, source_address=(OUTSIDE, 0)
    ) as conn:
        reader = conn.makefile("rb")
        greeting = reader.readline()
        conn.sendall(b"USER bob@example.com\r\n")
        user_reply = reader.readline()
        conn.sendall(b"PASS " + TEST_PASSWORDS["bob-password"].encode() + b"\r\n")
        pass_reply = reader.readline()

    assert greeting.startswith(b"+OK")
    assert (user_reply + pass_reply).count(b"-ERR") >= 1
    assert b"Plaintext authentication disallowed" in user_reply + pass_reply


def submit(host: MailHostUnderTest, user: str, sender: str, to: str) -> None:
    with smtplib.SMTP(LOOPBACK, host.ports["submission_port"], timeout=20) as client:
        client.starttls(context=tls_context(host))
        client.login(user, TEST_PASSWORDS[user.split("@")[0] + "-password"])
        client.send_message(
            message(to, "submitted", sender), from_addr=sender, to_addrs=[to]
        )


def test_logged_in_user_sends_as_own_address_only(
    host: MailHostUnderTest, sink: SmtpSink
) -> None:
    submit(host, "alice@example.com", "alice@example.com", "friend@outside.test")
    got = sink.wait_message("friend@outside.test")
    assert got.mail_from == "alice@example.com"  # own domain: no SRS
    assert dkim_valid(host, got)

    # Postfix delays the rejection to RCPT TO (smtpd_delay_reject).
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        submit(host, "alice@example.com", "bob@example.com", "friend@outside.test")

    code, reply = refused.value.recipients["friend@outside.test"]
    assert 500 <= code < 600
    assert b"not owned by user alice@example.com" in reply


def test_port_465_needs_tls_and_checks_the_sender(
    host: MailHostUnderTest, sink: SmtpSink
) -> None:
    """Implicit TLS (RFC 8314): logins work inside TLS, sender checks apply."""
    port = host.ports["smtps_port"]
    with socket.create_connection((LOOPBACK, port), timeout=20) as plain:
        plain.sendall(b"EHLO client.example.com\r\n")
        plain.settimeout(5)
        try:
            answer = plain.recv(200)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    assert not answer.startswith(b"220")  # no plaintext SMTP greeting

    user, password = "alice@example.com", TEST_PASSWORDS["alice-password"]
    with smtplib.SMTP_SSL(
        LOOPBACK, port, context=tls_context(host), timeout=20
    ) as client:
        client.login(user, password)
        assert isinstance(client.sock, ssl.SSLSocket)
        tls_version = client.sock.version()
        client.send_message(
            message("friend@outside.test", "over 465", user),
            from_addr=user,
            to_addrs=["friend@outside.test"],
        )
        client.mail("bob@example.com")
        code, reply = client.rcpt("friend@outside.test")

    assert tls_version in ("TLSv1.2", "TLSv1.3")
    got = sink.wait_message("friend@outside.test", containing="over 465")
    assert dkim_valid(host, got)
    assert 500 <= code < 600
    assert b"not owned by user alice@example.com" in reply


def test_alias_loop_on_one_host_is_never_accepted(host: MailHostUnderTest) -> None:
    msg = message("loop-a@example.com", "loop on one host")

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send_from_outside(host, msg, "loop-a@example.com")

    assert refused.value.smtp_code == 451
    assert host.postfix is not None
    host.postfix.wait_log("unreasonable virtual_alias_maps map nesting")


def test_loop_between_two_hosts_is_bounced_to_the_sender(
    hosts: tuple[MailHostUnderTest, MailHostUnderTest], sink: SmtpSink
) -> None:
    host_a, _ = hosts
    msg = message("ping@example.com", "loop between hosts")
    send_from_outside(host_a, msg, "ping@example.com")

    bounce = sink.wait_message(
        SENDER,
        timeout=120,
        log=host_a.path("var/log/postfix.log"),
        containing=msg["Message-ID"],
    )

    assert bounce.mail_from == ""
    report = bounce.raw.decode(errors="replace")
    assert "too many hops" in report.lower() or "loop" in report.lower()
    assert msg["Message-ID"] in report
