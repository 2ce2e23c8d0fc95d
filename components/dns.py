"""DnsRecords: a domain's records through the backend its spec names."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pulumi

from components.dkim import DkimKey
from components.providers.dkim import DkimConfirmation
from components.providers.rfc2136 import RecordSet
from components.providers.zonefile import ZoneFragment
from mailbridge.deploy.cloud import (
    CLOUDFLARE_RECORD,
    ROUTE53_RECORD,
    cloudflare_inputs,
    route53_inputs,
)
from mailbridge.deploy.program import live_records, planned_records, record_key
from mailbridge.dns.record import Record
from mailbridge.dns.zone import zone_text
from mailbridge.secrets import SecretStore
from mailbridge.spec.models import (
    RFC2136DNS,
    CloudflareDNS,
    DomainSpec,
    Route53DNS,
    ZoneFileDNS,
)

DEFAULT_ZONE_DIR = "build/dns"
# How long a new DKIM record may take to show at its source before the
# deploy stops (and signing stays with the old selector).
CONFIRM_TIMEOUT = 60


@dataclass
class DnsRecordsArgs:
    """The spec, its DKIM keys, the stack's secrets and the project folder."""

    spec: DomainSpec
    keys: Mapping[str, DkimKey] = field(default_factory=dict)
    secrets: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    project_dir: str = "."


def _resolve(secrets: pulumi.Input[Mapping[str, str]], ref: str) -> pulumi.Output[str]:
    """One secret value, kept secret."""
    value = pulumi.Output.from_input(secrets).apply(
        lambda values: SecretStore(values=dict(values or {})).resolve(ref)
    )
    return pulumi.Output.secret(value)


def _tsig_secret(ref: str, value: str) -> str:
    """The TSIG secret, once it is seen to be base64 as TSIG keys are; a
    wrong value stops the run naming the secret (never its value)."""
    try:
        base64.b64decode(value.strip(), validate=True)
    except ValueError as err:
        raise pulumi.RunError(
            f"the TSIG secret {ref} is not base64; give the key's secret as "
            f"the name server shows it (a `secret:` line of `keymgr`, or "
            f"`tsig-keygen` output)"
        ) from err
    return value.strip()


