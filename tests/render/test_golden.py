"""The rendered files of the example specs, compared byte for byte.

After an intended change, refresh the golden files with:

    MAILBRIDGE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/render/test_golden.py

and review the diff (`git diff tests/render/golden`) before committing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mailbridge.render import RenderedFile, render_host
from mailbridge.secrets import SecretStore
from mailbridge.spec import load_specs

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MAILBRIDGE_UPDATE_GOLDEN") == "1"
# Fixed stand-ins for the secrets the example specs reference.
SECRETS = {
    "alice-password": "golden-alice",
    "archive-password": "golden-archive",
    "helpdesk-password": "golden-helpdesk",
    "srs-2026a": "golden-srs-com",
    "srs-net-2026a": "golden-srs-net",
    "isp-pop3": "golden-isp",
    "gmail-client-secret": "golden-client-secret",
    "gmail-refresh-token": "golden-refresh-token",
}
# Files that hold nothing but one secret's value: only their presence and
# mode are checked (the sidecar's tests read them).
FOREIGN = ("etc/mailbridge/secrets/",)


def modes_text(files: dict[str, RenderedFile]) -> str:
    lines = [f"{f.mode:04o} {f.group or '-'} {p}" for p, f in files.items()]
    return "\n".join(lines) + "\n"


def golden_files(stacks_dir: Path, domain: str) -> dict[str, RenderedFile]:
    spec = next(s.spec for s in load_specs([stacks_dir]) if s.spec.domain == domain)
    return render_host([spec], SecretStore(SECRETS, environ={}))


@pytest.mark.parametrize("domain", ["example.com", "example.net"])
def test_rendered_files_match_golden(stacks_dir: Path, domain: str) -> None:
    files = golden_files(stacks_dir, domain)
    mine = {p: f for p, f in files.items() if not p.startswith(FOREIGN)}
    folder = GOLDEN / domain
    if UPDATE:
        shutil.rmtree(folder, ignore_errors=True)
        for rel, item in mine.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(item.content)
        (folder / "MODES").write_text(modes_text(files))

    expected = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
    )
    assert expected == sorted([*mine, "MODES"])
    for rel, item in mine.items():
        assert item.content == (folder / rel).read_bytes(), f"{rel} differs"
    assert modes_text(files) == (folder / "MODES").read_text()
