"""The DNS tests check zones with kzonecheck and serve them from Knot."""

from __future__ import annotations

import pytest

from tests.servers.packages import ensure_packages

PACKAGES = ["knot", "knot-dnsutils", "knot-dnssecutils"]  # knotd, kdig, kzonecheck


@pytest.fixture(scope="session", autouse=True)
def dns_packages() -> None:
    ensure_packages(PACKAGES)
