"""The long-running service: schedules every account's polls on threads."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from mailbridge.errors import InputError

from .account import AccountPoller, PollResult, PollStatus, ProgressCallback
from .config import PostgresState, Retry, SidecarConfig
from .errors import SidecarError, TemporaryError
from .metrics import SidecarMetrics
from .quarantine import Quarantine
from .state import PostgresStore, SQLiteStore, Store

log = logging.getLogger(__name__)


def open_store(config: SidecarConfig) -> Store:
    """The configured state store, with its tables in place; InputError
    (exit status 2) naming the store when it cannot be opened."""
    store: Store | None = None
    try:
        if isinstance(config.state, PostgresState):
            store = PostgresStore(config.state.dsn.read())
        else:
            store = SQLiteStore(config.state.path)
        store.migrate()
    except (OSError, sqlite3.Error) as err:
        if store is not None:
            store.close()
        raise _store_error(config, err) from err
    except Exception as err:
        if store is None or not _is_database_error(err):
            raise
        store.close()
        raise _store_error(config, err) from err
    return store


def _is_database_error(err: Exception) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(err, psycopg.Error)


def _store_error(config: SidecarConfig, err: Exception) -> InputError:
    if isinstance(config.state, PostgresState):
        # A failed connection names host, port and user; libpq's complaints
        # about the string itself quote parts of it, which may be the password.
        text = str(err).strip()
        detail = (
            text.splitlines()[0]
            if text.startswith("connection failed:")
            else "the connection string was refused (details withheld: it "
            "holds the password)"
        )
        return InputError.single(
            f"cannot open the PostgreSQL state store: {detail}",
            path=("state", "dsn"),
            expected="a reachable PostgreSQL server and a user allowed to "
            "create tables in the database",
            fix="check state.dsn, the server and its pg_hba.conf",
        )
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return InputError.single(
        f"cannot open the SQLite state store {config.state.path}: {reason}",
        path=("state", "path"),
        expected="a file in a folder the sidecar's user may write",
        fix="create the folder and give it to that user, or change state.path",
    )


def backoff_delay(failures: int, base: float, ceiling: float) -> float:
    """Exponential backoff with full jitter in [delay/2, delay]."""
    delay = min(ceiling, base * (2 ** max(0, failures - 1)))
    return float(delay / 2 + random.uniform(0, delay / 2))


class Sidecar:
    """All accounts of a config, polled concurrently; one failing account
    never holds up another. `stop` ends the loop after messages in flight."""

    def __init__(
        self,
        config: SidecarConfig,
        store: Store | None = None,
        *,
        accounts: Iterable[str] | None = None,
        metrics: SidecarMetrics | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.config = config
        opened = store is None
        self.store = store or open_store(config)
        self.metrics = metrics or SidecarMetrics()
        self.stop_event = threading.Event()
        self._replicas = 1
        wanted = set(accounts) if accounts is not None else None
        if config.spool_dir is not None:
            try:
                Path(config.spool_dir).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                if opened:
                    self.store.close()
                raise InputError.single(
                    f"cannot create spool_dir {config.spool_dir}: {err.strerror}",
                    path=("spool_dir",),
                    expected="a folder the sidecar's user may write",
                    fix="create it for that user, or change spool_dir",
                ) from err
        quarantine = Quarantine(config.quarantine_dir)
        lease = self._lease_seconds() or 120.0
        self.pollers: dict[str, AccountPoller] = {}
        for account in config.accounts:
            if wanted is not None and account.name not in wanted:
                continue
            poller = AccountPoller(
                account,
                self.store,
                quarantine,
                self.metrics,
                spool_dir=config.spool_dir,
                lease_seconds=lease,
                stop=self.stop_event,
            )
            poller.progress = progress
            poller.share = self._share
            self.pollers[account.name] = poller
        if wanted is not None and wanted - self.pollers.keys():
            raise InputError.single(
                "unknown account: " + ", ".join(sorted(wanted - self.pollers.keys())),
                expected="names from the config's accounts",
            )

    def stop(self) -> None:
        self.stop_event.set()

    def _share(self) -> int | None:
        """This replica's fair share of the accounts, from the live replicas."""
        if not self.store.uses_leases:
            return None
        return -(-len(self.config.accounts) // self._replicas)

    def _lease_seconds(self) -> float:
        state = self.config.state
        return float(state.lease_seconds) if isinstance(state, PostgresState) else 0.0

    def _workers(self) -> int:
        return max(1, min(self.config.concurrency, len(self.pollers)))

    def poll_one(self, name: str, *, seed: bool = False) -> PollResult | SidecarError:
        try:
            return self.pollers[name].poll(seed=seed)
        except SidecarError as err:
            log.warning("poll failed account=%s kind=%s error=%s", name, err.kind, err)
            return err
        except Exception as err:  # noqa: BLE001 - one account never stops others
            log.exception("poll crashed account=%s", name)
            self.metrics.error(name, "internal")
            return SidecarError(f"internal error: {err}")

    def run_once(self, *, seed: bool = False) -> dict[str, PollResult | SidecarError]:
        """One pass over every account, in parallel; results by account."""
        with ThreadPoolExecutor(self._workers(), "sidecar") as pool:
            futures = {
                name: pool.submit(self.poll_one, name, seed=seed)
                for name in self.pollers
            }
            return {name: future.result() for name, future in futures.items()}

    def run_forever(self) -> None:
        """Poll each account every poll_seconds (backoff after failures) until
        `stop`; then wait for the messages in flight."""
        retry = self.config.retry
        due = {name: 0.0 for name in self.pollers}
        running: dict[str, Future[PollResult | SidecarError]] = {}
        lease = self._lease_seconds()
        beat = 0.0
        with ThreadPoolExecutor(self._workers(), "sidecar") as pool:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if now >= beat:
                    beat = now + min(lease / 4, 10.0)
                    try:
                        self._replicas = self.store.heartbeat(lease)
                    except Exception:  # noqa: BLE001 - the database may be back soon
                        log.warning("state heartbeat failed", exc_info=True)
                for name, future in list(running.items()):
                    if not future.done():
                        continue
                    del running[name]
                    due[name] = now + self._next_delay(name, future.result(), retry)
                for name, when in due.items():
                    if name not in running and when <= now:
                        running[name] = pool.submit(self.poll_one, name)
                self.stop_event.wait(0.2)
            log.info("sidecar stopping: waiting for %d polls in flight", len(running))
        try:
            self.store.release_leases()
        except Exception:  # noqa: BLE001 - the leases expire on their own
            log.warning("releasing leases failed; they expire", exc_info=True)

    def _next_delay(
        self, name: str, outcome: PollResult | SidecarError, retry: Retry
    ) -> float:
        interval = float(self.pollers[name].account.poll_seconds)
        if isinstance(outcome, PollResult):
            if outcome.status == PollStatus.LEASED_ELSEWHERE:
                return min(interval, 10.0)
            return interval
        try:
            failures = self.store.account(name).failures
        except Exception:  # noqa: BLE001 - the database may be back soon
            log.warning("state read failed account=%s", name, exc_info=True)
            failures = 1
        delay = backoff_delay(failures, retry.base_seconds, retry.max_seconds)
        if isinstance(outcome, TemporaryError) and outcome.retry_after:
            delay = max(delay, outcome.retry_after)
        log.info(
            "account backoff account=%s failures=%d delay_s=%.1f",
            name,
            failures,
            delay,
        )
        return delay

    def close(self) -> None:
        self.store.close()
