"""The sidecar config: located errors, secret references, rendering."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mailbridge.cli.main import main
from mailbridge.errors import InputError
from mailbridge.sidecar.config import SecretSource, SidecarConfig, load_config
from mailbridge.sidecar.render import render_sidecar_config
from mailbridge.spec import load_specs
from mailbridge.spec.models import SMTPTarget as SpecSMTPTarget
from mailbridge.spec.models import Via

GOOD = """\
version: 1
accounts:
  - name: isp
    pop3:
      host: pop.isp.example
      username: alice
      password: {file: /etc/mailbridge/secrets/isp-pop3}
    deliver_to: alice@gmail.example
    via: smtp
    smtp: {host: mx1.example.com}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    return path


def test_a_good_config_loads(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    account = config.accounts[0]
    assert account.pop3.effective_port == 995
    assert account.pop3.password == SecretSource(
        file="/etc/mailbridge/secrets/isp-pop3"
    )
    assert config.state.backend == "sqlite"


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    text = GOOD.replace(
        "password: {file: /etc/mailbridge/secrets/isp-pop3}",
        "password: hunter2-inline",
    ).replace("via: smtp", "via: pigeon")
    with pytest.raises(InputError) as caught:
        load_config(_write(tmp_path, text))
    report = caught.value.to_text()
    assert "sidecar.yaml:7:" in report and "accounts[0].pop3.password" in report
    assert "sidecar.yaml:9:" in report and "accounts[0].via" in report
    assert "2 problems found" in report


def test_a_secret_needs_exactly_one_source(
    tmp_path: Path,
) -> None:
    text = GOOD.replace(
        "{file: /etc/mailbridge/secrets/isp-pop3}",
        "{file: /etc/x, env: X}",
    )
    with pytest.raises(InputError) as caught:
        load_config(_write(tmp_path, text))
    report = caught.value.to_text()
    assert "exactly one of `file` or `env`" in report
    assert "sidecar.yaml:7:" in report


def test_tls_none_without_insecure_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("username: alice", "username: alice\n      tls: none")
    with pytest.raises(InputError) as caught:
        load_config(_write(tmp_path, text))
    assert "without TLS" in caught.value.to_text()
    assert "insecure: true" in caught.value.to_text()


GMAIL = """\
version: 1
accounts:
  - name: isp
    pop3:
      host: pop.isp.example
      username: alice
      oauth2:
        client_id: pop
        client_secret: {env: A}
        refresh_token: {env: B}
        token_url: POP3_TOKEN_URL
    deliver_to: alice@gmail.example
    gmail_api:
      api_url: API_URL
      oauth2:
        client_id: gmail
        client_secret: {env: A}
        refresh_token: {env: B}
        token_url: GMAIL_TOKEN_URL
"""


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://oauth2.googleapis.com/token", False),
        ("http://127.0.0.1:8080/token", False),
        ("http://localhost/token", False),
        ("http://[::1]:8080/token", False),
        ("http://oauth2.example/token", True),
        ("http://10.0.0.1/token", True),
        ("ftp://oauth2.example/token", True),
        ("oauth2.example/token", True),
    ],
)
def test_oauth2_and_api_urls_need_tls_off_this_machine(
    tmp_path: Path, url: str, refused: bool
) -> None:
    good = "https://svc.example/x"
    fields = ("POP3_TOKEN_URL", "API_URL", "GMAIL_TOKEN_URL")
    for index, field in enumerate(fields):
        text = GMAIL
        for other in fields:
            text = text.replace(other, url if other == field else good)
        path = _write(tmp_path, text)
        if not refused:
            load_config(path)
            continue
        with pytest.raises(InputError) as caught:
            load_config(path)
        report = caught.value.to_text()
        assert "OAuth2 secrets or mail without TLS" in report
        where = ["pop3.oauth2.token_url", "gmail_api.api_url"]
        where.append("gmail_api.oauth2.token_url")
        assert f"accounts[0].{where[index]}" in report
        assert report.count("without TLS") == 1


def test_secret_sources_read_files_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "s"
    secret.write_text("from-file\n")
    assert SecretSource(file=str(secret)).read() == "from-file"
    monkeypatch.setenv("SIDECAR_TEST_SECRET", "from-env")
    assert SecretSource(env="SIDECAR_TEST_SECRET").read() == "from-env"
    with pytest.raises(InputError, match="is not set"):
        SecretSource(env="SIDECAR_TEST_MISSING").read()


