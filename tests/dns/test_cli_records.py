"""`mailbridge records` in each format, with and without DKIM keys."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mailbridge.cli.main import main
from tests.dns.helpers import kzonecheck


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(["records", *args])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def spec_file(stacks_dir: Path, tmp_path: Path) -> Path:
    """A copy of the example spec in its own folder, so keys/ lands there."""
    folder = tmp_path / "stacks"
    folder.mkdir()
    return Path(shutil.copy(stacks_dir / "example.com.yaml", folder))


def test_table_without_keys_warns_loudly(
    capsys: pytest.CaptureFixture[str], spec_file: Path
) -> None:
    code, out, err = run(capsys, str(spec_file))
    assert code == 0
    assert "s2026a._domainkey.example.com" in out
    assert "_mta-sts.example.com" in out
    assert "mx: mx1.example.com" in out
    assert "WARNING: s2026a._domainkey.example.com TXT is a PLACEHOLDER" in err
    assert str(spec_file.parent / "keys") in err
    # SPF and DMARC are shown whole (folded), not cut short.
    assert "include:_spf.google.com" in out and '-all"' in out
    assert 'rua=mailto:dmarc@example.com"' in out


def test_generate_keys_into_the_default_folder(
    capsys: pytest.CaptureFixture[str], spec_file: Path
) -> None:
    code, out, err = run(capsys, str(spec_file), "--generate-keys", "--format", "json")
    assert code == 0
    key = spec_file.parent / "keys" / "example.com" / "s2026a.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"wrote DKIM key {key}" in err
    assert "PLACEHOLDER" not in err
    data = json.loads(out)
    assert data["placeholders"] == []
    dkim = next(r for r in data["records"] if r["name"].startswith("s2026a."))
    assert dkim["texts"][0].startswith("v=DKIM1; k=rsa; p=MII")
    before = key.read_bytes()
    run(capsys, str(spec_file), "--generate-keys")
    assert key.read_bytes() == before


@pytest.mark.servers
def test_zone_format_passes_kzonecheck(
    capsys: pytest.CaptureFixture[str], spec_file: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "elsewhere"
    code, out, _ = run(
        capsys,
        str(spec_file),
        "--format",
        "zone",
        "--keys",
        str(keys),
        "--generate-keys",
        "--serial",
        "7",
    )
    assert code == 0
    assert (keys / "example.com" / "s2026a.pub").exists()
    assert " IN SOA ns1.example.com. hostmaster.example.com. 7 " in out
    done = kzonecheck("example.com", out, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_fragment_and_name_servers(
    capsys: pytest.CaptureFixture[str], spec_file: Path
) -> None:
    code, out, _ = run(capsys, str(spec_file), "--format", "zone", "--fragment")
    assert code == 0
    assert " IN SOA " not in out and "$TTL" not in out
    assert "www               3600 IN MX 0 ." in out
    code, out, _ = run(
        capsys, str(spec_file), "--format", "zone", "--nameserver", "NS.Other.Example."
    )
    assert "@                 3600 IN NS ns.other.example." in out
    assert "ns1 " not in out


def test_spf_over_the_limit_exits_2(
    capsys: pytest.CaptureFixture[str], spec_file: Path
) -> None:
    data = yaml.safe_load(spec_file.read_text())
    data["spf"]["include"] = [f"_spf{i}.example.org" for i in range(11)]
    spec_file.write_text(yaml.safe_dump(data))
    code, out, err = run(capsys, str(spec_file))
    assert code == 2
    assert out == ""
    assert re.match(rf"{re.escape(str(spec_file))}:\d+:\d+: error: spf: ", err)
    assert "needs 11 DNS lookups" in err
    assert "Traceback" not in err


def test_zone_problem_points_at_the_spec_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = tmp_path / "z.org.yaml"
    spec.write_text("version: 1\ndomain: z.org\nmail_host: {hostname: mx.z.org}\n")

    code, out, err = run(capsys, str(spec), "--format", "zone")

    assert code == 2
    assert out == ""
    assert err.startswith(f"{spec}:3:12: error: mail_host: name server ns1.z.org")


def test_bad_key_file_exits_2(
    capsys: pytest.CaptureFixture[str], spec_file: Path
) -> None:
    folder = spec_file.parent / "keys" / "example.com"
    folder.mkdir(parents=True)
    (folder / "s2026a.key").write_text("garbage\n")
    code, _, err = run(capsys, str(spec_file))
    assert code == 2
    assert "s2026a.key" in err and "cannot read the DKIM private key" in err


def test_installed_command_prints_json(spec_file: Path) -> None:
    exe = Path(sys.executable).parent / "mailbridge"
    done = subprocess.run(
        [str(exe), "records", str(spec_file), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["domain"] == "example.com"
    assert [r["type"] for r in data["records"]][:3] == ["MX", "A", "AAAA"]
    assert "PLACEHOLDER" in done.stderr


def test_bad_name_server_exits_2(
    capsys: pytest.CaptureFixture[str], spec_file: Path
) -> None:
    code, out, err = run(
        capsys, str(spec_file), "--format", "zone", "--nameserver", "not a name"
    )
    assert code == 2
    assert out == ""
    assert "--nameserver" in err and "is not fully qualified" in err


def test_keys_folder_that_cannot_be_made_exits_2(
    capsys: pytest.CaptureFixture[str], spec_file: Path
) -> None:
    blocker = spec_file.parent / "a-file"
    blocker.write_text("not a folder\n")
    keys = blocker / "keys"

    code, _, err = run(capsys, str(spec_file), "--keys", str(keys), "--generate-keys")

    assert code == 2
    assert err.startswith(f"{keys}: error: (document): cannot write here: ")
    assert "fix:      a file stands where a folder must be: move it" in err
    assert "Traceback" not in err
