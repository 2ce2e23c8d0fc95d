"""DKIM key pairs made inside Pulumi, and the check that a key is published.

`DkimKeyPair` generates the key on create and keeps it for the life of the
selector; its private key is a secret output. It also tracks the
selector's state and when it entered it, so a retiring selector's record
leaves the DNS once `retire_after_days` have passed (see
`mailbridge.deploy.rotation`).

`DkimConfirmation` asks the authoritative source (the primary name server,
or the zone fragment that feeds one) for the selector's TXT record and
fails until it holds the expected key: nothing signs with a selector
before this resource exists.
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from components.providers.base import changed_keys, plain

KEY_IDENTITY = ("domain", "selector", "algorithm", "bits")


def _key_state(props: dict[str, Any]) -> Any:
    from mailbridge.deploy.rotation import KeyState, from_text
    from mailbridge.spec.models import SelectorState

    return KeyState(
        state=SelectorState(props["state"]),
        since=from_text(props["state_since"]),
        retired=bool(props.get("retired", False)),
    )


def _with_state(props: dict[str, Any], state: Any) -> dict[str, Any]:
    from mailbridge.deploy.rotation import to_text

    props["state"] = str(state.state)
    props["state_since"] = to_text(state.since)
    props["retired"] = state.retired
    return props


def _next_state(olds: dict[str, Any], news: dict[str, Any]) -> Any:
    from mailbridge.deploy.rotation import advance, now_utc
    from mailbridge.spec.models import SelectorState

    return advance(
        _key_state(olds),
        SelectorState(news["state"]),
        int(news["retire_after_days"]),
        now_utc(),
    )


class DkimKeyPairProvider(ResourceProvider):
    """Generates the key once; state changes update, never regenerate."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        for key in ("algorithm", "bits"):
            if olds and key in olds and olds.get(key) != news.get(key):
                failures.append(
                    CheckFailure(
                        key,
                        f"selector {news.get('selector')} already has a "
                        f"{olds.get('algorithm')} key; a published key never "
                        "changes: add a new selector for the new key",
                    )
                )
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from mailbridge.deploy.rotation import now_utc, start
        from mailbridge.dns.dkim import generate_key
        from mailbridge.spec.models import SelectorState

        pair = generate_key(props["algorithm"], int(props["bits"]))
        outs = plain(props)
        outs["private_key"] = pair.private_pem().decode("ascii")
        outs["public_value"] = pair.record_value()
        _with_state(outs, start(SelectorState(props["state"]), now_utc()))
        return CreateResult(
            id_=f"{props['selector']}._domainkey.{props['domain']}", outs=outs
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed_keys(olds, news, KEY_IDENTITY)
        changes = changed_keys(olds, news, ("state", "retire_after_days"))
        # The clock alone may retire a selector: compare the next state.
        if not replaces and not changes and _next_state(olds, news) != _key_state(olds):
            changes.append("retired")
        return DiffResult(
            changes=bool(changes or replaces),
            replaces=replaces,
            delete_before_replace=True,
        )

    def update(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> UpdateResult:
        outs = plain(news)
        outs["private_key"] = olds["private_key"]
        outs["public_value"] = olds["public_value"]
        return UpdateResult(outs=_with_state(outs, _next_state(olds, news)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=plain(props))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class DkimKeyPair(Resource, module="mailbridge", name="DkimKeyPair"):
    """One selector's key and where the selector is in its life."""

    private_key: pulumi.Output[str]
    public_value: pulumi.Output[str]
    state: pulumi.Output[str]
    state_since: pulumi.Output[str]
    retired: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # The private key is made by the provider, not passed in: only this
        # option keeps it encrypted in the state.
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key"])
        )
        super().__init__(
            DkimKeyPairProvider(),
            name,
            {
                **props,
                "private_key": None,
                "public_value": None,
                "state_since": None,
                "retired": None,
            },
            opts,
        )


def _published_texts(props: dict[str, Any]) -> list[str]:
    source = props["source"]
    if source["kind"] == "zonefile":
        from pathlib import Path

        from mailbridge.deploy.zonefile import read_fragment, txt_in_fragment

        text = read_fragment(Path(source["path"]))
        if text is None:
            return []
        return txt_in_fragment(text, props["origin"], props["name"])
    if source["kind"] == "rfc2136":
        from mailbridge.deploy.rfc2136 import ServerSettings, read_rrset

        settings = ServerSettings(
            server=source["server"],
            port=int(source["port"]),
            zone=props["origin"],
            tsig_name="",
            tsig_algorithm="",
            tsig_secret="",
        )
        found = read_rrset(settings, props["name"], "TXT")
        if found is None:
            return []
        from mailbridge.dns.record import unquote_txt

        return sorted("".join(unquote_txt(value)) for value in found.values)
    raise ValueError(f"unknown DKIM confirmation source {source['kind']!r}")


def _confirm(props: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + float(props.get("timeout", 60))
    expected = props["expected"]
    if not expected:
        # A retired selector: nothing is published, nothing may sign.
        return {**plain(props), "confirmed": False}
    while True:
        texts = _published_texts(props)
        if expected in texts:
            outs = plain(props)
            outs["confirmed"] = True
            return outs
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"DKIM selector record {props['name']} is not published as "
                f"expected at {props['source']['kind']} "
                f"{props['source'].get('path') or props['source'].get('server')}: "
                f"found {texts or 'nothing'}; signing stays with the old selector"
            )
        time.sleep(1.0)


class DkimConfirmationProvider(ResourceProvider):
    """Creates or updates only once the record is seen where it is served."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["name"], outs=_confirm(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = changed_keys(olds, news, ("name", "expected", "source", "state"))
        if news.get("expected") and olds.get("confirmed") is False:
            # `pulumi refresh` found the record gone: confirm it again once it
            # is published anew, rather than refusing to sign from then on.
            changes.append("confirmed")
        return DiffResult(changes=bool(changes), replaces=[])

    def update(
        self, _id: str, _olds: dict[str, Any], news: dict[str, Any]
    ) -> UpdateResult:
        return UpdateResult(outs=_confirm(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        outs = plain(props)
        outs["confirmed"] = props["expected"] in _published_texts(props)
        return ReadResult(id_=id_, outs=outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class DkimConfirmation(Resource, module="mailbridge", name="DkimConfirmation"):
    """Exists only once the selector's key is published at its source."""

    confirmed: pulumi.Output[bool]
    expected: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            DkimConfirmationProvider(), name, {**props, "confirmed": None}, opts
        )
