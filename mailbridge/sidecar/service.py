"""The long-running service: schedules every account's polls on threads."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .account import AccountPoller, PollResult, PollStatus, ProgressCallback
from .config import PostgresState, Retry, SidecarConfig
from .errors import SidecarError, TemporaryError
from .metrics import SidecarMetrics
from .quarantine import Quarantine
from .state import PostgresStore, SQLiteStore, Store

log = logging.getLogger(__name__)


def open_store(config: SidecarConfig) -> Store:
    """The configured state store, with its tables in place."""
    store: Store
    if isinstance(config.state, PostgresState):
        store = PostgresStore(config.state.dsn.read())
    else:
        store = SQLiteStore(config.state.path)
    store.migrate()
    return store


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
        self.store = store or open_store(config)
        self.metrics = metrics or SidecarMetrics()
        self.stop_event = threading.Event()
        self._replicas = 1
        wanted = set(accounts) if accounts is not None else None
        if config.spool_dir is not None:
            Path(config.spool_dir).mkdir(parents=True, exist_ok=True)
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
            from mailbridge.errors import InputError

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
        self.store.release_leases()

    def _next_delay(
        self, name: str, outcome: PollResult | SidecarError, retry: Retry
    ) -> float:
        interval = float(self.pollers[name].account.poll_seconds)
        if isinstance(outcome, PollResult):
            if outcome.status == PollStatus.LEASED_ELSEWHERE:
                return min(interval, 10.0)
            return interval
        failures = self.store.account(name).failures
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
