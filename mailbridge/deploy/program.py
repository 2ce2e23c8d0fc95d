"""What the Pulumi program computes from a spec, kept free of Pulumi itself.

The components call these functions inside `Output.apply` or at program
time; tests call them directly.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mailbridge.deploy.hostfiles import HostFile
from mailbridge.dns.record import Record
from mailbridge.dns.records import build_records, dkim_name
from mailbridge.render import HostOptions, RenderedFile, render_host
from mailbridge.secrets import SecretStore
from mailbridge.spec.models import DomainSpec, SelectorState
from mailbridge.spec.types import SECRET_PREFIX

DKIM_KEY_MODE = 0o640
DKIM_KEY_GROUP = "opendkim"


def secret_refs(spec: DomainSpec) -> list[str]:
    """Every `secret:NAME` the spec holds, sorted, each once."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str) and value.startswith(SECRET_PREFIX):
            found.add(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(spec.model_dump(mode="json", by_alias=True))
    return sorted(found)


def holds_secret(item: RenderedFile, values: Iterable[str]) -> bool:
    """True for a file that is not world-readable or contains a secret value.

    The renderer gives secret-bearing files a mode without world access;
    the value search catches a template that leaks one anyway.
    """
    if item.mode & 0o004 == 0:
        return True
    return any(value and value.encode() in item.content for value in values)


@dataclass(frozen=True)
class HostSplit:
    """The host's files: those that hold no secret, and those that do."""

    plain: dict[str, RenderedFile]
    secret: dict[str, RenderedFile]


def secret_values(specs: Iterable[DomainSpec], store: SecretStore) -> list[str]:
    """Every secret value the host's files may hold, wherever it comes from.

    The stack config's values, and those of the specs' references that
    resolve from the environment (`MAILBRIDGE_SECRET_<NAME>`).
    """
    found = {v for v in store.values.values() if v}
    for spec in specs:
        found.update(v for v in map(store.get, secret_refs(spec)) if v)
    return sorted(found)


def render_split(
    specs: list[DomainSpec],
    values: Mapping[str, str],
    options: HostOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> HostSplit:
    """Render the host once with the real secrets, and split its files.

    `environ` stands for the process environment (the default).
    """
    store = SecretStore(values=dict(values))
    if environ is not None:
        store = SecretStore(values=dict(values), environ=environ)
    files = render_host(specs, store, options)
    secrets = secret_values(specs, store)
    secret = {p: f for p, f in files.items() if holds_secret(f, secrets)}
    plain = {p: f for p, f in files.items() if p not in secret}
    return HostSplit(plain=plain, secret=secret)


def host_file(item: RenderedFile) -> HostFile:
    return HostFile(item.content, item.mode, item.group)


def files_to_inputs(files: Mapping[str, RenderedFile]) -> dict[str, Any]:
    """Rendered files as the plain dicts the HostFiles resource takes."""
    return {path: host_file(item).to_dict() for path, item in sorted(files.items())}


def dkim_key_path(domain: str, selector: str, options: HostOptions) -> str:
    """Where OpenDKIM's KeyTable expects the selector's private key."""
    path = posixpath.join(options.keys_dir, domain, f"{selector}.key")
    return path.lstrip("/")


def dkim_key_file(private_pem: str) -> dict[str, Any]:
    return HostFile(
        private_pem.encode("ascii"), DKIM_KEY_MODE, DKIM_KEY_GROUP
    ).to_dict()


def signing_selectors(spec: DomainSpec) -> list[str]:
    """Selectors that sign: only `active` ones (published ones wait)."""
    if spec.dkim is None:
        return []
    return [s.name for s in spec.dkim.selectors if s.state == SelectorState.ACTIVE]


def record_key(record: Record) -> str:
    """A stable name for a record set: `TYPE name`."""
    return f"{record.type} {record.name}"


def planned_records(spec: DomainSpec) -> list[Record]:
    """The record sets the spec needs, DKIM keys still placeholders.

    Names and types are final; only DKIM values wait for the keys.
    """
    return build_records(spec)


def live_records(
    spec: DomainSpec,
    dkim_public: Mapping[str, str],
    retired: Iterable[str] = (),
) -> list[Record]:
    """The records to publish now: real DKIM keys, retired selectors left out."""
    gone = {dkim_name(sel, spec.domain) for sel in retired}
    records = build_records(spec, dict(dkim_public))
    return [r for r in records if not (r.name in gone and str(r.type) == "TXT")]
