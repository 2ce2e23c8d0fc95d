"""A TCP proxy on loopback that cuts connections part-way through."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    """Forwards 127.0.0.1:port to `upstream`; each new connection is cut, with
    probability `cut_ratio`, after a random number of bytes in `direction`
    ("down": server to client, e.g. inside RETR; "up": client to server,
    e.g. inside DATA or an APPEND literal)."""

    upstream: int
    direction: str
    cut_ratio: float
    min_bytes: int
    max_bytes: int
    rng: random.Random = field(default_factory=random.Random)
    cuts: int = 0
    connections: int = 0
    enabled: bool = True
    _listener: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                cut = self.enabled and self.rng.random() < self.cut_ratio
                limit = (
                    self.rng.randint(self.min_bytes, self.max_bytes) if cut else None
                )
            down = limit if self.direction == "down" else None
            up = limit if self.direction == "up" else None
            pair = (client, server)
            threading.Thread(
                target=self._pump, args=(server, client, down, pair), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(client, server, up, pair), daemon=True
            ).start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        limit: int | None,
        pair: tuple[socket.socket, socket.socket],
    ) -> None:
        sent = 0
        # A broken connection is the point of this proxy: it ends the pump.
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    sink.sendall(data[: limit - sent])
                    with self._lock:
                        self.cuts += 1
                    break
                sink.sendall(data)
                sent += len(data)
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
