"""`mailbridge verify` as a user runs it: specs, bare domains, JSON, exit codes.

Most tests call the entry point in this process; the progress bar test runs
the real command under a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbridge.cli.main import main
from mailbridge.dns.dkim import generate_key, load_keys
from tests.verify.world import World

pytestmark = pytest.mark.servers


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _world_options(world: World) -> list[str]:
    """Options that point verify at the world's DNS and policy servers."""
    return [
        "--resolver",
        f"127.0.0.1:{world.knot.port}",
        "--no-tls",
        "--mta-sts-address",
        f"127.0.0.1:{world.policy.port}",
        "--ca-file",
        str(world.ca.path),
    ]


def _cli(
    world: World, capsys: pytest.CaptureFixture[str], *args: str, keys: bool = True
) -> Result:
    """Run the command in this process, as `mailbridge verify ... --no-tls`.

    With `keys` false, verify gets no keys folder (only what `args` give).
    """
    argv = [
        "verify",
        *args,
        *_world_options(world),
        *(("--keys", str(world.keys)) if keys else ()),
    ]
    code = 0
    try:
        main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def test_good_spec_exits_0_with_json(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = world.write_spec("good.test", tmp_path)
    done = _cli(world, capsys, str(spec), "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    data = json.loads(done.stdout)
    assert data["ok"] is True
    (domain,) = data["domains"]
    assert domain["domain"] == "good.test"
    assert domain["status"] == "ok"
    checks = {f["check"] for f in domain["findings"]}
    assert {"mx", "spf.lookups", "dkim.s1", "ptr", "mta-sts.mx"} <= checks
    first = domain["findings"][0]
    assert set(first) >= {"check", "subject", "status", "expected", "found", "why"}


def test_drifted_spec_exits_1_and_says_how_to_fix(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    world.write_spec("good.test", tmp_path)
    world.write_spec("drift.test", tmp_path)
    done = _cli(world, capsys, str(tmp_path))
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "drift.test  ERROR" in out
    assert "good.test  OK" in out
    assert "expected: 10 mx1.drift.test." in out
    assert "found:    10 mx9.drift.test." in out
    assert "fix:" in out
    assert "2 domains verified, 1 with errors" in out


def _stack_output(folder: Path, domain: str, selectors: dict[str, object]) -> Path:
    """What `pulumi stack output --json` writes for the domain's stack."""
    path = folder / f"{domain}.outputs.json"
    data = {"domain": domain, "dkim": selectors, "signing": ["s1"]}
    path.write_text(json.dumps(data))
    return path


def _dkim_finding(out: str) -> dict[str, object]:
    (domain,) = json.loads(out)["domains"]
    (finding,) = [f for f in domain["findings"] if f["check"] == "dkim.s1"]
    return dict(finding)


def test_dkim_values_from_the_stack_output(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No key files (as in CI): the stack's `dkim` output is the deployed key."""
    spec = world.write_spec("good.test", tmp_path)
    (live,) = load_keys(world.keys, world.specs["good.test"]).values()
    row = {"record": "s1._domainkey.good.test", "state": "active", "retired": False}

    without = _cli(world, capsys, str(spec), "--json", "--show-ok", keys=False)
    assert _dkim_finding(without.stdout)["status"] == "warning"
    args = (str(spec), "--json")

    good = _stack_output(tmp_path, "good.test", {"s1": {**row, "value": live}})
    done = _cli(world, capsys, *args, "--dkim-from-stack-output", str(good), keys=False)
    assert done.returncode == 0, done.stdout
    assert _dkim_finding(done.stdout)["status"] == "ok"

    other = generate_key("ed25519").record_value()
    stale = _stack_output(tmp_path, "good.test", {"s1": {**row, "value": other}})
    done = _cli(
        world, capsys, *args, "--dkim-from-stack-output", str(stale), keys=False
    )
    assert done.returncode == 1
    finding = _dkim_finding(done.stdout)
    assert finding["status"] == "error"
    assert other.split("p=")[1] in str(finding["expected"])


def test_a_stack_never_deployed_has_no_outputs_and_is_left_out(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`pulumi stack output --json` of a stack created but never deployed."""
    spec = world.write_spec("good.test", tmp_path)
    empty = tmp_path / "outputs.json"
    empty.write_text("{}\n")
    args = (str(spec), "--json", "--dkim-from-stack-output", str(empty))
    done = _cli(world, capsys, *args, keys=False)
    assert done.returncode == 0, done.stderr
    assert _dkim_finding(done.stdout)["status"] == "warning"


def test_retired_selector_in_the_stack_output_is_not_expected(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = world.write_spec("good.test", tmp_path)
    gone = {"value": generate_key("ed25519").record_value(), "retired": True}
    outputs = _stack_output(tmp_path, "good.test", {"s1": gone})
    done = _cli(
        world, capsys, str(spec), "--json", "--dkim-from-stack-output", str(outputs)
    )
    (domain,) = json.loads(done.stdout)["domains"]
    assert not [f for f in domain["findings"] if f["check"] == "dkim.s1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ('{"dkim": {}}', "no `domain` output"),
        ('{"domain": "good.test", "dkim": {"s1": {"value": "[secret]"}}}', "s1"),
    ],
)
def test_bad_stack_output_exits_2(
    world: World,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    message: str,
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(text)
    done = _cli(world, capsys, "good.test", "--dkim-from-stack-output", str(outputs))
    assert done.returncode == 2
    assert message in done.stderr
    assert str(outputs) in done.stderr
    assert "pulumi stack output" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_resolver_that_never_answers_is_named(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = world.write_spec("good.test", tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        argv = ["verify", str(spec), "--resolver", address, "--no-tls"]
        code = 0
        try:
            main([*argv, "--timeout", "0.2", "--keys", str(world.keys)])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    captured = capsys.readouterr()
    assert code == 0  # unknown is not an error
    assert f"no DNS answer at all from {address}" in captured.err
    assert "UNKNOWN" in captured.out

    # With answers, no such hint.
    done = _cli(world, capsys, str(spec))
    assert "no DNS answer" not in done.stderr


def test_bare_domain(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    done = _cli(world, capsys, "good.test", "--json", "--show-ok")
    assert done.returncode == 0, done.stderr + done.stdout
    (domain,) = json.loads(done.stdout)["domains"]
    assert any(f["check"] == "mta-sts.txt" for f in domain["findings"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["good.test", "--ports", "smtp=abc"], "service=port"),
        (["good.test", "--services", "smtp,gopher"], "unknown services"),
        (["not a domain"], "neither a spec file nor a domain"),
        (["stacks/no-such.test.yaml"], "no such spec file or folder"),
        (["good.test.yaml"], "no such spec file or folder: good.test.yaml"),
    ],
)
def test_bad_input_exits_2(
    world: World, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    done = _cli(world, capsys, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_keys_folder_that_does_not_exist_exits_2(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-keys"
    done = _cli(world, capsys, "good.test", "--keys", str(missing), keys=False)
    assert done.returncode == 2
    assert str(missing) in done.stderr and "does not exist" in done.stderr


def test_progress_bar_on_a_terminal(world: World, tmp_path: Path) -> None:
    """stderr is a pseudo-terminal: the bar shows how many domains are done."""
    for domain in ("good.test", "void.test", "lookups.test"):
        world.write_spec(domain, tmp_path)
    leader, follower = os.openpty()
    command = [
        sys.executable,
        "-m",
        "mailbridge",
        "verify",
        str(tmp_path),
        *_world_options(world),
    ]
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=follower, env=env
    ) as process:
        os.close(follower)
        screen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                screen += chunk
            elif process.poll() is not None:
                break
        assert process.stdout is not None
        out = process.stdout.read().decode()
        process.wait(timeout=30)
    os.close(leader)
    text = screen.decode(errors="replace")
    assert "verify" in text
    assert "3/3" in text
    assert "3 domains verified" in out
