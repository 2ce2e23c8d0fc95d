"""DkimKey: one DKIM selector's key pair, generated and kept by Pulumi."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.providers.dkim import DkimKeyPair
from mailbridge.dns.records import dkim_name
from mailbridge.spec.models import Selector


@dataclass(frozen=True)
class DkimKeyArgs:
    """The selector as the spec has it, its domain and the retiring window."""

    domain: str
    selector: Selector
    retire_after_days: int = 7


class DkimKey(pulumi.ComponentResource):
    """A selector's key: RSA (2048 bits or more) or Ed25519.

    The private key is a secret output; `public_value` is the TXT text to
    publish. `retired` turns true on the first run after a `retiring`
    selector's window has passed; its record then leaves the DNS while the
    key stays in the state until the selector leaves the spec::

        DkimKey("example.com-s2026a", DkimKeyArgs("example.com", selector))
    """

    private_key: pulumi.Output[str]
    public_value: pulumi.Output[str]
    state: pulumi.Output[str]
    retired: pulumi.Output[bool]
    record_name: str
    selector: str

    def __init__(
        self,
        name: str,
        args: DkimKeyArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mailbridge:dkim:DkimKey", name, None, opts)
        sel = args.selector
        self.selector = sel.name
        self.record_name = dkim_name(sel.name, args.domain)
        pair = DkimKeyPair(
            f"{name}-pair",
            {
                "domain": args.domain,
                "selector": sel.name,
                "algorithm": str(sel.algorithm),
                "bits": sel.bits,
                "state": str(sel.state),
                "retire_after_days": args.retire_after_days,
            },
            pulumi.ResourceOptions(parent=self),
        )
        self.private_key = pulumi.Output.secret(pair.private_key)
        self.public_value = pair.public_value
        self.state = pair.state
        self.retired = pair.retired.apply(bool)
        self.register_outputs(
            {
                "private_key": self.private_key,
                "public_value": self.public_value,
                "state": self.state,
                "retired": self.retired,
            }
        )
