"""One bad spec per error class, each with the exact report a user sees.

Refresh the expected reports after an intended wording change with:
    MAILBRIDGE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/spec/test_bad_specs.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailbridge.cli.main import main
from mailbridge.errors import InputError
from mailbridge.spec import load_spec, load_specs

BAD = Path(__file__).parent / "bad"
ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(p.stem for p in BAD.glob("*.yaml"))


def run_validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbridge", "validate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("case", CASES)
def test_bad_spec_report(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exited:
        main(["validate", f"tests/spec/bad/{case}.yaml"])
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert out == ""
    expected = BAD / f"{case}.expected"
    if os.environ.get("MAILBRIDGE_UPDATE_GOLDEN"):
        expected.write_text(err)
    assert err == expected.read_text()


def test_bad_spec_from_a_real_process_has_no_traceback() -> None:
    done = run_validate("tests/spec/bad/inline-password.yaml", "stacks")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "mailboxes[0].password" in done.stderr


def test_every_error_class_has_a_case() -> None:
    assert {
        "unknown-key",
        "malformed-domain",
        "malformed-address",
        "catch-all-target",
        "out-of-range",
        "foreign-address",
        "duplicate-address",
        "unknown-mx-host",
        "weak-dkim",
        "fetch-without-tls",
        "inline-password",
        "yaml-syntax",
        "duplicate-key",
        "missing-key",
        "wrong-type",
        "bad-choice",
        "tab-indent",
        "bad-backend",
        "two-documents",
        "not-a-spec",
        "misspelt-key",
    } <= set(CASES)


def test_all_problems_of_a_file_at_once(tmp_path: Path) -> None:
    spec = tmp_path / "many.yaml"
    spec.write_text(
        "version: 1\n"
        "domain: example.com\n"
        "mail_host: {hostname: mx1.example.com}\n"
        "mx: [{host: mx2.other.net}]\n"
        "mailboxes:\n"
        "  - {address: alice@example.com, password: hunter2}\n"
        "  - {address: bob@example.com, password: 'secret:x'}\n"
        "  - {address: bob@example.com, password: 'secret:y'}\n"
        "dkim: {selectors: [{name: s1, bits: 1024}]}\n"
    )
    with pytest.raises(InputError) as caught:
        load_spec(spec)
    where = [(str(p.location), p.path) for p in caught.value.problems]
    assert where == [
        (f"{spec}:4:13", ("mx", 0, "host")),
        (f"{spec}:6:44", ("mailboxes", 0, "password")),
        (f"{spec}:8:15", ("mailboxes", 2, "address")),
        (f"{spec}:9:37", ("dkim", "selectors", 0, "bits")),
    ]


def test_insecure_fetch_is_allowed_when_spelled_out(tmp_path: Path) -> None:
    text = (BAD / "fetch-without-tls.yaml").read_text()
    spec = tmp_path / "ok.yaml"
    spec.write_text(text.replace("tls: none,", "tls: none, insecure: true,"))
    loaded = load_spec(spec)
    assert loaded.spec.fetch[0].pop3.insecure


def test_keep_a_copy_is_not_a_duplicate(tmp_path: Path) -> None:
    spec = tmp_path / "copy.yaml"
    spec.write_text(
        "version: 1\n"
        "domain: example.com\n"
        "mail_host: {hostname: mx1.example.com}\n"
        "mailboxes: [{address: alice@example.com, password: 'secret:a'}]\n"
        "forwarders:\n"
        "  - {address: alice@example.com, to: [alice@example.com, a@gmail.com]}\n"
    )
    assert load_spec(spec).spec.forwarders[0].to[0] == "alice@example.com"


def test_a_folder_where_one_spec_is_read_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["records", str(tmp_path)])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith(f"{tmp_path}: error: (document): this is a folder;")
    assert f"expected: one spec file, such as {tmp_path}/<domain>.yaml" in err


def test_a_file_that_is_not_utf8_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("version: 1\ndomain: caf\xe9.example\n".encode("latin-1"))

    with pytest.raises(SystemExit) as exited:
        main(["validate", str(spec)])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"{spec}: error: (document): this file is not UTF-8 text" in err
    assert "at byte 22" in err
    assert "fix:      save the file as UTF-8" in err


def test_a_misspelt_domain_key_in_a_folder_is_reported_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (ROOT / "stacks" / "example.net.yaml").read_text()
    (tmp_path / "example.net.yaml").write_text(good)
    (tmp_path / "typo.yaml").write_text(
        good.replace("domain: example.net", "domian: example.org")
    )
    (tmp_path / "Pulumi.example.net.yaml").write_text("config: {}\nversion: 1\n")
    (tmp_path / "notes.yaml").write_text("title: not a spec\n")

    with pytest.raises(SystemExit) as exited:
        main(["check", str(tmp_path)])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"{tmp_path / 'typo.yaml'}:3:1: error: domian: unknown key 'domian'" in err
    assert "required key 'domain' is missing" in err
    assert "Pulumi" not in err and "notes.yaml" not in err


def test_a_spec_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    # Some Windows editors start UTF-8 files with a BOM; it is not content.
    good = (ROOT / "stacks" / "example.net.yaml").read_text()
    spec = tmp_path / "example.net.yaml"
    spec.write_bytes(b"\xef\xbb\xbf" + good.encode())

    assert [s.spec.domain for s in load_specs([tmp_path])] == ["example.net"]


def test_a_folder_without_specs_names_the_yaml_it_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.yaml").write_text("title: not a spec\n")
    (tmp_path / "empty").mkdir()

    with pytest.raises(SystemExit) as exited:
        main(["validate", str(tmp_path)])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "no domain specs found" in err
    assert f"found:    only YAML files that are not specs: {tmp_path}/notes.yaml" in err

    with pytest.raises(SystemExit) as exited:
        main(["validate", str(tmp_path / "empty")])
    assert exited.value.code == 2
    assert "found:    no *.yaml or *.yml files" in capsys.readouterr().err


def test_dns_and_host_without_backend_mean_the_defaults(tmp_path: Path) -> None:
    good = (ROOT / "stacks" / "example.net.yaml").read_text()
    spec = tmp_path / "example.net.yaml"
    spec.write_text(good + "dns: {ttl: 600}\nhost: {root: build/net}\n")

    loaded = load_spec(spec).spec
    assert (loaded.dns.backend, loaded.dns.ttl) == ("zonefile", 600)
    assert (loaded.host.backend, loaded.host.root) == ("local", "build/net")


def test_a_stack_file_given_as_spec_names_its_spec(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exited:
        main(["validate", "stacks/Pulumi.example.com.yaml"])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "this is a Pulumi stack file, not a domain spec" in err
    assert "fix:      name its domain spec instead: stacks/example.com.yaml" in err
    assert "1 problem found" in err


def test_a_key_given_twice_is_reported_with_the_other_problems(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "twice.yaml"
    spec.write_text(
        "version: 1\n"
        "domain: example.com\n"
        "mail_host: {hostname: mx1.example.com}\n"
        "mailboxes:\n"
        "  - {address: alice@example.com, password: hunter2}\n"
        "domain: example.org\n"
    )
    with pytest.raises(InputError) as caught:
        load_spec(spec)
    where = [(str(p.location), p.path) for p in caught.value.problems]
    assert where == [
        (f"{spec}:5:44", ("mailboxes", 0, "password")),
        (f"{spec}:6:1", ("domain",)),
    ]
