"""The mail host as the templates need it: one plan built from all specs.

Everything is sorted here, so the templates only format and the same specs
always give the same files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mailbridge.errors import InputError, Problem
from mailbridge.render.options import HostOptions
from mailbridge.render.passwords import hash_password
from mailbridge.render.sidecar import sidecar_secret_refs
from mailbridge.secrets import SecretStore
from mailbridge.spec.models import DkimAlgorithm, DomainSpec, SelectorState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alias:
    """One line of the virtual alias map: `pattern` goes to `targets`."""

    pattern: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class MailboxEntry:
    """A Dovecot user: its address (the login), hash and quota."""

    address: str
    password_hash: str
    quota_mb: int

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]

    @property
    def local_part(self) -> str:
        return self.address.rsplit("@", 1)[0]


@dataclass(frozen=True)
class SenderLogin:
    """Who may use `address` as the envelope sender after logging in."""

    address: str
    logins: tuple[str, ...]


@dataclass(frozen=True)
class DkimKey:
    """An active DKIM key: KeyTable name, domain, selector and key path."""

    name: str
    domain: str
    selector: str
    path: str
    algorithm: DkimAlgorithm = DkimAlgorithm.RSA


@dataclass(frozen=True)
class DkimSigner:
    """One OpenDKIM instance and the keys it signs with.

    Debian 12's OpenDKIM (2.11.0~beta2) signs with one algorithm per
    instance (`SignatureAlgorithm`), so RSA and Ed25519 keys (RFC 8463) each
    get their own instance; both run as milters, so mail is signed twice.
    """

    name: str
    algorithm: str
    port: int
    keys: tuple[DkimKey, ...]

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted({key.domain for key in self.keys}))

    @property
    def config(self) -> str:
        return f"etc/{self.name}.conf"

    @property
    def folder(self) -> str:
        """Where its KeyTable and policy script live."""
        if self.name == "opendkim":
            return "etc/opendkim"
        return f"etc/opendkim/{self.name.removeprefix('opendkim-')}"


@dataclass(frozen=True)
class SrsPlan:
    """postsrsd settings: its domain, its secrets (first signs) and exclusions."""

    domain: str
    secrets: tuple[str, ...]
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class HostPlan:
    """Everything the templates of one mail host need."""

    hostname: str
    primary_domain: str
    mailbox_domains: tuple[str, ...]
    alias_domains: tuple[str, ...]
    aliases: tuple[Alias, ...]
    mailboxes: tuple[MailboxEntry, ...]
    sender_logins: tuple[SenderLogin, ...]
    dkim_keys: tuple[DkimKey, ...]
    signers: tuple[DkimSigner, ...]
    forwarded: tuple[str, ...]
    srs: SrsPlan | None
    transports: tuple[tuple[str, str], ...]

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted(self.mailbox_domains + self.alias_domains))

    @property
    def dkim_domains(self) -> tuple[str, ...]:
        return tuple(sorted({key.domain for key in self.dkim_keys}))

    @property
    def arc_keys(self) -> tuple[DkimKey, ...]:
        """The key that seals ARC for each domain: its first active one."""
        first: dict[str, DkimKey] = {}
        # rspamd 3.4 reads Ed25519 keys only in its own format, not PEM.
        for key in self.dkim_keys:
            if key.algorithm == DkimAlgorithm.RSA:
                first.setdefault(key.domain, key)
        return tuple(first[d] for d in sorted(first))

    @property
    def arc_domains(self) -> tuple[str, ...]:
        return tuple(key.domain for key in self.arc_keys)


# Gmail asks bulk senders to go slowly; forwarded mail goes through the
# `gmail` transport, whose limits main.cf sets.
GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


def build_plan(
    specs: list[DomainSpec], secrets: SecretStore, options: HostOptions
) -> HostPlan:
    """The plan for a host serving `specs`; InputError lists every problem."""
    ordered = sorted(specs, key=lambda s: s.domain)
    _check_specs(ordered, options)
    # Every missing secret at once, the sidecar's included.
    secrets.require(_secret_refs(ordered) + sidecar_secret_refs(ordered))
    hostname = options.hostname or ordered[0].mail_host.hostname
    primary = _primary(ordered, hostname)
    mailboxes = _mailboxes(ordered, secrets, options)
    boxes = {m.address for m in mailboxes}
    mailbox_domains = sorted({m.domain for m in mailboxes})
    alias_domains = [s.domain for s in ordered if s.domain not in mailbox_domains]
    srs = _srs(ordered, primary, secrets)
    # Bounces come back to SRS addresses: their domain must be received here.
    if srs is not None and srs.domain not in (*mailbox_domains, *alias_domains):
        alias_domains = sorted([*alias_domains, srs.domain])
    transports = {domain: "gmail:" for domain in GMAIL_DOMAINS}
    transports.update(options.transport_overrides)
    dkim_keys = _dkim_keys(ordered, options)
    return HostPlan(
        hostname=hostname,
        primary_domain=primary.domain,
        mailbox_domains=tuple(mailbox_domains),
        alias_domains=tuple(alias_domains),
        aliases=tuple(_aliases(ordered, boxes)),
        mailboxes=tuple(mailboxes),
        sender_logins=tuple(_sender_logins(ordered, boxes)),
        dkim_keys=tuple(dkim_keys),
        signers=tuple(_signers(dkim_keys, options)),
        forwarded=tuple(_forwarded(ordered)),
        srs=srs,
        transports=tuple(sorted(transports.items())),
    )


def _check_specs(specs: list[DomainSpec], options: HostOptions) -> None:
    if not specs:
        raise InputError.single(
            "no domain specs to render a mail host from",
            expected="at least one spec",
        )
    problems: list[Problem] = []
    seen: set[str] = set()
    for spec in specs:
        if spec.domain in seen:
            problems.append(
                Problem(
                    f"domain {spec.domain} is given twice",
                    path=("domain",),
                    expected="each domain once",
                )
            )
        seen.add(spec.domain)
    hosts = sorted({s.mail_host.hostname for s in specs})
    if options.hostname is None and len(hosts) > 1:
        problems.append(
            Problem(
                "these specs name different mail hosts: " + ", ".join(hosts),
                path=("mail_host", "hostname"),
                expected="specs that share one mail host",
                fix="render each host on its own (mailbridge render --host NAME)",
            )
        )
    if problems:
        raise InputError(problems)


def _secret_refs(specs: list[DomainSpec]) -> list[str]:
    refs = [box.password for spec in specs for box in spec.mailboxes]
    for spec in specs:
        if spec.srs is not None:
            refs.extend(spec.srs.secrets)
    return refs


def _primary(specs: list[DomainSpec], hostname: str) -> DomainSpec:
    """The domain the host belongs to: the longest suffix of its name.

    It names the SRS domain and signs forwarded mail whose forwarder cannot
    be told apart; without a match the first domain by name is used.
    """
    owners = [s for s in specs if hostname.endswith("." + s.domain)]
    if owners:
        return max(owners, key=lambda s: len(s.domain))
    return specs[0]


def _mailboxes(
    specs: list[DomainSpec], secrets: SecretStore, options: HostOptions
) -> list[MailboxEntry]:
    entries = []
    for spec in specs:
        for box in spec.mailboxes:
            password = secrets.resolve(box.password)
            entries.append(
                MailboxEntry(
                    address=box.address,
                    password_hash=hash_password(
                        password, box.address, options.password_cost
                    ),
                    quota_mb=box.quota_mb,
                )
            )
    return sorted(entries, key=lambda m: m.address)


def _aliases(specs: list[DomainSpec], boxes: set[str]) -> list[Alias]:
    """Explicit forwarders, then mailboxes as themselves, then catch-alls.

    Postfix looks `user@domain` up before `@domain`, so a mailbox listed as
    an alias of itself wins over the catch-all of its domain; a forwarder
    that lists its own address keeps a copy (Postfix stops expanding an
    address that maps to itself).
    """
    explicit: dict[str, tuple[str, ...]] = {}
    catch_alls: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        for fwd in spec.forwarders:
            if fwd.is_catch_all:
                catch_alls["@" + fwd.address[2:]] = tuple(fwd.to)
            else:
                explicit[fwd.address] = tuple(fwd.to)
    for box in boxes:
        explicit.setdefault(box, (box,))
    aliases = [Alias(k, explicit[k]) for k in sorted(explicit)]
    aliases.extend(Alias(k, catch_alls[k]) for k in sorted(catch_alls))
    return aliases


def _sender_logins(specs: list[DomainSpec], boxes: set[str]) -> list[SenderLogin]:
    """Each mailbox sends as itself and as the forwarders that reach it."""
    owners: dict[str, set[str]] = {box: {box} for box in boxes}
    for spec in specs:
        for fwd in spec.forwarders:
            if fwd.is_catch_all:
                continue
            local = {t for t in fwd.to if t in boxes}
            if local:
                owners.setdefault(fwd.address, set()).update(local)
    return [SenderLogin(a, tuple(sorted(owners[a]))) for a in sorted(owners)]


def _dkim_keys(specs: list[DomainSpec], options: HostOptions) -> list[DkimKey]:
    keys = []
    for spec in specs:
        if spec.dkim is None:
            continue
        for sel in spec.dkim.selectors:
            if sel.state != SelectorState.ACTIVE:
                continue
            keys.append(
                DkimKey(
                    name=f"{sel.name}._domainkey.{spec.domain}",
                    domain=spec.domain,
                    selector=sel.name,
                    path=options.path(
                        f"{options.keys_dir}/{spec.domain}/{sel.name}.key"
                    ),
                    algorithm=sel.algorithm,
                )
            )
    return keys


def _signers(keys: list[DkimKey], options: HostOptions) -> list[DkimSigner]:
    rsa = tuple(k for k in keys if k.algorithm == DkimAlgorithm.RSA)
    ed25519 = tuple(k for k in keys if k.algorithm == DkimAlgorithm.ED25519)
    signers = []
    if rsa:
        signers.append(DkimSigner("opendkim", "rsa-sha256", options.opendkim_port, rsa))
    if ed25519:
        port = options.opendkim_ed25519_port
        signers.append(DkimSigner("opendkim-ed25519", "ed25519-sha256", port, ed25519))
    return signers


def _forwarded(specs: list[DomainSpec]) -> list[str]:
    """Recipients whose mail is forwarded: addresses, and `@domain` catch-alls."""
    found = set()
    for spec in specs:
        for fwd in spec.forwarders:
            if fwd.is_catch_all:
                found.add("@" + fwd.address[2:])
            elif any(t != fwd.address for t in fwd.to):
                found.add(fwd.address)
    return sorted(found)


def _srs(
    specs: list[DomainSpec], primary: DomainSpec, secrets: SecretStore
) -> SrsPlan | None:
    """One SRS domain per host (postsrsd has one): the primary domain's.

    Every spec's secrets verify, so addresses signed before a domain moved
    here still bounce back; the primary spec's first secret signs.
    """
    with_srs = [s for s in specs if s.srs is not None]
    if not with_srs:
        return None
    owner = primary if primary.srs is not None else with_srs[0]
    assert owner.srs is not None
    refs = list(owner.srs.secrets)
    for spec in with_srs:
        assert spec.srs is not None
        refs.extend(r for r in spec.srs.secrets if r not in refs)
    if len(with_srs) < len(specs):
        log.info(
            "srs: domains without an srs block share host SRS domain=%s",
            owner.srs.domain or owner.domain,
        )
    return SrsPlan(
        domain=owner.srs.domain or owner.domain,
        secrets=tuple(secrets.resolve(r) for r in refs),
        exclude=tuple(s.domain for s in specs),
    )
