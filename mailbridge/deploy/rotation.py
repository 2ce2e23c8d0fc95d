"""DKIM selector life: when a retiring selector's record may leave the DNS.

A selector moves `published` (record in DNS, not signing) -> `active`
(signing) -> `retiring` (not signing, record kept so mail in transit still
verifies) -> retired (record removed after `retire_after_days`). The state
of one selector is a `KeyState`; `advance` computes the next one when the
spec or the clock moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailbridge.spec.models import SelectorState


def now_utc() -> datetime:
    return datetime.now(UTC)


def to_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class KeyState:
    """Where a selector is: its spec state, since when, and whether retired."""

    state: SelectorState
    since: datetime
    retired: bool = False

    def retire_at(self, retire_after_days: int) -> datetime | None:
        """When a retiring selector's record may go; None for other states."""
        if self.state != SelectorState.RETIRING:
            return None
        return self.since + timedelta(days=retire_after_days)


def start(state: SelectorState, moment: datetime) -> KeyState:
    """The state of a selector seen for the first time."""
    return KeyState(state=state, since=moment)


def advance(
    old: KeyState,
    state: SelectorState,
    retire_after_days: int,
    moment: datetime,
) -> KeyState:
    """The next state when the spec says `state` at `moment`.

    A change of spec state restarts the clock and is never retired at once:
    the run that moves a selector to `retiring` (and switches signing to
    another one) keeps its record, whatever the window. A later run retires
    it once the window has passed.
    """
    if state != old.state:
        return KeyState(state=state, since=moment)
    if old.retired:
        return old
    retire_at = old.retire_at(retire_after_days)
    if retire_at is not None and moment > retire_at:
        return KeyState(state=state, since=old.since, retired=True)
    return old
