"""The host plan: aliases, logins, keys and SRS derived from specs."""

from __future__ import annotations

import subprocess

import pytest

from mailbridge.errors import InputError
from mailbridge.render.host import Alias, build_plan
from mailbridge.render.options import HostOptions
from mailbridge.render.passwords import hash_password
from mailbridge.secrets import SecretStore
from tests.render.hosts import TEST_PASSWORDS
from tests.render.specs import COM, NET, spec

FAST = HostOptions(password_cost=4)


def store(**extra: str) -> SecretStore:
    return SecretStore({**TEST_PASSWORDS, **extra}, environ={})


def test_aliases_put_mailboxes_before_catch_alls() -> None:
    plan = build_plan([spec(COM)], store(), FAST)

    patterns = [a.pattern for a in plan.aliases]
    assert patterns[-1] == "@example.com"
    assert Alias("bob@example.com", ("bob@example.com",)) in plan.aliases
    assert (
        Alias("alice@example.com", ("alice@example.com", "alice.example@gmail.com"))
        in plan.aliases
    )
    assert patterns[:-1] == sorted(patterns[:-1])


def test_domains_with_mailboxes_are_mailbox_domains() -> None:
    options = HostOptions(password_cost=4, hostname="mx1.example.com")
    plan = build_plan([spec(NET), spec(COM)], store(), options)

    assert plan.mailbox_domains == ("example.com",)
    assert plan.alias_domains == ("example.net",)
    assert plan.primary_domain == "example.com"


def test_users_may_send_as_forwarders_that_reach_them() -> None:
    data = dict(COM)
    data["forwarders"] = [{"address": "team@example.com", "to": ["bob@example.com"]}]
    plan = build_plan([spec(data)], store(), FAST)

    logins = {s.address: s.logins for s in plan.sender_logins}
    assert logins["team@example.com"] == ("bob@example.com",)
    assert logins["alice@example.com"] == ("alice@example.com",)


def test_specs_of_different_hosts_are_refused() -> None:
    with pytest.raises(InputError) as err:
        build_plan([spec(COM), spec(NET)], store(), FAST)

    assert "different mail hosts" in err.value.to_text()


def test_every_missing_secret_is_named() -> None:
    with pytest.raises(InputError) as err:
        build_plan([spec(COM)], SecretStore({}, environ={}), FAST)

    text = err.value.to_text()
    for name in ("alice-password", "bob-password", "srs-new", "srs-old"):
        assert name in text


def test_srs_uses_primary_domain_and_keeps_all_secrets_in_order() -> None:
    plan = build_plan([spec(COM)], store(), FAST)

    assert plan.srs is not None
    assert plan.srs.domain == "example.com"
    assert plan.srs.secrets == (TEST_PASSWORDS["srs-new"], TEST_PASSWORDS["srs-old"])
    assert plan.srs.exclude == ("example.com",)


def test_only_active_selectors_sign_and_keys_live_below_root() -> None:
    data = dict(COM)
    data["dkim"] = {
        "selectors": [
            {"name": "old", "state": "retiring"},
            {"name": "new", "state": "active"},
            {"name": "next", "state": "published"},
        ]
    }
    options = HostOptions(root="/srv/host", password_cost=4)
    plan = build_plan([spec(data)], store(), options)

    assert [k.selector for k in plan.dkim_keys] == ["new"]
    assert plan.dkim_keys[0].path == "/srv/host/etc/opendkim/keys/example.com/new.key"


def test_transport_overrides_replace_defaults() -> None:
    options = HostOptions(
        password_cost=4, transport_overrides={"gmail.com": "smtp:[127.0.0.1]:2525"}
    )
    plan = build_plan([spec(COM)], store(), options)

    assert dict(plan.transports) == {
        "gmail.com": "smtp:[127.0.0.1]:2525",
        "googlemail.com": "gmail:",
    }


def test_password_hash_is_stable_and_dovecot_verifies_it() -> None:
    first = hash_password("correct horse", "alice@example.com", cost=4)
    again = hash_password("correct horse", "alice@example.com", cost=4)
    other = hash_password("correct horse", "bob@example.com", cost=4)

    assert first == again
    assert first != other
    assert first.startswith("{BLF-CRYPT}$2y$04$")
    good = subprocess.run(
        ["doveadm", "pw", "-t", first, "-p", "correct horse"],
        capture_output=True,
        text=True,
        check=False,
    )
    bad = subprocess.run(
        ["doveadm", "pw", "-t", first, "-p", "wrong horse"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0 and "(verified)" in good.stdout
    assert bad.returncode != 0


def test_overlong_password_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        hash_password("x" * 73, "alice@example.com", cost=4)

    assert "longer than bcrypt can hash" in err.value.to_text()


def test_a_separate_srs_domain_is_received_here() -> None:
    data = dict(COM)
    data["srs"] = {"domain": "bounce.example.com", "secrets": ["secret:srs-new"]}
    plan = build_plan([spec(data)], store(), FAST)

    assert plan.srs is not None and plan.srs.domain == "bounce.example.com"
    assert "bounce.example.com" in plan.alias_domains


def test_each_key_algorithm_gets_its_own_opendkim() -> None:
    data = dict(COM)
    data["dkim"] = {
        "selectors": [
            {"name": "ed", "algorithm": "ed25519"},
            {"name": "rs", "algorithm": "rsa"},
        ]
    }
    plan = build_plan([spec(data)], store(), FAST)

    signers = {s.name: s for s in plan.signers}
    assert signers["opendkim"].algorithm == "rsa-sha256"
    assert [k.selector for k in signers["opendkim"].keys] == ["rs"]
    assert signers["opendkim-ed25519"].algorithm == "ed25519-sha256"
    assert [k.selector for k in signers["opendkim-ed25519"].keys] == ["ed"]
    assert signers["opendkim-ed25519"].folder == "etc/opendkim/ed25519"
    # rspamd reads only RSA keys in PEM: ARC seals with the RSA one.
    assert [k.selector for k in plan.arc_keys] == ["rs"]
