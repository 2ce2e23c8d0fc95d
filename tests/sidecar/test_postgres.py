"""PostgreSQL as shared state: replicas lease accounts, split the work, and
take over the accounts of a replica that died."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from mailbridge.sidecar.config import load_config
from mailbridge.sidecar.errors import TemporaryError
from mailbridge.sidecar.service import Sidecar
from mailbridge.sidecar.state import MessageState, PostgresStore
from tests.servers.dovecot import DovecotServer
from tests.sidecar.helpers import (
    SmtpSink,
    env_for,
    make_message,
    message_ids,
    pop3_block,
    write_config,
)

pytestmark = [pytest.mark.servers, pytest.mark.slow]


def test_a_lease_is_held_by_one_replica_until_it_expires(postgres_dsn: str) -> None:
    first, second = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    first.migrate()
    second.migrate()
    assert first.acquire_lease("isp", 60)
    assert not second.acquire_lease("isp", 60)
    assert first.acquire_lease("isp", 60), "renewal"
    first._execute("UPDATE sidecar_accounts SET lease_expires = 0")
    assert second.acquire_lease("isp", 60), "an expired lease moves on"
    assert not first.acquire_lease("isp", 60)
    first.close()
    second.close()


def test_a_replica_reconnects_after_the_server_dropped_it(postgres_dsn: str) -> None:
    """A PostgreSQL restart or failover ends every session; the store's next
    call after the failing one works again, on a new connection (the
    service's threads live for days and keep their connections)."""
    import psycopg

    store, admin = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    store.migrate()
    store.mark("isp", "u1", MessageState.DELIVERED)
    ended = admin._fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert ended and all(row[0] for row in ended)
    with pytest.raises(psycopg.OperationalError):
        store.messages("isp")
    assert store.messages("isp")["u1"].state == MessageState.DELIVERED
    store.mark("isp", "u2", MessageState.DELIVERING)
    assert set(store.messages("isp")) == {"u1", "u2"}
    store.close()
    admin.close()


def test_replicas_share_state_and_shed_leases_for_a_newcomer(
    postgres_dsn: str,
) -> None:
    first, second = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    first.migrate()
    assert first.heartbeat(60) == 1
    names = ["a", "b", "c", "d"]
    assert all(first.acquire_lease(n, 60, share=4) for n in names)
    assert second.heartbeat(60) == 2
    # With two replicas alive, each one's share is two accounts.
    kept = [n for n in names if first.acquire_lease(n, 60, share=2)]
    assert len(kept) == 2
    taken = [n for n in names if second.acquire_lease(n, 60, share=2)]
    assert sorted(kept + taken) == names

    first.mark("a", "u1", MessageState.SPOOLED, dedupe_key="mid:<x@y>")
    first.record_delivery(
        "a", "u1", target="t@gmail.example", dedupe_key="mid:<x@y>", target_id="1"
    )
    assert second.find_delivered("t@gmail.example", "mid:<x@y>") == ("a", "u1")
    assert second.messages("a")["u1"].state == MessageState.DELIVERED
    first.close()
    second.close()


def _accounts(
    dovecot: DovecotServer, sink: SmtpSink, users: list[str]
) -> list[dict[str, Any]]:
    return [
        {
            "name": f"acct-{i}",
            "pop3": pop3_block(dovecot, user),
            "poll_seconds": 1,
            "deliver_to": f"user{i}@gmail.example",
            "via": "smtp",
            "smtp": {
                "host": "127.0.0.1",
                "port": sink.port,
                "tls": "none",
                "insecure": True,
            },
        }
        for i, user in enumerate(users)
    ]


def _delivered(sidecar: Sidecar) -> float:
    total = 0.0
    for metric in sidecar.metrics.messages.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels["outcome"] == (
                "delivered"
            ):
                total += sample.value
    return total


def test_a_replica_waits_for_a_held_key_only_so_long(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica that holds a message's dedupe key makes another wait, up
    to HOLD_WAIT_SECONDS; then the other gives up for this poll, with the
    message surely not delivered. A key held and let go is free again."""
    import mailbridge.sidecar.state as state

    monkeypatch.setattr(state, "HOLD_WAIT_SECONDS", 0.5)
    first, second = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    with first.holding("inbox", "mid:<held@x>"):
        with (
            pytest.raises(TemporaryError, match="another replica") as caught,
            second.holding("inbox", "mid:<held@x>"),
        ):
            pytest.fail("the key was held by the first replica")
        assert caught.value.not_delivered
        with second.holding("inbox", "mid:<other@x>"):
            pass
    with second.holding("inbox", "mid:<held@x>"):
        pass
    first.close()
    second.close()


def test_replicas_fetching_the_same_message_deliver_it_once(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    postgres_dsn: str,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two replicas, each polling its own account, both find the same
    messages for the same inbox at the same moment: every message reaches
    the inbox once, as the dedupe key is held across replicas."""
    users = [f"{user_name}-{i}" for i in range(2)]
    sent = [make_message("both", i) for i in range(6)]
    for user in users:
        monkeypatch.setenv(env_for(user), dovecot.add_user(user))
        for data in sent:
            dovecot.deliver(user, data)
    accounts = _accounts(dovecot, smtp_sink, users)
    for account in accounts:
        account["deliver_to"] = "shared@gmail.example"
    monkeypatch.setenv("SIDECAR_TEST_PG_DSN", postgres_dsn)
    config = load_config(
        write_config(
            tmp_path,
            accounts,
            state={"backend": "postgres", "dsn": {"env": "SIDECAR_TEST_PG_DSN"}},
        )
    )
    replicas = [Sidecar(config, accounts=[a["name"]]) for a in accounts]
    start = threading.Barrier(len(replicas))
    results: dict[str, Any] = {}

    def poll(sidecar: Sidecar) -> None:
        start.wait()
        results.update(sidecar.run_once())

    threads = [threading.Thread(target=poll, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    first, second = results["acct-0"], results["acct-1"]
    assert first.delivered + second.delivered == len(sent), results
    assert first.duplicates + second.duplicates == len(sent), results
    received = [m for _, m in smtp_sink.messages()]
    assert sorted(message_ids(received)) == sorted(message_ids(sent))
    for sidecar in replicas:
        sidecar.close()


def test_two_replicas_split_accounts_and_survive_one_dying(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    postgres_dsn: str,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = [f"{user_name}-{i}" for i in range(4)]
    sent = []
    for user in users:
        monkeypatch.setenv(env_for(user), dovecot.add_user(user))
        for i in range(5):
            sent.append(make_message(user, i))
            dovecot.deliver(user, sent[-1])
    monkeypatch.setenv("SIDECAR_TEST_PG_DSN", postgres_dsn)
    path = write_config(
        tmp_path,
        _accounts(dovecot, smtp_sink, users),
        state={
            "backend": "postgres",
            "dsn": {"env": "SIDECAR_TEST_PG_DSN"},
            "lease_seconds": 10,
        },
    )
    config = load_config(path)
    one, two = Sidecar(config), Sidecar(config)
    one.store.heartbeat(10)
    two.store.heartbeat(10)
    threads = [threading.Thread(target=s.run_forever) for s in (one, two)]
    for thread in threads:
        thread.start()
    received = smtp_sink.wait_for(len(sent), timeout=60)
    assert sorted(message_ids([m for _, m in received])) == sorted(message_ids(sent))
    assert _delivered(one) > 0 and _delivered(two) > 0, "both replicas worked"

    # Replica one dies: it stops polling and never hands its leases back.
    monkeypatch.setattr(one.store, "release_leases", lambda: None)
    one.stop()
    threads[0].join(30)
    one.store._execute(
        "UPDATE sidecar_accounts SET lease_expires = 0 WHERE lease_owner = ?",
        (one.store.owner,),
    )
    one.store._execute(
        "DELETE FROM sidecar_replicas WHERE owner = ?", (one.store.owner,)
    )
    before = _delivered(two)
    for user in users:
        sent.append(make_message(user + "-late", 1))
        dovecot.deliver(user, sent[-1])
    received = smtp_sink.wait_for(len(sent), timeout=60)
    two.stop()
    threads[1].join(30)
    assert sorted(message_ids([m for _, m in received])) == sorted(message_ids(sent))
    assert _delivered(two) - before == len(users), "replica two took every account"
    one.close()
    two.close()


def test_the_service_outlives_a_database_restart(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    postgres_dsn: str,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every session to PostgreSQL is ended while the service runs (as a
    restart or failover does): it keeps polling and delivers later mail."""
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    dovecot.deliver(user_name, make_message("before", 1))
    monkeypatch.setenv("SIDECAR_TEST_PG_DSN", postgres_dsn)
    path = write_config(
        tmp_path,
        _accounts(dovecot, smtp_sink, [user_name]),
        state={"backend": "postgres", "dsn": {"env": "SIDECAR_TEST_PG_DSN"}},
    )
    sidecar = Sidecar(load_config(path))
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            sidecar.run_forever()
        except BaseException as err:  # noqa: BLE001 - reported below
            crashed.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert len(smtp_sink.wait_for(1, timeout=30)) == 1
        admin = PostgresStore(postgres_dsn)
        admin._fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        admin.close()
        dovecot.deliver(user_name, make_message("after", 1))
        received = smtp_sink.wait_for(2, timeout=30)
    finally:
        sidecar.stop()
        thread.join(60)
    assert not crashed, crashed
    assert sorted(message_ids([m for _, m in received])) == [
        "<after.1@source.example>",
        "<before.1@source.example>",
    ]
    assert dovecot.messages(user_name) == []
    sidecar.close()
