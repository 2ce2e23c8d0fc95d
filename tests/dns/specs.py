"""Small domain specs for the DNS tests, built from dicts."""

from __future__ import annotations

from typing import Any

from mailbridge.spec.models import DomainSpec


def make_spec(**fields: Any) -> DomainSpec:
    """A valid spec for example.org; keyword arguments replace its fields."""
    data: dict[str, Any] = {
        "version": 1,
        "domain": "example.org",
        "mail_host": {"hostname": "mx.example.org", "ipv4": ["192.0.2.1"]},
        "autoconfig": False,
    }
    data.update(fields)
    return DomainSpec.model_validate(data)
