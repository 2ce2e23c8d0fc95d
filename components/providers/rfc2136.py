"""One DNS record set on a primary server, kept by RFC 2136 updates with TSIG.

An empty `values` list means the record set must not exist (a retired DKIM
selector keeps its resource until the selector leaves the spec).
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from components.providers.base import changed_keys, plain

SERVER_KEYS = ("server", "port", "zone", "tsig_name", "tsig_algorithm")
IDENTITY_KEYS = ("server", "port", "zone", "name", "type")


def _settings(props: dict[str, Any]) -> Any:
    from mailbridge.deploy.rfc2136 import ServerSettings

    return ServerSettings.from_dict(props)


def _apply(props: dict[str, Any]) -> dict[str, Any]:
    from mailbridge.deploy.rfc2136 import (
        canonical_values,
        delete_rrset,
        replace_rrset,
    )

    settings = _settings(props)
    values = list(props.get("values") or [])
    if values:
        replace_rrset(settings, props["name"], props["type"], int(props["ttl"]), values)
    else:
        delete_rrset(settings, props["name"], props["type"])
    outs = plain(props)
    outs["values"] = list(canonical_values(props["type"], values))
    return outs


class RecordSetProvider(ResourceProvider):
    """CRUD of one record set; `read` reports what the server holds now."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = _apply(props)
        return CreateResult(id_=f"{props['name']}/{props['type']}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        from mailbridge.deploy.rfc2136 import canonical_values

        replaces = changed_keys(olds, news, IDENTITY_KEYS)
        changes = changed_keys(olds, news, ("ttl", "tsig_name", "tsig_algorithm"))
        new_values = news.get("values")
        if not isinstance(new_values, list):
            changes.append("values")  # unknown during preview
        elif list(canonical_values(news["type"], new_values)) != list(
            olds.get("values") or []
        ):
            changes.append("values")
        if olds.get("tsig_secret") != news.get("tsig_secret"):
            changes.append("tsig_secret")
        return DiffResult(
            changes=bool(changes or replaces),
            replaces=replaces,
            delete_before_replace=True,
        )

    def update(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> UpdateResult:
        return UpdateResult(outs=_apply(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from mailbridge.deploy.rfc2136 import read_rrset

        found = read_rrset(_settings(props), props["name"], props["type"])
        outs = plain(props)
        outs["values"] = list(found.values) if found else []
        if found is not None:
            outs["ttl"] = found.ttl
        return ReadResult(id_=id_, outs=outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from mailbridge.deploy.rfc2136 import delete_rrset

        delete_rrset(_settings(props), props["name"], props["type"])


class RecordSet(Resource, module="mailbridge", name="Rfc2136RecordSet"):
    """Every value of one type at one name, on a server that takes updates."""

    name: pulumi.Output[str]
    type: pulumi.Output[str]
    ttl: pulumi.Output[int]
    values: pulumi.Output[list[str]]

    def __init__(
        self,
        resource_name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(RecordSetProvider(), resource_name, dict(props), opts)
