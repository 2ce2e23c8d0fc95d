"""RETR ahead: the next messages arrive while the current one is delivered."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from .message import SpooledMessage
from .pop3 import POP3Client

# (message number, UIDL, spooled message, when its RETR started)
Fetched = tuple[int, str, SpooledMessage, float]

# Messages fetched ahead of the one being delivered.
PREFETCH = 2


class Prefetcher:
    """RETRs the next messages on a thread while the current one is being
    delivered, so the POP3 transfer and the target's overlap.

    At most PREFETCH messages wait, each spooled (mostly on disk). Nothing is
    written to the state store here: a prefetched message that is never
    delivered leaves no trace and is fetched again next time.
    """

    def __init__(
        self,
        client: POP3Client,
        pending: list[tuple[int, str]],
        spool_dir: str | None,
        stop: threading.Event,
    ) -> None:
        self._client = client
        self._pending = pending
        self._spool_dir = spool_dir
        self._stop = stop
        self._halt = threading.Event()
        self._queue: queue.Queue[Fetched | BaseException | None] = queue.Queue(PREFETCH)
        self._thread = threading.Thread(
            target=self._run, name="sidecar-retr", daemon=True
        )
        if pending:
            self._thread.start()

    def _run(self) -> None:
        item: Fetched | BaseException | None = None
        try:
            for number, uidl in self._pending:
                if self._halt.is_set() or self._stop.is_set():
                    break
                started = time.monotonic()
                message = self._client.retr(number, self._spool_dir)
                if not self._put((number, uidl, message, started)):
                    message.close()
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            item = err
        self._put(item)

    def _put(self, item: Fetched | BaseException | None) -> bool:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Fetched]:
        if not self._pending:
            return
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop fetching, wait for the thread, discard what it spooled."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, tuple):
                item[2].close()
