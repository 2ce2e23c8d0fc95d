"""Fixtures for the Pulumi tests: a project folder and a mocked deploy."""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.pulumi.mocks import CrudMocks

ROOT = Path(__file__).resolve().parents[2]

# Values for every secret the example specs name (tests only).
EXAMPLE_SECRETS: dict[str, str] = {
    "alice-password": "alice-test-password-1",
    "archive-password": "archive-test-password-2",
    "gmail-client-secret": "gmail-client-secret-value-3",
    "gmail-refresh-token": "gmail-refresh-token-value-4",
    "isp-pop3": "isp-pop3-password-5",
    "srs-2026a": "srs-secret-2026a-value-6",
    "srs-net-2026a": "srs-secret-net-value-7",
    "helpdesk-password": "helpdesk-test-password-8",
}

Deploy = Callable[..., CrudMocks]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding copies of the example specs in stacks/."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for spec in ("example.com.yaml", "example.net.yaml"):
        shutil.copy(ROOT / "stacks" / spec, stacks / spec)
    return tmp_path


@pytest.fixture
def deploy() -> Deploy:
    """Run the program once under CrudMocks; returns the mocks."""

    def run_once(
        project_dir: Path,
        spec: str = "stacks/example.com.yaml",
        secrets: Mapping[str, str] | None = None,
        peers: list[str] | None = None,
        program: Callable[[Path], Any] | None = None,
    ) -> CrudMocks:
        from components.program import run

        mocks = CrudMocks()
        pulumi.runtime.set_mocks(
            mocks, project="mailbridge", stack="test", preview=False
        )
        config = {
            "mailbridge:spec": spec,
            "mailbridge:secrets": json.dumps(dict(secrets or EXAMPLE_SECRETS)),
        }
        if peers:
            config["mailbridge:peers"] = json.dumps(peers)
        pulumi.runtime.config.set_all_config(config, ["mailbridge:secrets"])

        @pulumi.runtime.test
        def body() -> Any:
            return (program or run)(project_dir)

        try:
            body()
        except Exception:
            # A failed run leaves futures whose exceptions nobody retrieved;
            # collect them now, not in the middle of some later compile().
            gc.collect()
            raise
        return mocks

    return run_once
