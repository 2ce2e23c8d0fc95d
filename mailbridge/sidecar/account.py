"""One poll of one account: list, dedupe, deliver, confirm, delete."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from mailbridge.errors import InputError

from .config import Account
from .errors import ConfigError, PermanentError, SidecarError, TemporaryError
from .message import SpooledMessage
from .metrics import SidecarMetrics
from .oauth import TokenSource
from .pop3 import POP3Client
from .prefetch import Prefetcher
from .quarantine import Quarantine
from .state import (
    CONFIRMED,
    OFF_SERVER,
    PENDING,
    MessageRow,
    MessageState,
    Store,
)
from .targets import Envelope, Target, make_target

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]


# A UIDL reset is declared when at least this many known messages vanished
# and as many unknown ones appeared at once (and at least half on each side).
RESET_MIN = 2
# A message tried this many times is "stuck": it is tried after the others,
# and when the target turns it away again (a reply about this message, not
# a broken connection or a refused login) the poll goes on without it.
STUCK_ATTEMPTS = 3


class PollStatus(enum.StrEnum):
    OK = "ok"
    PAUSED = "paused"
    LEASED_ELSEWHERE = "leased-elsewhere"
    RESET = "uidl-reset"
    STOPPED = "stopped"


@dataclass
class PollResult:
    account: str
    status: PollStatus = PollStatus.OK
    listed: int = 0
    delivered: int = 0
    duplicates: int = 0
    quarantined: int = 0
    deleted: int = 0
    seeded: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class AccountPoller:
    """Polls one account; never runs twice at once for the same account.

    The order of writes makes a crash at any moment safe: a message is
    marked `delivering` (with its dedupe key) before the target is contacted,
    `delivered` only after the target confirmed, and it is deleted from the
    POP3 server only after that mark is committed.
    """

    def __init__(
        self,
        account: Account,
        store: Store,
        quarantine: Quarantine,
        metrics: SidecarMetrics,
        *,
        spool_dir: str | None = None,
        lease_seconds: float = 120.0,
        stop: threading.Event | None = None,
        target: Target | None = None,
    ) -> None:
        self.account = account
        self.name = account.name
        self._store = store
        self._quarantine = quarantine
        self._metrics = metrics
        self._spool_dir = spool_dir
        self._lease_seconds = lease_seconds
        self._stop = stop or threading.Event()
        self._target = target or make_target(account)
        pop3 = account.pop3
        self._tokens = TokenSource(pop3.oauth2) if pop3.oauth2 else None
        self.progress: ProgressCallback | None = None
        # How many accounts this replica may lease (PostgreSQL); None: all.
        self.share: Callable[[], int | None] = lambda: None

    # -- the poll -------------------------------------------------------------

    def poll(self, *, seed: bool = False) -> PollResult:
        """One pass over the mailbox; SidecarError means try again later."""
        result = PollResult(self.name)
        started = time.monotonic()
        row = self._store.account(self.name)
        if row.paused and not seed:
            log.warning("account paused account=%s reason=%s", self.name, row.paused)
            self._metrics.paused.labels(self.name).set(1)
            result.status = PollStatus.PAUSED
            return result
        if not self._store.acquire_lease(self.name, self._lease_seconds, self.share()):
            log.debug("account leased elsewhere account=%s", self.name)
            result.status = PollStatus.LEASED_ELSEWHERE
            return result
        try:
            with self._connect() as client:
                self._session(client, result, seed)
        except SidecarError as err:
            self._metrics.error(self.name, err.kind)
            self._store.record_poll(self.name, str(err))
            raise
        except InputError as err:
            error = ConfigError(" / ".join(p.message for p in err.problems))
            self._metrics.error(self.name, error.kind)
            self._store.record_poll(self.name, str(error))
            raise error from err
        finally:
            self._target.close()
            self._metrics.poll_seconds.labels(self.name).observe(
                time.monotonic() - started
            )
            self._update_age()
        if result.status in (PollStatus.OK, PollStatus.STOPPED):
            self._store.record_poll(self.name, None)
        return result

    def _connect(self) -> POP3Client:
        pop3 = self.account.pop3
        client = POP3Client(
            pop3.host,
            pop3.effective_port,
            tls=pop3.tls,
            ca_file=pop3.ca_file,
            fingerprint=pop3.fingerprint,
            timeout=pop3.timeout,
        )
        client.connect()
        try:
            self._login(client)
        except BaseException:
            client.close()
            raise
        return client

    def _login(self, client: POP3Client) -> None:
        pop3 = self.account.pop3
        method = pop3.effective_auth
        if method == "xoauth2":
            assert self._tokens is not None
            try:
                client.login_xoauth2(pop3.username, self._tokens.token())
            except SidecarError:
                self._tokens.invalidate()
                raise
            return
        assert pop3.password is not None
        if method == "plain":
            client.login_plain(pop3.username, pop3.password.read())
        else:
            client.login_user(pop3.username, pop3.password.read())

    def _session(self, client: POP3Client, result: PollResult, seed: bool) -> None:
        listing = client.uidl()
        known = self._store.messages(self.name)
        result.listed = len(listing)

        if seed:
            fresh = [u for u in listing if u not in known]
            self._store.mark_many(self.name, fresh, MessageState.SEEDED)
            self._store.resume(self.name)
            self._metrics.paused.labels(self.name).set(0)
            result.seeded = len(fresh)
            log.info("account seeded account=%s messages=%d", self.name, len(fresh))
            client.quit()
            return
        now = time.time()
        if self._is_reset(listing, known, now, client.list_sizes):
            result.status = PollStatus.RESET
            client.quit()
            return
        self._metrics.paused.labels(self.name).set(0)
        self._note_vanished(listing, known, now)

        # New messages, those not delivered yet, and any the server lists
        # again after they vanished or were deleted (a UIDL it reused, or a
        # mailbox restored): delivering those checks the dedupe record first.
        pending = [
            (number, uidl)
            for uidl, number in sorted(listing.items(), key=lambda item: item[1])
            if uidl not in known or known[uidl].state in PENDING | OFF_SERVER
        ]
        # Messages the target keeps deferring go last, so they never hold up
        # the mail behind them (sorted() keeps the order within each group).
        pending.sort(key=lambda item: self._stuck(known.get(item[1])))
        deletions: list[tuple[int, str]] = []
        for uidl, number in listing.items():
            row = known.get(uidl)
            if row is not None and self._deletion_due(row, now):
                deletions.append((number, uidl))
        fetcher = Prefetcher(client, pending, self._spool_dir, self._stop)
        try:
            for done, (number, uidl, message, started) in enumerate(fetcher):
                with message:
                    if self._stop.is_set():
                        result.status = PollStatus.STOPPED
                        break
                    self._renew_lease()
                    row = known.get(uidl)
                    try:
                        outcome = self._deliver(message, uidl, row, started)
                    except TemporaryError as err:
                        # A stuck message turned away again is passed over;
                        # any other failure ends the poll, as the target or
                        # the network is then in trouble, not this message.
                        if not (err.refused and self._stuck(row)):
                            raise
                        self._pass_over(uidl, row, err)
                        outcome = "deferred"
                result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
                if outcome in ("delivered", "duplicate"):
                    if outcome == "delivered":
                        result.delivered += 1
                    else:
                        result.duplicates += 1
                    if not self.account.keep_on_server:
                        deletions.append((number, uidl))
                elif outcome == "quarantined":
                    result.quarantined += 1
                if self.progress is not None:
                    self.progress(self.name, done + 1, len(pending))
        finally:
            fetcher.close()
            # Whatever went wrong with a message, deletions of messages that
            # are confirmed delivered still get committed if the session lives.
            self._delete(client, deletions, result)

    def _delete(
        self, client: POP3Client, deletions: list[tuple[int, str]], result: PollResult
    ) -> None:
        try:
            if deletions:
                self._store.flush()
            for number, _ in deletions:
                client.dele(number)
            client.quit()
        except SidecarError:
            log.warning(
                "pop3 deletions not committed account=%s count=%d",
                self.name,
                len(deletions),
            )
            client.close()
            return
        self._store.mark_many(
            self.name, [u for _, u in deletions], MessageState.DELETED
        )
        result.deleted = len(deletions)
        for _, uidl in deletions:
            log.info("message deleted account=%s uidl=%s", self.name, uidl)

    @staticmethod
    def _stuck(row: MessageRow | None) -> bool:
        """Whether this message was tried STUCK_ATTEMPTS times already."""
        return row is not None and row.attempts >= STUCK_ATTEMPTS

    def _pass_over(self, uidl: str, row: MessageRow | None, err: SidecarError) -> None:
        """A stuck message the target turned away again stays spooled (and on
        the POP3 server) for the next poll; the mail behind it goes on."""
        self._metrics.error(self.name, err.kind)
        log.warning(
            "message deferred again account=%s uidl=%s attempts=%d: %s",
            self.name,
            uidl,
            (row.attempts if row else 0) + 1,
            err,
        )

    def _deletion_due(self, row: MessageRow, now: float) -> bool:
        if row.state not in CONFIRMED:
            return False
        if not self.account.keep_on_server:
            return True
        days = self.account.keep_days
        if days is None or row.delivered_at is None:
            return False
        return row.delivered_at + days * 86400 <= now

    def _note_vanished(
        self, listing: dict[str, int], known: dict[str, MessageRow], now: float
    ) -> None:
        """Record the messages no longer listed: those this sidecar was to
        delete are taken as deleted (a QUIT whose reply was lost commits the
        DELE all the same); any other is gone, with a warning when it had not
        been delivered yet (another client removed it from the server)."""
        deleted, gone = [], []
        for uidl, row in known.items():
            if uidl in listing or row.state in OFF_SERVER:
                continue
            if self._deletion_due(row, now):
                deleted.append(uidl)
                continue
            gone.append(uidl)
            if row.state in PENDING:
                log.warning(
                    "message vanished before delivery account=%s uidl=%s "
                    "message_id=%s: it left the POP3 server by other means",
                    self.name,
                    uidl,
                    row.message_id,
                )
        self._store.mark_many(self.name, deleted, MessageState.DELETED)
        self._store.mark_many(self.name, gone, MessageState.GONE)

    def _is_reset(
        self,
        listing: dict[str, int],
        known: dict[str, MessageRow],
        now: float,
        sizes: Callable[[], dict[int, int]],
    ) -> bool:
        """Most UIDLs changed at once: a server migration or index rebuild.

        Re-importing the mailbox would flood the inbox, so the account is
        paused until a person checks and runs `--seed` for it. Messages that
        were due for deletion are not expected on the server any more. A
        reset renames messages, it does not replace them: when the sizes
        (POP3 LIST) show that the new UIDLs are other messages (kept mail
        deleted in webmail while new mail came), it is no reset.
        """
        expected = {
            u
            for u, row in known.items()
            if row.state not in OFF_SERVER and not self._deletion_due(row, now)
        }
        if not expected or not listing:
            return False
        vanished = expected - listing.keys()
        fresh = listing.keys() - known.keys()
        missing, unknown = len(vanished), len(fresh)
        if missing < max(RESET_MIN, len(expected) / 2):
            return False
        if unknown < max(RESET_MIN, len(listing) / 2):
            return False
        if not _could_be_renamed(
            [known[u].size for u in vanished], [listing[u] for u in fresh], sizes
        ):
            log.info(
                "uidls replaced, not renamed account=%s vanished=%d new=%d",
                self.name,
                missing,
                unknown,
            )
            return False
        reason = (
            f"UIDL reset suspected: {missing} of {len(expected)} known messages "
            f"vanished and {unknown} of {len(listing)} are new at once; check the "
            f"mailbox, then run `mailbridge sidecar run --once --seed "
            f"--account {self.name}`"
        )
        self._store.pause(self.name, reason)
        self._metrics.paused.labels(self.name).set(1)
        self._metrics.error(self.name, "uidl-reset")
        log.error("account paused account=%s reason=%s", self.name, reason)
        return True

    # -- one message ------------------------------------------------------------

    def _deliver(
        self,
        message: SpooledMessage,
        uidl: str,
        row: MessageRow | None,
        started: float,
    ) -> str:
        with self._store.holding(self.account.target_key, message.dedupe_key):
            return self._deliver_held(message, uidl, row, started)

    def _deliver_held(
        self,
        message: SpooledMessage,
        uidl: str,
        row: MessageRow | None,
        started: float,
    ) -> str:
        key = message.dedupe_key
        message_id = message.message_id
        # The row as it is now, not as the poll began: another replica may
        # have delivered this message meanwhile (its lease ran out mid-poll).
        row = self._store.message(self.name, uidl) or row
        was_delivering = row is not None and row.state == MessageState.DELIVERING
        log.debug(
            "message fetched account=%s uidl=%s message_id=%s size=%d",
            self.name,
            uidl,
            message_id,
            message.size,
        )
        target_key = self.account.target_key

        prior = self._store.find_delivered(target_key, key)
        if prior == (self.name, uidl):
            return self._delivered_before(message, uidl)
        if prior is not None:
            return self._confirm(
                message,
                uidl,
                key,
                None,
                MessageState.DUPLICATE,
                started,
                f"already delivered by account={prior[0]} uidl={prior[1]}",
            )
        probeable = self._target.can_probe and (
            message_id is not None or self._target.probes_content
        )
        # Another account's delivery of the same message that was cut off
        # (a crash) may have reached this inbox: look before sending.
        elsewhere = (
            None
            if was_delivering
            else self._store.delivering_elsewhere(self.name, uidl, key)
        )
        if probeable and (was_delivering or self.account.backup_of or elsewhere):
            found = self._target.probe(message)
            if found is not None:
                state = (
                    MessageState.DELIVERED if was_delivering else MessageState.DUPLICATE
                )
                if was_delivering:
                    why = "found at the target after an interrupted delivery"
                elif elsewhere:
                    why = (
                        f"found at the target after account={elsewhere[0]} "
                        f"uidl={elsewhere[1]} was cut off delivering it"
                    )
                else:
                    why = f"arrived by forwarding from {self.account.backup_of}"
                return self._confirm(message, uidl, key, found, state, started, why)
        elif was_delivering:
            log.warning(
                "delivery ambiguous account=%s uidl=%s message_id=%s: an earlier "
                "attempt was interrupted and %s cannot be searched for this "
                "message; sending again",
                self.name,
                uidl,
                message_id,
                self.account.via,
            )

        # Written before the target is contacted: after a crash, this row
        # says the target may hold the message, and under which key.
        self._store.mark(
            self.name,
            uidl,
            MessageState.DELIVERING,
            dedupe_key=key,
            message_id=message_id,
            size=message.size,
            attempt=True,
        )
        envelope = Envelope(self.account.deliver_to, _return_path(message))
        try:
            target_id = self._target.deliver(message, envelope)
        except PermanentError as err:
            return self._quarantine_message(message, uidl, str(err))
        except SidecarError as err:
            if err.not_delivered:
                self._store.mark(self.name, uidl, MessageState.SPOOLED)
            raise
        return self._confirm(
            message, uidl, key, target_id, MessageState.DELIVERED, started, None
        )

    def _delivered_before(self, message: SpooledMessage, uidl: str) -> str:
        """This very UIDL already brought this message to the target (listed
        again after its deletion, or delivered by another replica): nothing
        is sent, and the record says delivered again so deletion can follow."""
        self._store.mark(self.name, uidl, MessageState.DELIVERED)
        self._metrics.message(self.name, "duplicate", message.size)
        log.info(
            "message already delivered account=%s uidl=%s message_id=%s",
            self.name,
            uidl,
            message.message_id,
        )
        return "duplicate"

    def _confirm(
        self,
        message: SpooledMessage,
        uidl: str,
        key: str,
        target_id: str | None,
        state: MessageState,
        started: float,
        why: str | None,
    ) -> str:
        self._store.record_delivery(
            self.name,
            uidl,
            target=self.account.target_key,
            dedupe_key=key,
            target_id=target_id,
            state=state,
            message_id=message.message_id,
            size=message.size,
        )
        outcome = "delivered" if state == MessageState.DELIVERED else "duplicate"
        self._metrics.message(self.name, outcome, message.size)
        log.info(
            "message %s account=%s uidl=%s message_id=%s size=%d latency_ms=%d "
            "via=%s target_id=%s%s",
            outcome,
            self.name,
            uidl,
            message.message_id,
            message.size,
            (time.monotonic() - started) * 1000,
            self.account.via,
            target_id,
            f" note={why!r}" if why else "",
        )
        return outcome

    def _quarantine_message(
        self, message: SpooledMessage, uidl: str, reason: str
    ) -> str:
        try:
            path = self._quarantine.put(self.name, uidl, message, reason)
        except OSError as err:
            # The target refused it, so it is not delivered; it stays on the
            # POP3 server and is tried again once the folder can be written.
            self._store.mark(self.name, uidl, MessageState.SPOOLED)
            folder = self._quarantine.folder
            raise TemporaryError(
                f"quarantine folder cannot take message uidl={uidl} ({reason}): "
                f"{err}; free space or fix the permissions of {folder}",
                not_delivered=True,
            ) from err
        self._store.mark(self.name, uidl, MessageState.QUARANTINED, reason=reason)
        self._metrics.message(self.name, "quarantined", message.size)
        self._metrics.error(self.name, "permanent")
        log.error(
            "message quarantined account=%s uidl=%s message_id=%s size=%d path=%s "
            "reason=%s",
            self.name,
            uidl,
            message.message_id,
            message.size,
            path,
            reason,
        )
        return "quarantined"

    def _renew_lease(self) -> None:
        if not self._store.acquire_lease(self.name, self._lease_seconds):
            raise _LeaseLost(f"account={self.name} lease taken by another replica")

    def _update_age(self) -> None:
        oldest = self._store.oldest_pending(self.name)
        age = time.time() - oldest if oldest is not None else 0.0
        self._metrics.oldest_undelivered.labels(self.name).set(age)


class _LeaseLost(SidecarError):
    kind = "lease-lost"


def _could_be_renamed(
    old_sizes: list[int | None],
    new_numbers: list[int],
    sizes: Callable[[], dict[int, int]],
) -> bool:
    """Whether the new messages could be the vanished ones under new UIDLs:
    at least half of the smaller side matches in size. Without sizes for
    most of the vanished (seeded rows have none) it cannot be ruled out."""
    old = Counter(size for size in old_sizes if size is not None)
    if sum(old.values()) < len(old_sizes) / 2:
        return True
    listed = sizes()
    new = Counter(listed[n] for n in new_numbers if n in listed)
    matched = sum((old & new).values())
    return matched >= min(sum(old.values()), len(new_numbers)) / 2


def _return_path(message: SpooledMessage) -> str:
    """The original envelope sender, from Return-Path (RFC 5322 3.6.7)."""
    value = message.header_value("Return-Path") or ""
    value = value.strip().strip("<>").strip()
    return value if "@" in value else ""
