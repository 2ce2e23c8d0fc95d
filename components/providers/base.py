"""What the dynamic providers share: comparing inputs without the provider key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PROVIDER_KEY = "__provider"


def plain(props: Mapping[str, Any]) -> dict[str, Any]:
    """The properties without Pulumi's serialized provider."""
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


def changed_keys(
    olds: Mapping[str, Any], news: Mapping[str, Any], keys: Iterable[str]
) -> list[str]:
    """The keys whose value differs between old outputs and new inputs."""
    return [k for k in keys if olds.get(k) != news.get(k)]
