"""Helpers of the DNS tests: small specs built from dicts, and kzonecheck."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
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


KZONECHECK = shutil.which("kzonecheck") or "/usr/bin/kzonecheck"


def kzonecheck(
    origin: str, text: str, folder: Path
) -> subprocess.CompletedProcess[str]:
    """Run Knot's zone checker on `text` (written to `folder`)."""
    path = folder / f"{origin}.zone"
    path.write_text(text)
    return subprocess.run(
        [KZONECHECK, "-o", origin, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
