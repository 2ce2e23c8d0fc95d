"""Prometheus metrics of the sidecar, on its own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start_http_server


class SidecarMetrics:
    """Messages and bytes by outcome, errors by kind, poll latency, and the
    age of the oldest message not yet delivered, all per account."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "mailbridge_sidecar_messages",
            "Messages handled, by outcome.",
            ["account", "outcome"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "mailbridge_sidecar_bytes",
            "Message bytes handled, by outcome.",
            ["account", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "mailbridge_sidecar_errors",
            "Failures, by kind (network, auth, temporary, permanent, tls...).",
            ["account", "kind"],
            registry=self.registry,
        )
        self.poll_seconds = Histogram(
            "mailbridge_sidecar_poll_seconds",
            "Duration of one poll of an account.",
            ["account"],
            buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
            registry=self.registry,
        )
        self.oldest_undelivered = Gauge(
            "mailbridge_sidecar_oldest_undelivered_seconds",
            "Age of the oldest message seen but not yet delivered (0: none).",
            ["account"],
            registry=self.registry,
        )
        self.paused = Gauge(
            "mailbridge_sidecar_account_paused",
            "1 while an account is paused (for example after a UIDL reset).",
            ["account"],
            registry=self.registry,
        )

    def message(self, account: str, outcome: str, size: int) -> None:
        self.messages.labels(account, outcome).inc()
        self.bytes.labels(account, outcome).inc(size)

    def error(self, account: str, kind: str) -> None:
        self.errors.labels(account, kind).inc()

    def serve(self, bind: str, port: int) -> None:
        """Expose /metrics over HTTP in a daemon thread."""
        _start_http_server(port, addr=bind, registry=self.registry)
