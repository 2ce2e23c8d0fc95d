"""MailDomain: everything one domain spec deploys, as one component."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pulumi

from components.dkim import DkimKey, DkimKeyArgs
from components.dns import DnsRecords, DnsRecordsArgs
from components.host import MailHost, MailHostArgs
from mailbridge.deploy.policy import PEERS_PROP, SPEC_PROP
from mailbridge.render import HostOptions
from mailbridge.spec.models import DomainSpec, SelectorState


def spec_json(spec: DomainSpec) -> str:
    """The spec as JSON with aliases, so `DomainSpec.model_validate_json` reads it."""
    return spec.model_dump_json(by_alias=True)


@dataclass
class MailDomainArgs:
    """The stack's spec, its secrets, and specs of other domains it forwards to.

    `peers` only feed the checks (a loop through another domain shows only
    when both specs are known); nothing is deployed for them.
    """

    spec: DomainSpec
    secrets: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    peers: list[DomainSpec] = field(default_factory=list)
    project_dir: str = "."
    host_options: HostOptions | None = None
    reload_commands: Mapping[str, str] | None = None


class MailDomain(pulumi.ComponentResource):
    """DKIM keys, DNS records and the mail host of one domain.

    Order matters and is enforced by data flow: each DKIM key is generated,
    its record published and confirmed at its source, and only then does
    the host sign with it. Selectors in state `published` or `retiring`
    never sign::

        MailDomain("example.com", MailDomainArgs(spec, secrets=config_secrets))
    """

    domain: str
    zone_path: pulumi.Output[str] | None
    host_root: str
    records: list[str]
    selectors: pulumi.Output[dict[str, Any]]
    signing: list[str]

    def __init__(
        self,
        name: str,
        args: MailDomainArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        spec = args.spec
        # The spec rides along as an input so the policy pack can rebuild it.
        props = {
            SPEC_PROP: spec_json(spec),
            PEERS_PROP: [spec_json(p) for p in args.peers],
        }
        super().__init__("mailbridge:domain:MailDomain", name, props, opts)
        self.domain = spec.domain
        child = pulumi.ResourceOptions(parent=self)
        keys: dict[str, DkimKey] = {}
        if spec.dkim is not None:
            for selector in spec.dkim.selectors:
                keys[selector.name] = DkimKey(
                    f"{name}-dkim-{selector.name}",
                    DkimKeyArgs(spec.domain, selector, spec.dkim.retire_after_days),
                    child,
                )
        dns = DnsRecords(
            f"{name}-dns",
            DnsRecordsArgs(spec, keys, args.secrets, args.project_dir),
            child,
        )
        self.signing = [
            s.name
            for s in (spec.dkim.selectors if spec.dkim else [])
            if s.state == SelectorState.ACTIVE
        ]
        signing_keys = {
            (spec.domain, sel): pulumi.Output.all(
                keys[sel].private_key, dns.confirmed[sel]
            ).apply(partial(_confirmed_pair, sel))
            for sel in self.signing
        }
        host = MailHost(
            f"{name}-host",
            MailHostArgs(
                specs=[spec],
                backend=spec.host,
                secrets=args.secrets,
                dkim_keys=signing_keys,
                options=args.host_options,
                project_dir=args.project_dir,
                reload_commands=args.reload_commands,
            ),
            child,
        )
        self.zone_path = dns.zone_path
        self.host_root = host.root
        self.records = dns.record_names
        self.host_files = host.paths
        self.selectors = pulumi.Output.all(
            *[
                pulumi.Output.all(k.state, k.retired, k.public_value)
                for k in keys.values()
            ]
        ).apply(
            lambda rows: {
                sel: {
                    "state": row[0],
                    "retired": row[1],
                    "record": keys[sel].record_name,
                    "value": row[2],
                }
                for sel, row in zip(keys, rows, strict=True)
            }
        )
        self.register_outputs(
            {
                "domain": self.domain,
                "zone_path": self.zone_path,
                "host_root": self.host_root,
                "records": self.records,
                "selectors": self.selectors,
                "signing": self.signing,
            }
        )


def _confirmed_key(selector: str, private_key: str, confirmed: bool) -> str:
    if not confirmed:
        # A RunError is shown as its message alone, without a traceback.
        raise pulumi.RunError(
            f"DKIM selector {selector} is not confirmed as published at its DNS "
            "source; refusing to sign with it (fix: publish its record, then "
            "`pulumi refresh` and `pulumi up`)"
        )
    return private_key


def _confirmed_pair(selector: str, pair: list[Any]) -> str:
    return _confirmed_key(selector, pair[0], pair[1])