def test_render_from_the_example_specs(stacks_dir: Path) -> None:
    specs = [loaded.spec for loaded in load_specs([stacks_dir])]
    text = render_sidecar_config(specs)
    assert text == render_sidecar_config(list(reversed(specs))), "deterministic"
    data = yaml.safe_load(text)
    config = SidecarConfig.model_validate(data)
    jobs = [(s.domain, j) for s in specs for j in s.fetch]
    assert [a.name for a in config.accounts] == [f"{d}-{j.name}" for d, j in jobs]
    first = config.accounts[0]
    domain, job = jobs[0]
    assert first.deliver_to == job.deliver_to
    assert first.keep_days == job.keep_days
    assert job.pop3.password is not None
    name = job.pop3.password.removeprefix("secret:")
    assert first.pop3.password == SecretSource(file=f"/etc/mailbridge/secrets/{name}")
    assert not re.search(r"['\" ]secret:[a-z]", text), "no spec reference left"


def test_an_smtp_relay_login_is_the_rendered_envelope_sender(
    stacks_dir: Path,
) -> None:
    """The host's own 587 refuses a login sending as a foreign Return-Path,
    so a rendered smtp job sends as its login's address."""
    spec = next(s.spec for s in load_specs([stacks_dir]) if s.spec.fetch)
    job = spec.fetch[0]
    relayed = job.model_copy(
        update={
            "name": "relayed",
            "via": Via.SMTP,
            "gmail_api": None,
            "smtp": SpecSMTPTarget(
                host="mx1.example.com",
                username="Alice@Example.com",
                password="secret:alice-password",
            ),
        }
    )
    anonymous = relayed.model_copy(
        update={"name": "anonymous", "smtp": SpecSMTPTarget(host="relay.example")}
    )
    spec = spec.model_copy(update={"fetch": [relayed, anonymous]})
    config = SidecarConfig.model_validate(yaml.safe_load(render_sidecar_config([spec])))
    smtp = {a.name.rsplit("-", 1)[1]: a.smtp for a in config.accounts}
    assert smtp["relayed"] is not None and smtp["anonymous"] is not None
    assert smtp["relayed"].sender == "alice@example.com"
    assert smtp["relayed"].username == "Alice@Example.com"
    assert smtp["anonymous"].sender is None


def test_cli_reports_bad_config_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, GOOD.replace("version: 1", "version: 7"))
    with pytest.raises(SystemExit) as exit_info:
        main(["sidecar", "run", "--once", "--config", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "sidecar.yaml:1:" in err and "Traceback" not in err


GOOD_TOML = """\
version = 1

[state]
backend = "sqlite"
path = "/var/lib/mailbridge/sidecar.db"

[[accounts]]
name = "isp"
deliver_to = "alice@gmail.example"
via = "smtp"
smtp = { host = "mx1.example.com" }

[accounts.pop3]
host = "pop.isp.example"
username = "alice"
password = { file = "/etc/mailbridge/secrets/isp-pop3" }

[[accounts]]
name = "other"
deliver_to = "bob@gmail.example"
via = "smtp"
smtp = { host = "mx1.example.com" }

[accounts.pop3]
host = "pop.isp.example"
username = "bob"
password = { env = "BOB_POP3" }
"""


def test_toml_loads_like_yaml(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.toml"
    path.write_text(GOOD_TOML)
    config = load_config(path)
    assert [a.name for a in config.accounts] == ["isp", "other"]
    assert config.accounts[1].pop3.password == SecretSource(env="BOB_POP3")
    yaml_config = load_config(_write(tmp_path, GOOD))
    assert config.accounts[0] == yaml_config.accounts[0]


def test_toml_problems_are_located(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.toml"
    path.write_text(
        GOOD_TOML.replace('password = { env = "BOB_POP3" }', 'password = "pw"')
    )
    with pytest.raises(InputError) as caught:
        load_config(path)
    report = caught.value.to_text()
    assert "sidecar.toml:27:1:" in report and "accounts[1].pop3.password" in report

    path.write_text(GOOD_TOML.replace('via = "smtp"', "via = smtp", 1))
    with pytest.raises(InputError) as caught:
        load_config(path)
    assert "sidecar.toml:10:" in caught.value.to_text()
    assert "not valid TOML" in caught.value.to_text()
