"""Fixtures of the verify tests: a test CA, Knot with good and broken zones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.verify.certs import TestCA
from tests.verify.world import World, build_world


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """A CA whose certificate the checks are told to trust (--ca-file)."""
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def ca_leaves(test_ca: TestCA) -> Iterator[dict[str, object]]:
    """The three leaves of the TLS tests: valid, expired, wrong name."""
    yield {
        "valid": test_ca.issue("valid", ["mx1.good.test"]),
        "expired": test_ca.issue(
            "expired", ["mx1.good.test"], days_before=400, days_after=-10
        ),
        "wrongname": test_ca.issue("wrongname", ["other-host.example.net"]),
    }


@pytest.fixture
def ca_path(test_ca: TestCA) -> Path:
    return test_ca.path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[World]:
    """Knot with the good and broken zones, and the MTA-STS policy server."""
    with build_world(tmp_path_factory, test_ca) as running:
        yield running
