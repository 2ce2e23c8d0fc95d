"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stacks_dir() -> Path:
    """The example specs shipped in stacks/."""
    return ROOT / "stacks"
