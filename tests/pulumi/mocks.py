"""Pulumi mocks that run the dynamic providers' `create` for real.

Pulumi's mocks never call providers; these unpickle each dynamic provider
from its `__provider` input (as the engine's provider process would) and
call `create`, so files land in the test's folder and keys get generated.
Other resources echo their inputs. Every registration is kept, with the
names of its inputs that arrived as secrets.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import dill
import pulumi
from pulumi.runtime import rpc

DYNAMIC_PREFIX = "pulumi-python:dynamic"


def unwrap(value: Any) -> tuple[Any, bool]:
    """The value with secret markers removed, and whether any was found."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            inner, _ = unwrap(value["value"])
            return inner, True
        found = False
        result = {}
        for key, item in value.items():
            result[key], secret = unwrap(item)
            found = found or secret
        return result, found
    if isinstance(value, list):
        items = [unwrap(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


@dataclass
class Registration:
    """One resource the program registered."""

    type: str
    name: str
    inputs: dict[str, Any]
    secret_inputs: set[str]
    outputs: dict[str, Any] = field(default_factory=dict)


class CrudMocks(pulumi.runtime.Mocks):
    """Mocks whose dynamic resources are created by their own providers."""

    def __init__(self) -> None:
        self.registrations: list[Registration] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs: dict[str, Any] = {}
        secret: set[str] = set()
        for key, value in args.inputs.items():
            inputs[key], is_secret = unwrap(value)
            if is_secret:
                secret.add(key)
        record = Registration(args.typ, args.name, inputs, secret)
        self.registrations.append(record)
        if args.typ.startswith(DYNAMIC_PREFIX):
            provider = dill.loads(base64.b64decode(inputs["__provider"]))
            result = provider.create(dict(inputs))
            outs = dict(result.outs or {})
            record.outputs = outs
            return result.id, {**args.inputs, **outs}
        record.outputs = dict(args.inputs)
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        return {}, []

    def of_type(self, suffix: str) -> list[Registration]:
        return [r for r in self.registrations if r.type.endswith(suffix)]

    def named(self, name: str) -> Registration:
        for record in self.registrations:
            if record.name == name:
                return record
        raise KeyError(name)


def monitor_urns() -> list[str]:
    """The URNs the mock monitor handed out (they show each parent chain)."""
    monitor = pulumi.runtime.settings.get_monitor()
    return sorted(monitor.resources)  # type: ignore[union-attr]