class DnsRecords(pulumi.ComponentResource):
    """Publishes the domain's records and confirms each DKIM key at its source.

    Backends (`spec.dns.backend`): `zonefile` writes a fragment (the
    default, under build/dns/), `rfc2136` updates a primary server with
    TSIG, `cloudflare` and `route53` use those providers' resources.
    `confirmed` maps each selector to an output that resolves only once its
    key is seen where it is published::

        DnsRecords("example.com-dns", DnsRecordsArgs(spec, keys, secrets))
    """

    confirmed: dict[str, pulumi.Output[bool]]
    zone_path: pulumi.Output[str] | None
    record_names: list[str]

    def __init__(
        self,
        name: str,
        args: DnsRecordsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mailbridge:dns:DnsRecords", name, None, opts)
        spec = args.spec
        self._name = name
        planned = planned_records(spec)
        self.record_names = [record_key(r) for r in planned]
        self.live = self._live(spec, args.keys)
        self.zone_path = None
        self.confirmed = {}
        backend = spec.dns
        source: dict[str, Any] | None = None
        if isinstance(backend, ZoneFileDNS):
            path = Path(args.project_dir, backend.path or _default_path(spec))
            fragment = ZoneFragment(
                f"{name}-zone",
                str(path.resolve()),
                self.live.apply(lambda recs: zone_text(spec, recs, fragment=True)),
                pulumi.ResourceOptions(parent=self),
            )
            self.zone_path = fragment.path
            source = {"kind": "zonefile", "path": str(path.resolve())}
            published: list[pulumi.Resource] = [fragment]
        elif isinstance(backend, RFC2136DNS):
            published = self._rfc2136(spec, backend, planned, args.secrets)
            source = {"kind": "rfc2136", "server": backend.server, "port": backend.port}
        elif isinstance(backend, CloudflareDNS):
            published = self._cloudflare(backend, planned, args.secrets)
        elif isinstance(backend, Route53DNS):
            published = self._route53(backend, planned)
        if source is not None:
            self._confirm(spec, args.keys, source, published)
        else:
            # Cloud providers confirm a record by accepting it; the key counts
            # as published once its record resource exists.
            for selector in args.keys:
                self.confirmed[selector] = pulumi.Output.all(
                    *[r.urn for r in published]
                ).apply(lambda _: True)
        self.register_outputs(
            {"zone_path": self.zone_path, "records": self.record_names}
        )

    def _live(
        self, spec: DomainSpec, keys: Mapping[str, DkimKey]
    ) -> pulumi.Output[list[Record]]:
        names = sorted(keys)
        values = [keys[n].public_value for n in names]
        retired = [keys[n].retired for n in names]

        def build(items: list[Any]) -> list[Record]:
            publics = dict(zip(names, items[: len(names)], strict=True))
            gone = [n for n, r in zip(names, items[len(names) :], strict=True) if r]
            return live_records(spec, publics, gone)

        return pulumi.Output.all(*values, *retired).apply(build)

    def _values_of(self, key: str) -> pulumi.Output[list[str]]:
        def pick(records: list[Record]) -> list[str]:
            for record in records:
                if record_key(record) == key:
                    return list(record.values)
            return []

        return self.live.apply(pick)

    def _rfc2136(
        self,
        spec: DomainSpec,
        backend: RFC2136DNS,
        planned: list[Record],
        secrets: pulumi.Input[Mapping[str, str]],
    ) -> list[pulumi.Resource]:
        tsig_secret = _resolve(secrets, backend.tsig.secret).apply(
            partial(_tsig_secret, backend.tsig.secret)
        )
        resources: list[pulumi.Resource] = []
        for record in planned:
            key = record_key(record)
            props: dict[str, pulumi.Input[Any]] = {
                "server": backend.server,
                "port": backend.port,
                "zone": backend.zone or spec.domain,
                "tsig_name": backend.tsig.name,
                "tsig_algorithm": backend.tsig.algorithm,
                "tsig_secret": tsig_secret,
                "name": record.name,
                "type": str(record.type),
                "ttl": record.ttl,
                "values": self._values_of(key),
            }
            resources.append(
                RecordSet(
                    f"{self._name}-{record.type}-{record.name}",
                    props,
                    pulumi.ResourceOptions(
                        parent=self,
                        # The TSIG key may update the zone: keep it encrypted.
                        additional_secret_outputs=["tsig_secret"],
                    ),
                )
            )
        return resources

    def _cloudflare(
        self,
        backend: CloudflareDNS,
        planned: list[Record],
        secrets: pulumi.Input[Mapping[str, str]],
    ) -> list[pulumi.Resource]:
        provider = pulumi.ProviderResource(
            "cloudflare",
            f"{self._name}-cloudflare",
            {"apiToken": _resolve(secrets, backend.api_token)},
            pulumi.ResourceOptions(parent=self),
        )
        resources: list[pulumi.Resource] = []
        for record in planned:
            key = record_key(record)
            for index, _ in enumerate(record.values):
                props = self._values_of(key).apply(
                    partial(
                        _cloudflare_value,
                        record=record,
                        index=index,
                        zone_id=backend.zone_id,
                    )
                )
                resources.append(
                    pulumi.CustomResource(
                        CLOUDFLARE_RECORD,
                        f"{self._name}-{record.type}-{record.name}-{index}",
                        {
                            "zoneId": backend.zone_id,
                            "name": record.name,
                            "type": str(record.type),
                            "ttl": record.ttl,
                            **{
                                f: props.apply(partial(_field, name=f))
                                for f in ("content", "priority", "data")
                            },
                        },
                        pulumi.ResourceOptions(parent=self, provider=provider),
                    )
                )
        return resources

    def _route53(
        self, backend: Route53DNS, planned: list[Record]
    ) -> list[pulumi.Resource]:
        resources: list[pulumi.Resource] = []
        for record in planned:
            props = self._values_of(record_key(record)).apply(
                partial(_route53_value, record=record, zone_id=backend.zone_id)
            )
            resources.append(
                pulumi.CustomResource(
                    ROUTE53_RECORD,
                    f"{self._name}-{record.type}-{record.name}",
                    {
                        "zoneId": backend.zone_id,
                        "name": record.name,
                        "type": str(record.type),
                        "ttl": record.ttl,
                        "records": props.apply(partial(_field, name="records")),
                        "allowOverwrite": False,
                    },
                    pulumi.ResourceOptions(parent=self),
                )
            )
        return resources

    def _confirm(
        self,
        spec: DomainSpec,
        keys: Mapping[str, DkimKey],
        source: dict[str, Any],
        published: list[pulumi.Resource],
    ) -> None:
        for selector, key in sorted(keys.items()):
            expected = pulumi.Output.all(key.public_value, key.retired).apply(
                lambda args: "" if args[1] else args[0]
            )
            confirmation = DkimConfirmation(
                f"{self._name}-confirm-{selector}",
                {
                    "name": key.record_name,
                    "origin": _zone_of(spec),
                    "expected": expected,
                    "state": key.state,
                    "source": source,
                    "timeout": CONFIRM_TIMEOUT,
                },
                pulumi.ResourceOptions(parent=self, depends_on=published),
            )
            self.confirmed[selector] = confirmation.confirmed


def _zone_of(spec: DomainSpec) -> str:
    if isinstance(spec.dns, RFC2136DNS) and spec.dns.zone:
        return spec.dns.zone
    return spec.domain


def _default_path(spec: DomainSpec) -> str:
    return f"{DEFAULT_ZONE_DIR}/{spec.domain}.zone"


def _with_values(record: Record, values: list[str]) -> Record:
    from dataclasses import replace

    return replace(record, values=tuple(values) or record.values)


def _cloudflare_value(
    values: list[str], record: Record, index: int, zone_id: str
) -> dict[str, Any]:
    return cloudflare_inputs(_with_values(record, values), zone_id)[index]


def _route53_value(values: list[str], record: Record, zone_id: str) -> dict[str, Any]:
    return route53_inputs(_with_values(record, values), zone_id)


def _field(props: dict[str, Any], name: str) -> Any:
    return props.get(name)
