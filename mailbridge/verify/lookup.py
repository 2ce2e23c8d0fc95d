"""DNS queries that never confuse "no answer yet" with "no record"."""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename

from mailbridge.errors import InputError

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32


class Outcome(enum.StrEnum):
    ANSWER = "answer"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    TIMEOUT = "timeout"
    FAILED = "failed"

    @property
    def is_void(self) -> bool:
        """No record there, per RFC 7208 section 4.6.4 ("void lookup")."""
        return self in (Outcome.NXDOMAIN, Outcome.NODATA)

    @property
    def is_unknown(self) -> bool:
        """No usable answer: the record may or may not exist."""
        return self in (Outcome.TIMEOUT, Outcome.FAILED)


@dataclass(frozen=True)
class Lookup:
    """The answer to one query: its outcome and the records, as text."""

    name: str
    rdtype: str
    outcome: Outcome
    values: tuple[str, ...] = ()
    error: str | None = None
    rdata: tuple[object, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        """Short text of what came back, for a finding's `found`."""
        if self.outcome == Outcome.ANSWER:
            return "; ".join(self.values)
        if self.outcome == Outcome.NXDOMAIN:
            return f"{self.name} does not exist (NXDOMAIN)"
        if self.outcome == Outcome.NODATA:
            return f"no {self.rdtype} record at {self.name}"
        return f"no answer for {self.name} {self.rdtype}: {self.error}"


def txt_text(rdata: object) -> str:
    """A TXT record's strings joined into one, as RFC 7208 section 3.3 says."""
    strings: tuple[bytes, ...] = rdata.strings  # type: ignore[attr-defined]
    return b"".join(strings).decode("utf-8", errors="replace")


class Resolver:
    """An asyncio resolver; every query ends as a `Lookup`, never raises.

    Queries go to `address` (ip, port) when given, else the system resolver.
    """

    def __init__(self, address: tuple[str, int] | None, timeout: float) -> None:
        if address is None:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration as err:
                raise InputError.single(
                    f"no DNS resolver configured on this machine: {err}",
                    path=("--resolver",),
                    expected="a nameserver line in /etc/resolv.conf",
                    fix="pass --resolver IP[:PORT]",
                ) from err
        else:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [address[0]]
            self._resolver.port = address[1]
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout * 2
        self._answers: dict[tuple[str, str], asyncio.Future[Lookup]] = {}
        # Every query in flight holds a socket; a few hundred at once only
        # add load on both ends (and lost UDP replies, then retries).
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.queries = 0

    async def query(self, name: str, rdtype: str) -> Lookup:
        """One answer per (name, type) for the resolver's life.

        The checks of one domain (and the includes that many domains share)
        ask the same question several times, often at the same moment: the
        first asks the server, the others wait for its answer.
        """
        key = (name.lower().rstrip("."), rdtype)
        pending = self._answers.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._query(name, rdtype))
            self._answers[key] = pending
        return await asyncio.shield(pending)

    async def _query(self, name: str, rdtype: str) -> Lookup:
        self.queries += 1
        try:
            async with self._in_flight:
                answer = await self._resolver.resolve(
                    name, rdtype, raise_on_no_answer=False, search=False
                )
        except dns.resolver.NXDOMAIN:
            return Lookup(name, rdtype, Outcome.NXDOMAIN)
        except dns.resolver.LifetimeTimeout as err:
            log.debug("lookup timeout name=%s type=%s", name, rdtype)
            return Lookup(name, rdtype, Outcome.TIMEOUT, error=_short(err))
        except dns.resolver.NoNameservers as err:
            log.debug("lookup failed name=%s type=%s err=%s", name, rdtype, err)
            return Lookup(name, rdtype, Outcome.FAILED, error=_short(err))
        except (dns.exception.DNSException, OSError) as err:
            log.debug("lookup error name=%s type=%s err=%s", name, rdtype, err)
            return Lookup(name, rdtype, Outcome.FAILED, error=_short(err))
        if answer.rrset is None:
            return Lookup(name, rdtype, Outcome.NODATA)
        rdata = tuple(answer.rrset)
        if rdtype == "TXT":
            values = tuple(sorted(txt_text(r) for r in rdata))
        else:
            values = tuple(sorted(r.to_text() for r in rdata))
        return Lookup(name, rdtype, Outcome.ANSWER, values, rdata=rdata)

    async def addresses(self, name: str) -> tuple[Lookup, Lookup]:
        """The A and AAAA lookups of `name`."""
        return await self.query(name, "A"), await self.query(name, "AAAA")

    async def ptr(self, address: str) -> Lookup:
        return await self.query(dns.reversename.from_address(address).to_text(), "PTR")


def _short(err: Exception) -> str:
    if isinstance(err, dns.resolver.LifetimeTimeout):
        return "timed out"
    if isinstance(err, dns.resolver.NoNameservers):
        return "the server failed or refused (SERVFAIL/REFUSED)"
    return str(err) or type(err).__name__


def absolute(name: str) -> str:
    """`mx1.example.com.` and `mx1.example.com` compare as the same name."""
    return dns.name.from_text(name).to_text().lower()
