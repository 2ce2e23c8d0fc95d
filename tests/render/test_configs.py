"""The real programs accept the rendered files of the example specs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.render import HostOptions, render_host, write_tree
from mailbridge.secrets import SecretStore
from mailbridge.spec import load_specs
from tests.render.hosts import make_dkim_key, make_tls
from tests.render.test_golden import SECRETS
from tests.servers.common import remove_dir, run, server_dir
from tests.servers.postfix import (
    allowed_config_directory,
    postconf_n,
    postfix_check,
    prepare_runtime,
)

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module", params=["example.com", "example.net"])
def rendered(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A production render of one example spec, below a test folder."""
    stacks = Path(__file__).resolve().parents[2] / "stacks"
    spec = next(s.spec for s in load_specs([stacks]) if s.spec.domain == request.param)
    root = server_dir("configs")
    options = HostOptions(root=str(root), password_cost=4)
    write_tree(render_host([spec], SecretStore(SECRETS, environ={}), options), root)
    host = spec.mail_host.hostname
    make_tls(
        host,
        Path(options.cert_path(host)),
        Path(options.key_path(host)),
    )
    assert spec.dkim is not None
    for sel in spec.dkim.selectors:
        make_dkim_key(root / f"etc/opendkim/keys/{spec.domain}/{sel.name}.key", None)
    prepare_runtime(root)
    try:
        with allowed_config_directory(root / "etc/postfix"):
            yield root
    finally:
        remove_dir(root)


def test_postfix_check_reports_nothing(rendered: Path) -> None:
    done = postfix_check(rendered / "etc/postfix")

    assert done.returncode == 0
    assert done.stdout + done.stderr == ""


def test_postconf_reports_nothing(rendered: Path) -> None:
    done = postconf_n(rendered / "etc/postfix")

    assert done.returncode == 0
    assert done.stderr == ""
    assert "smtp_tls_security_level = dane" in done.stdout


def test_doveconf_parses(rendered: Path) -> None:
    done = run(["doveconf", "-c", str(rendered / "etc/dovecot/dovecot.conf"), "-n"])

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "ssl = required" in done.stdout


def test_opendkim_accepts_its_configs(rendered: Path) -> None:
    configs = sorted((rendered / "etc").glob("opendkim*.conf"))

    assert configs
    for conf in configs:
        done = run(["opendkim", "-n", "-x", str(conf)])
        assert done.returncode == 0, done.stdout + done.stderr


def test_rspamd_accepts_its_config(rendered: Path) -> None:
    done = run(
        [
            "rspamadm",
            f"--var=LOCAL_CONFDIR={rendered / 'etc/rspamd'}",
            "configtest",
            "-c",
            "/etc/rspamd/rspamd.conf",
        ]
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "syntax OK" in done.stdout


def test_logins_need_tls_1_2_on_both_submission_ports(rendered: Path) -> None:
    main_cf = run(
        ["postconf", "-c", str(rendered / "etc/postfix"), "-h"]
        + [
            "smtpd_tls_mandatory_protocols",
            "smtpd_tls_auth_only",
        ]
    )
    services = run(["postconf", "-c", str(rendered / "etc/postfix"), "-P"])

    assert main_cf.stdout.split() == [">=TLSv1.2", "yes"]
    for port in ("587", "465"):
        assert f"{port}/inet/smtpd_tls_security_level = encrypt" in services.stdout
        assert f"{port}/inet/smtpd_sasl_auth_enable = yes" in services.stdout
    assert "25/inet/smtpd_sasl_auth_enable" not in services.stdout


def test_mail_to_gmail_is_slow_and_retries_back_off(rendered: Path) -> None:
    """Forwarding into Gmail, as Postfix itself reads the rendered settings."""
    config = rendered / "etc/postfix"
    names = [
        "gmail_destination_concurrency_limit",
        "gmail_destination_rate_delay",
        "gmail_initial_destination_concurrency",
        "minimal_backoff_time",
        "maximal_backoff_time",
        "maximal_queue_lifetime",
        "transport_maps",
    ]
    done = run(["postconf", "-c", str(config), "-h", *names])
    values = dict(zip(names, done.stdout.splitlines(), strict=True))
    transport = values.pop("transport_maps")
    services = run(["postconf", "-c", str(config), "-M", "gmail/unix"])

    assert done.returncode == 0, done.stderr
    assert values == {
        "gmail_destination_concurrency_limit": "1",
        "gmail_destination_rate_delay": "1s",
        "gmail_initial_destination_concurrency": "1",
        "minimal_backoff_time": "300s",
        "maximal_backoff_time": "4000s",
        "maximal_queue_lifetime": "5d",
    }
    assert services.stdout.split()[:8] == [
        *("gmail", "unix", "-", "-", "n", "-", "-", "smtp")
    ]
    for domain in ("gmail.com", "googlemail.com"):
        lookup = run(["postmap", "-c", str(config), "-q", domain, transport])
        assert lookup.stdout.strip() == "gmail:", (domain, lookup.stderr)


def test_submission_ports_check_the_sender_login(rendered: Path) -> None:
    config = rendered / "etc/postfix"
    services = run(["postconf", "-c", str(config), "-P"]).stdout
    login_map = run(["postconf", "-c", str(config), "-h", "smtpd_sender_login_maps"])

    for port in ("587", "465"):
        assert (
            f"{port}/inet/smtpd_sender_restrictions = "
            "reject_authenticated_sender_login_mismatch"
        ) in services
    assert "465/inet/smtpd_tls_wrappermode = yes" in services
    assert login_map.stdout.strip().startswith("texthash:")
    assert "25/inet/smtpd_sender_restrictions" not in services
