"""The state store: what happened to each message, per account and UIDL.

A message moves seen -> spooled -> delivering -> delivered -> deleted (or
duplicate, quarantined, seeded, gone). "delivering" is written, with the
message's dedupe key, before the target is contacted, so after a crash the
sidecar knows which message may have reached the target and probes it.

SQLite (one file, WAL) serves one process. PostgreSQL serves replicas that
share accounts: each account is leased by one replica at a time.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from .errors import TemporaryError

log = logging.getLogger(__name__)


class MessageState(enum.StrEnum):
    SEEN = "seen"
    SPOOLED = "spooled"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    DELETED = "deleted"
    GONE = "gone"
    QUARANTINED = "quarantined"
    SEEDED = "seeded"


PENDING = frozenset({MessageState.SEEN, MessageState.SPOOLED, MessageState.DELIVERING})
OFF_SERVER = frozenset({MessageState.DELETED, MessageState.GONE})
# Delivered by us (or found in the inbox): eligible for deletion on the server.
CONFIRMED = frozenset({MessageState.DELIVERED, MessageState.DUPLICATE})

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sidecar_accounts (
        name TEXT PRIMARY KEY,
        paused TEXT,
        last_poll DOUBLE PRECISION,
        last_success DOUBLE PRECISION,
        last_error TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires DOUBLE PRECISION
    )""",
    """CREATE TABLE IF NOT EXISTS sidecar_messages (
        account TEXT NOT NULL,
        uidl TEXT NOT NULL,
        state TEXT NOT NULL,
        dedupe_key TEXT,
        message_id TEXT,
        size BIGINT,
        first_seen DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        delivered_at DOUBLE PRECISION,
        target_id TEXT,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, uidl)
    )""",
    """CREATE INDEX IF NOT EXISTS sidecar_messages_dedupe
        ON sidecar_messages (dedupe_key)""",
    """CREATE TABLE IF NOT EXISTS sidecar_replicas (
        owner TEXT PRIMARY KEY,
        expires DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sidecar_delivered (
        target TEXT NOT NULL,
        dedupe_key TEXT NOT NULL,
        account TEXT NOT NULL,
        uidl TEXT NOT NULL,
        target_id TEXT,
        delivered_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (target, dedupe_key)
    )""",
)

_COLUMNS = (
    "uidl, state, dedupe_key, message_id, size, first_seen, delivered_at, "
    "target_id, reason, attempts"
)


class MessageRow(NamedTuple):
    """One message's record (a tuple: an account may hold 10,000 of them)."""

    uidl: str
    state: MessageState
    dedupe_key: str | None
    message_id: str | None
    size: int | None
    first_seen: float
    delivered_at: float | None
    target_id: str | None
    reason: str | None
    attempts: int


@dataclass(frozen=True)
class AccountRow:
    name: str
    paused: str | None
    last_poll: float | None
    last_success: float | None
    last_error: str | None
    failures: int
    lease_owner: str | None
    lease_expires: float | None


@dataclass(frozen=True)
class AccountSummary:
    account: AccountRow
    counts: dict[str, int]
    oldest_pending: float | None


class _Connection(Protocol):
    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


