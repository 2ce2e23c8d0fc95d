"""A fixture that writes small specs into a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.routing.helpers import WriteSpec

HEADER = """\
version: 1
domain: {domain}
mail_host: {{hostname: mx.{domain}, ipv4: [203.0.113.10]}}
"""


@pytest.fixture
def write_spec(tmp_path: Path) -> WriteSpec:
    """Write `<domain>.yaml` into tmp_path: a valid header, then `body`."""

    def write(domain: str, body: str) -> Path:
        path = tmp_path / f"{domain}.yaml"
        text = HEADER.format(domain=domain) + textwrap.dedent(body)
        path.write_text(text, encoding="utf-8")
        return path

    return write
