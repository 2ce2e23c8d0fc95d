"""Rules about a spec as a whole, beyond what each field checks alone."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from mailbridge.errors import FieldPath, Problem
from mailbridge.spec.models import (
    DkimAlgorithm,
    DomainSpec,
    IMAPTarget,
    TLSMode,
    Via,
)

MIN_RSA_BITS = 2048


def check_spec(spec: DomainSpec) -> list[Problem]:
    """Every cross-field problem of one spec, each with its field path."""
    return [
        *_ownership(spec),
        *_duplicates(spec),
        *_mx_hosts(spec),
        *_dkim(spec),
        *_fetch(spec),
        *_names(spec),
    ]


def _ownership(spec: DomainSpec) -> Iterator[Problem]:
    fix = f"use an address @{spec.domain}, or move this entry to its domain's spec"
    for i, box in enumerate(spec.mailboxes):
        if not spec.owns(box.address):
            yield _foreign(spec, box.address, ("mailboxes", i, "address"), fix)
    for i, fwd in enumerate(spec.forwarders):
        if not spec.owns(fwd.address):
            yield _foreign(spec, fwd.address, ("forwarders", i, "address"), fix)


def _foreign(spec: DomainSpec, address: str, path: FieldPath, fix: str) -> Problem:
    return Problem(
        f"{address} is not an address of {spec.domain}",
        path=path,
        found=address,
        expected=f"an address @{spec.domain}",
        fix=fix,
    )


def _duplicates(spec: DomainSpec) -> Iterator[Problem]:
    groups: list[tuple[str, list[str]]] = [
        ("mailboxes", [m.address for m in spec.mailboxes]),
        ("forwarders", [f.address for f in spec.forwarders]),
        ("fetch", [j.name for j in spec.fetch]),
    ]
    if spec.dkim:
        groups.append(("dkim.selectors", [s.name for s in spec.dkim.selectors]))
    for section, values in groups:
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value not in seen:
                seen.add(value)
                continue
            key = "name" if section in ("fetch", "dkim.selectors") else "address"
            parts: FieldPath = (*section.split("."), i, key)
            yield Problem(
                f"{value} is defined twice in {section}",
                path=parts,
                found=f"a second entry for {value}",
                expected="each entry once",
                fix="merge the two entries into one",
            )


def _mx_hosts(spec: DomainSpec) -> Iterator[Problem]:
    for i, mx in enumerate(spec.mx):
        if mx.host != spec.mail_host.hostname and not mx.external:
            yield Problem(
                f"MX host {mx.host} is neither the mail host nor declared external",
                path=("mx", i, "host"),
                found=mx.host,
                expected=f"{spec.mail_host.hostname} or an entry with external: true",
                fix="correct the name, or add `external: true` for a backup MX "
                "run by someone else",
            )


def _dkim(spec: DomainSpec) -> Iterator[Problem]:
    if spec.dkim is None:
        return
    for i, sel in enumerate(spec.dkim.selectors):
        if sel.algorithm == DkimAlgorithm.RSA and sel.bits < MIN_RSA_BITS:
            yield Problem(
                f"DKIM key {sel.name} is RSA {sel.bits} bits, too weak",
                path=("dkim", "selectors", i, "bits"),
                found=str(sel.bits),
                expected=f"at least {MIN_RSA_BITS} (RFC 8301)",
                fix="use bits: 2048 with a new selector name",
            )
        if sel.algorithm == DkimAlgorithm.RSA and sel.bits > 4096:
            yield Problem(
                f"DKIM key {sel.name} is RSA {sel.bits} bits; verifiers may "
                "reject keys over 4096 bits",
                path=("dkim", "selectors", i, "bits"),
                found=str(sel.bits),
                expected="2048 to 4096",
            )
    if not any(s.state == "active" for s in spec.dkim.selectors):
        yield Problem(
            "no DKIM selector is active, so no mail would be signed",
            path=("dkim", "selectors"),
            expected="one selector with state: active",
            fix="set state: active on the selector that should sign",
        )


def _fetch(spec: DomainSpec) -> Iterator[Problem]:
    forwarders = {f.address for f in spec.forwarders}
    for i, job in enumerate(spec.fetch):
        base: FieldPath = ("fetch", i)
        pop3 = job.pop3
        if pop3.tls == TLSMode.NONE and not pop3.insecure:
            yield Problem(
                f"fetch job {job.name} would log in to {pop3.host} without TLS",
                path=(*base, "pop3", "tls"),
                found="tls: none",
                expected="tls: implicit or tls: starttls",
                fix="use TLS; only for a test server, add `insecure: true`",
                rule="fetch-tls",
            )
        if pop3.password is None and pop3.oauth2 is None:
            yield Problem(
                f"fetch job {job.name} has no POP3 credentials",
                path=(*base, "pop3"),
                expected="password: secret:NAME or an oauth2: block",
                fix="add `password: secret:NAME`",
            )
        if job.keep_days is not None and not job.keep_on_server:
            yield Problem(
                "keep_days needs keep_on_server: true",
                path=(*base, "keep_days"),
                fix="set keep_on_server: true, or remove keep_days",
            )
        yield from _target(job.via, base, job)
        if job.backup_of is not None and job.backup_of not in forwarders:
            yield Problem(
                f"backup_of names {job.backup_of}, which is not a forwarder here",
                path=(*base, "backup_of"),
                expected="the address of a forwarder in this spec",
            )


def _target(via: Via, base: FieldPath, job: object) -> Iterator[Problem]:
    section = {Via.GMAIL_API: "gmail_api", Via.IMAP: "imap", Via.SMTP: "smtp"}[via]
    target = getattr(job, section)
    if via != Via.IMAP and target is None:
        yield Problem(
            f"via: {via} needs a `{section}:` block",
            path=(*base, "via"),
            expected=f"a {section}: block with the target's settings",
            fix=f"add `{section}:` (see docs/spec.md)",
        )
    if (
        isinstance(target, IMAPTarget)
        and target.password is None
        and target.oauth2 is None
    ):
        yield Problem(
            "the IMAP target has no credentials",
            path=(*base, "imap"),
            expected="password: secret:NAME or an oauth2: block",
        )
    if via == Via.IMAP and target is None:
        yield Problem(
            "via: imap needs an `imap:` block with credentials",
            path=(*base, "via"),
            expected="imap: {password: secret:NAME} or imap: {oauth2: ...}",
        )


def _names(spec: DomainSpec) -> Iterator[Problem]:
    seen: defaultdict[str, int] = defaultdict(int)
    for i, name in enumerate(spec.no_mail):
        seen[name] += 1
        if name == spec.domain or not name.endswith("." + spec.domain):
            yield Problem(
                f"{name} is not a name below {spec.domain}",
                path=("no_mail", i),
                expected=f"a subdomain such as www.{spec.domain}",
            )
        if name == spec.mail_host.hostname or seen[name] > 1:
            yield Problem(
                f"{name} cannot be a no-mail name here",
                path=("no_mail", i),
                found="the mail host or a repeated entry",
            )
