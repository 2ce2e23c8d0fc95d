"""`mailbridge sidecar`: run the POP3 fetch and relay service, show its state."""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from mailbridge.cli.common import emit_json, json_option

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The sidecar config file (see docs/sidecar.md).",
)

EXIT_FINDINGS = 1


@click.group("sidecar")
def command() -> None:
    """Fetch POP3 mailboxes and deliver their mail into Gmail."""


@command.command("run")
@config_option
@click.option("--once", is_flag=True, help="One pass over every account, then exit.")
@click.option(
    "--seed",
    is_flag=True,
    help="Record every message present as already seen, deliver nothing "
    "(also lifts a pause after a UIDL reset).",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="Only this account (repeatable).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bars.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def run(
    config_path: Path,
    once: bool,
    seed: bool,
    accounts: tuple[str, ...],
    progress: bool | None,
    quiet: bool,
) -> None:
    """Poll every account and deliver what is new (until SIGTERM)."""
    from mailbridge.sidecar.config import load_config
    from mailbridge.sidecar.service import Sidecar

    logger = logging.getLogger("mailbridge")
    if quiet:
        logger.setLevel(logging.WARNING)
    elif logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    config = load_config(config_path)
    show_progress = sys.stderr.isatty() if progress is None else progress
    bars = _ProgressBars() if show_progress else None
    sidecar = Sidecar(
        config,
        accounts=accounts or None,
        progress=bars.update if bars else None,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        logging.getLogger(__name__).info(
            "sidecar signal=%s: finishing messages in flight", signum
        )
        sidecar.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    metrics = config.metrics
    if metrics.enabled and metrics.port is not None and not once:
        try:
            sidecar.metrics.serve(metrics.bind, metrics.port)
        except OSError as err:
            sidecar.close()
            raise click.ClickException(
                f"cannot serve metrics on {metrics.bind}:{metrics.port}: "
                f"{err.strerror}; change metrics.port in the config, or set "
                "metrics.enabled to false"
            ) from err
    try:
        if bars is not None:
            bars.start()
        if once or seed:
            results = sidecar.run_once(seed=seed)
        else:
            sidecar.run_forever()
            return
    finally:
        if bars is not None:
            bars.stop()
        sidecar.close()
    failed = _report(results)
    if failed:
        sys.exit(EXIT_FINDINGS)


def _report(results: dict[str, Any]) -> bool:
    from mailbridge.sidecar.account import PollResult, PollStatus

    failed = False
    for name, outcome in sorted(results.items()):
        if isinstance(outcome, PollResult):
            ok = outcome.status in (PollStatus.OK, PollStatus.LEASED_ELSEWHERE)
            failed = failed or not ok
            detail = (
                f"listed={outcome.listed} delivered={outcome.delivered} "
                f"duplicates={outcome.duplicates} quarantined={outcome.quarantined} "
                f"deleted={outcome.deleted} seeded={outcome.seeded}"
            )
            click.echo(f"{outcome.status:<16} {name}  {detail}", err=True)
        else:
            failed = True
            click.echo(f"{'error':<16} {name}  {outcome}", err=True)
    return failed


class _ProgressBars:
    """One bar per account whose first sync is large (20 or more messages)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import Progress

        # Bars go to stderr with the logs; stdout stays for results.
        self._progress = Progress(console=Console(stderr=True), transient=False)
        self._tasks: dict[str, Any] = {}

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def update(self, account: str, done: int, total: int) -> None:
        if total < 20:
            return
        task = self._tasks.get(account)
        if task is None:
            task = self._progress.add_task(account, total=total)
            self._tasks[account] = task
        self._progress.update(task, completed=done)


@command.command("status")
@config_option
@json_option
def status(config_path: Path, as_json: bool) -> None:
    """Each account's state: paused, failing, counts, oldest pending message."""
    from mailbridge.sidecar.config import load_config
    from mailbridge.sidecar.service import open_store

    config = load_config(config_path)
    store = open_store(config)
    try:
        summaries = {s.account.name: s for s in store.summary()}
    finally:
        store.close()
    now = time.time()
    rows = []
    for account in config.accounts:
        summary = summaries.get(account.name)
        row: dict[str, Any] = {"account": account.name, "via": str(account.via)}
        if summary is None:
            row.update(state="never polled", counts={}, last_poll=None)
        else:
            info = summary.account
            state = "paused" if info.paused else "failing" if info.failures else "ok"
            if info.last_poll is None:
                state = "never polled"
            row.update(
                state=state,
                paused=info.paused,
                last_poll=info.last_poll,
                last_error=info.last_error,
                failures=info.failures,
                counts=summary.counts,
                oldest_pending_seconds=(
                    now - summary.oldest_pending if summary.oldest_pending else None
                ),
                lease_owner=info.lease_owner,
            )
        rows.append(row)
    if as_json:
        emit_json(rows)
        return
    _print_table(rows, now)


def _print_table(rows: list[dict[str, Any]], now: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mailbridge sidecar")
    for column in (
        "account",
        "state",
        "last poll",
        "delivered",
        "pending",
        "quarantined",
        "oldest pending",
        "note",
    ):
        table.add_column(column)
    for row in rows:
        counts = row.get("counts", {})
        delivered = sum(counts.get(k, 0) for k in ("delivered", "deleted"))
        pending = sum(counts.get(k, 0) for k in ("seen", "spooled", "delivering"))
        last = row.get("last_poll")
        oldest = row.get("oldest_pending_seconds")
        note = row.get("paused") or row.get("last_error") or ""
        table.add_row(
            row["account"],
            row["state"],
            f"{now - last:.0f}s ago" if last else "-",
            str(delivered),
            str(pending),
            str(counts.get("quarantined", 0)),
            f"{oldest:.0f}s" if oldest else "-",
            note,
        )
    Console().print(table)