class Store:
    """Shared logic; subclasses provide connections and the SQL dialect.

    Each thread gets its own connection, so accounts polled in parallel do
    not wait on each other except for the database's own locking.
    """

    placeholder = "?"
    uses_leases = False

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._lock = threading.Lock()
        # Dedupe keys being delivered by this process: (lock, holders).
        self._keys: dict[tuple[str, str], tuple[threading.Lock, int]] = {}
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    # -- connections ----------------------------------------------------------

    def _connect(self) -> _Connection:
        raise NotImplementedError

    def _conn(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing on shutdown
                    log.debug("state close failed", exc_info=True)
            self._all.clear()
        self._local = threading.local()

    def _sql(self, query: str) -> str:
        return query.replace("?", self.placeholder)

    def _broken(self, conn: _Connection) -> bool:
        """Whether `conn` is unusable (the server went away)."""
        return False

    def _forget(self, conn: _Connection) -> None:
        """Drop this thread's broken connection; the next call reconnects."""
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - it is broken already
            log.debug("closing a broken state connection failed", exc_info=True)
        log.warning("state connection lost; reconnecting on the next call")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        conn = self._conn()
        cur = conn.cursor()
        try:
            yield cur
            conn.commit()
        except BaseException:
            if self._broken(conn):
                self._forget(conn)
            else:
                conn.rollback()
            raise
        finally:
            try:
                cur.close()
            except Exception:  # noqa: BLE001 - the connection may be gone
                log.debug("closing a state cursor failed", exc_info=True)

    def _execute(self, query: str, params: Sequence[Any] = ()) -> int:
        with self._transaction() as cur:
            cur.execute(self._sql(query), params)
            return int(cur.rowcount)

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._transaction() as cur:
            cur.execute(self._sql(query), params)
            return list(cur.fetchall())

    def migrate(self) -> None:
        with self._transaction() as cur:
            for statement in SCHEMA:
                cur.execute(statement)

    # -- accounts -------------------------------------------------------------

    def ensure_account(self, name: str) -> None:
        self._execute(
            "INSERT INTO sidecar_accounts (name) VALUES (?) ON CONFLICT DO NOTHING",
            (name,),
        )

    def account(self, name: str) -> AccountRow:
        self.ensure_account(name)
        rows = self._fetch(
            "SELECT name, paused, last_poll, last_success, last_error, failures, "
            "lease_owner, lease_expires FROM sidecar_accounts WHERE name = ?",
            (name,),
        )
        return AccountRow(*rows[0])

    def accounts(self) -> list[AccountRow]:
        rows = self._fetch(
            "SELECT name, paused, last_poll, last_success, last_error, failures, "
            "lease_owner, lease_expires FROM sidecar_accounts ORDER BY name"
        )
        return [AccountRow(*row) for row in rows]

    def pause(self, name: str, reason: str) -> None:
        self.ensure_account(name)
        self._execute(
            "UPDATE sidecar_accounts SET paused = ? WHERE name = ?", (reason, name)
        )

    def resume(self, name: str) -> None:
        self._execute(
            "UPDATE sidecar_accounts SET paused = NULL WHERE name = ?", (name,)
        )

    def record_poll(self, name: str, error: str | None) -> int:
        """Note a poll's outcome; returns the count of failures in a row."""
        now = time.time()
        if error is None:
            self._execute(
                "UPDATE sidecar_accounts SET last_poll = ?, last_success = ?, "
                "last_error = NULL, failures = 0 WHERE name = ?",
                (now, now, name),
            )
            return 0
        self._execute(
            "UPDATE sidecar_accounts SET last_poll = ?, last_error = ?, "
            "failures = failures + 1 WHERE name = ?",
            (now, error, name),
        )
        return self.account(name).failures

    def acquire_lease(
        self, name: str, seconds: float, share: int | None = None
    ) -> bool:
        """Take or renew the account's lease; False while another replica
        holds it, or when this replica already holds its `share` of accounts
        (then a renewal gives the lease up, so a new replica gets work)."""
        if not self.uses_leases:
            return True
        self.ensure_account(name)
        now = time.time()
        if share is not None:
            owned = self._owned(now)
            mine = name in owned
            if (mine and len(owned) > share) or (not mine and len(owned) >= share):
                if mine:
                    self._release(name)
                    log.info("lease shed account=%s owner=%s", name, self.owner)
                return False
        count = self._execute(
            "UPDATE sidecar_accounts SET lease_owner = ?, lease_expires = ? "
            "WHERE name = ? AND (lease_owner IS NULL OR lease_owner = ? "
            "OR lease_expires < ?)",
            (self.owner, now + seconds, name, self.owner, now),
        )
        return count == 1

    def _owned(self, now: float) -> set[str]:
        rows = self._fetch(
            "SELECT name FROM sidecar_accounts WHERE lease_owner = ? "
            "AND lease_expires >= ?",
            (self.owner, now),
        )
        return {str(row[0]) for row in rows}

    def _release(self, name: str) -> None:
        self._execute(
            "UPDATE sidecar_accounts SET lease_owner = NULL, lease_expires = NULL "
            "WHERE name = ? AND lease_owner = ?",
            (name, self.owner),
        )

    def heartbeat(self, seconds: float) -> int:
        """Announce this replica for `seconds`; returns how many are alive."""
        if not self.uses_leases:
            return 1
        now = time.time()
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO sidecar_replicas (owner, expires) VALUES (?, ?) "
                    "ON CONFLICT (owner) DO UPDATE SET expires = excluded.expires"
                ),
                (self.owner, now + seconds),
            )
            cur.execute(
                self._sql("DELETE FROM sidecar_replicas WHERE expires < ?"), (now,)
            )
            cur.execute(self._sql("SELECT COUNT(*) FROM sidecar_replicas"))
            return max(1, int(cur.fetchone()[0]))

    def release_leases(self) -> None:
        """On a clean stop: hand every account back at once."""
        if self.uses_leases:
            self._execute(
                "UPDATE sidecar_accounts SET lease_owner = NULL, lease_expires = NULL "
                "WHERE lease_owner = ?",
                (self.owner,),
            )
            self._execute("DELETE FROM sidecar_replicas WHERE owner = ?", (self.owner,))

    # -- messages -------------------------------------------------------------

    def messages(self, account: str) -> dict[str, MessageRow]:
        rows = self._fetch(
            f"SELECT {_COLUMNS} FROM sidecar_messages WHERE account = ?", (account,)
        )
        return {row[0]: _message(row) for row in rows}

    def message(self, account: str, uidl: str) -> MessageRow | None:
        rows = self._fetch(
            f"SELECT {_COLUMNS} FROM sidecar_messages WHERE account = ? AND uidl = ?",
            (account, uidl),
        )
        return _message(rows[0]) if rows else None

    def mark(
        self,
        account: str,
        uidl: str,
        state: MessageState,
        *,
        dedupe_key: str | None = None,
        message_id: str | None = None,
        size: int | None = None,
        reason: str | None = None,
        attempt: bool = False,
    ) -> None:
        """Insert or move one message to `state`; None fields keep old values."""
        now = time.time()
        self._execute(
            "INSERT INTO sidecar_messages (account, uidl, state, dedupe_key, "
            "message_id, size, first_seen, updated, reason, attempts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (account, uidl) DO UPDATE SET state = excluded.state, "
            "dedupe_key = COALESCE(excluded.dedupe_key, sidecar_messages.dedupe_key), "
            "message_id = COALESCE(excluded.message_id, sidecar_messages.message_id), "
            "size = COALESCE(excluded.size, sidecar_messages.size), "
            "updated = excluded.updated, "
            "reason = COALESCE(excluded.reason, sidecar_messages.reason), "
            "attempts = sidecar_messages.attempts + excluded.attempts",
            (
                account,
                uidl,
                str(state),
                dedupe_key,
                message_id,
                size,
                now,
                now,
                reason,
                1 if attempt else 0,
            ),
        )

    def mark_many(
        self, account: str, uidls: Iterable[str], state: MessageState
    ) -> None:
        now = time.time()
        rows = [(account, uidl, str(state), now, now) for uidl in uidls]
        if not rows:
            return
        with self._transaction() as cur:
            cur.executemany(
                self._sql(
                    "INSERT INTO sidecar_messages (account, uidl, state, "
                    "first_seen, updated) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (account, uidl) DO UPDATE SET "
                    "state = excluded.state, updated = excluded.updated"
                ),
                rows,
            )

    @contextmanager
    def holding(self, target: str, dedupe_key: str) -> Iterator[None]:
        """Hold a message's dedupe key from its lookup to its record: two
        accounts that fetched the same message at once deliver it once, as
        the second waits and then finds it delivered. Threads of this
        process wait on a lock; replicas, on `_hold_shared`."""
        key = (target, dedupe_key)
        with self._lock:
            lock, holders = self._keys.get(key, (threading.Lock(), 0))
            self._keys[key] = (lock, holders + 1)
        try:
            with lock, self._hold_shared(key):
                yield
        finally:
            with self._lock:
                lock, holders = self._keys[key]
                if holders == 1:
                    del self._keys[key]
                else:
                    self._keys[key] = (lock, holders - 1)

    def _hold_shared(self, key: tuple[str, str]) -> AbstractContextManager[None]:
        """Hold `key` against other processes sharing this store: none here."""
        return nullcontext()

    def delivering_elsewhere(
        self, account: str, uidl: str, dedupe_key: str
    ) -> tuple[str, str] | None:
        """(account, UIDL) of another message with this key left `delivering`
        (its delivery was cut off), if any."""
        rows = self._fetch(
            "SELECT account, uidl FROM sidecar_messages WHERE dedupe_key = ? "
            "AND state = ? AND NOT (account = ? AND uidl = ?)",
            (dedupe_key, str(MessageState.DELIVERING), account, uidl),
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def find_delivered(self, target: str, dedupe_key: str) -> tuple[str, str] | None:
        """(account, UIDL) that already brought this message to `target`."""
        rows = self._fetch(
            "SELECT account, uidl FROM sidecar_delivered "
            "WHERE target = ? AND dedupe_key = ?",
            (target, dedupe_key),
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def record_delivery(
        self,
        account: str,
        uidl: str,
        *,
        target: str,
        dedupe_key: str,
        target_id: str | None,
        state: MessageState = MessageState.DELIVERED,
        message_id: str | None = None,
        size: int | None = None,
    ) -> None:
        """Confirmed at the target: the message row and the dedupe entry, in
        one transaction."""
        now = time.time()
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO sidecar_messages (account, uidl, state, dedupe_key, "
                    "message_id, size, first_seen, updated, delivered_at, target_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (account, uidl) DO UPDATE SET "
                    "state = excluded.state, delivered_at = excluded.delivered_at, "
                    "target_id = excluded.target_id, updated = excluded.updated, "
                    "dedupe_key = excluded.dedupe_key"
                ),
                (
                    account,
                    uidl,
                    str(state),
                    dedupe_key,
                    message_id,
                    size,
                    now,
                    now,
                    now,
                    target_id,
                ),
            )
            cur.execute(
                self._sql(
                    "INSERT INTO sidecar_delivered (target, dedupe_key, account, "
                    "uidl, target_id, delivered_at) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING"
                ),
                (target, dedupe_key, account, uidl, target_id, now),
            )

    def flush(self) -> None:
        """Make every committed write durable before an irreversible step
        (POP3 DELE). Stores that sync each commit do nothing here."""

    def oldest_pending(self, account: str) -> float | None:
        rows = self._fetch(
            "SELECT MIN(first_seen) FROM sidecar_messages "
            "WHERE account = ? AND state IN (?, ?, ?)",
            (account, *sorted(str(s) for s in PENDING)),
        )
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    def summary(self) -> list[AccountSummary]:
        """Every account with its message counts by state, for `status`."""
        counts: dict[str, dict[str, int]] = {}
        for account, state, count in self._fetch(
            "SELECT account, state, COUNT(*) FROM sidecar_messages "
            "GROUP BY account, state"
        ):
            counts.setdefault(account, {})[state] = int(count)
        return [
            AccountSummary(row, counts.get(row.name, {}), self.oldest_pending(row.name))
            for row in self.accounts()
        ]


_STATES = {state.value: state for state in MessageState}


def _message(row: tuple[Any, ...]) -> MessageRow:
    return MessageRow(
        row[0],
        _STATES[row[1]],
        row[2],
        row[3],
        row[4],
        float(row[5]),
        float(row[6]) if row[6] is not None else None,
        row[7],
        row[8],
        int(row[9]),
    )


class SQLiteStore(Store):
    """One SQLite file in WAL mode. Commits survive a killed process at
    once; `flush` makes them survive a power cut before POP3 deletions."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> _Connection:
        conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    def flush(self) -> None:
        # WAL with synchronous=NORMAL survives a killed process but not a
        # power cut; one FULL commit syncs the WAL with every earlier commit.
        conn = self._conn()
        assert isinstance(conn, sqlite3.Connection)
        conn.execute("PRAGMA synchronous=FULL")
        try:
            self._execute("UPDATE sidecar_accounts SET failures = failures")
        finally:
            conn.execute("PRAGMA synchronous=NORMAL")


# How long a replica waits for another one delivering the same message.
HOLD_WAIT_SECONDS = 300


class PostgresStore(Store):
    """PostgreSQL shared by replicas; accounts are leased (rows with expiry)."""

    placeholder = "%s"
    uses_leases = True

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._dsn = dsn

    def _connect(self) -> _Connection:
        import psycopg

        # Keepalives: a replica that vanished without closing its connection
        # loses its session (and its locks) in about a minute, not hours.
        conn: _Connection = psycopg.connect(
            self._dsn,
            connect_timeout=30,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        return conn

    @contextmanager
    def _hold_shared(self, key: tuple[str, str]) -> Iterator[None]:
        """A session advisory lock on the key's hash: another replica's
        delivery of the same message waits for this one, and PostgreSQL
        drops the lock by itself when this replica's session ends."""
        name = "\n".join(key)
        deadline = time.monotonic() + HOLD_WAIT_SECONDS
        query = "SELECT pg_try_advisory_lock(hashtextextended(?, 0))"
        while not self._fetch(query, (name,))[0][0]:
            if time.monotonic() > deadline:
                raise TemporaryError(
                    f"another replica has been delivering this message for "
                    f"{HOLD_WAIT_SECONDS} s; it is tried again on a later poll",
                    not_delivered=True,
                )
            time.sleep(0.2)
        try:
            yield
        finally:
            try:
                self._fetch(
                    "SELECT pg_advisory_unlock(hashtextextended(?, 0))", (name,)
                )
            except Exception:  # noqa: BLE001 - a lost session has dropped it
                log.debug("advisory unlock failed", exc_info=True)

    def _broken(self, conn: _Connection) -> bool:
        # A restarted or failed-over server leaves a connection that fails
        # every call; replicas reconnect instead of failing until restarted.
        return bool(getattr(conn, "broken", False) or getattr(conn, "closed", False))

    def migrate(self) -> None:
        # Replicas starting together would race on CREATE TABLE IF NOT EXISTS;
        # an advisory lock for the transaction serializes them.
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(727274)")
            for statement in SCHEMA:
                cur.execute(statement)
