"""What the program computes from a spec: secret files, live records, local state."""

from __future__ import annotations

from pathlib import Path

import yaml

from mailbridge.deploy.localstate import main as localstate_main
from mailbridge.deploy.localstate import merge, missing_secrets
from mailbridge.deploy.program import (
    holds_secret,
    live_records,
    record_key,
    render_split,
    secret_refs,
    secret_values,
)
from mailbridge.render import HostOptions, RenderedFile
from mailbridge.secrets import SecretStore, env_name
from mailbridge.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "stacks/example.com.yaml").spec
VALUES = {
    "alice-password": "alice-pw-123456",
    "archive-password": "archive-pw-123456",
    "gmail-client-secret": "client-secret-123456",
    "gmail-refresh-token": "refresh-token-123456",
    "isp-pop3": "isp-pop3-123456",
    "srs-2026a": "srs-secret-123456",
}


def test_secret_refs_lists_every_reference_once() -> None:
    assert [r.removeprefix("secret:") for r in secret_refs(SPEC)] == sorted(VALUES)


def test_holds_secret_by_mode_or_content() -> None:
    assert holds_secret(RenderedFile(b"x", 0o600), [])
    assert holds_secret(RenderedFile(b"x", 0o640, "dovecot"), [])
    assert not holds_secret(RenderedFile(b"relayhost =", 0o644), ["s3cret"])
    assert holds_secret(RenderedFile(b"password = s3cret", 0o644), ["s3cret"])


def test_render_split_keeps_secrets_out_of_plain_files() -> None:
    split = render_split([SPEC], VALUES, HostOptions(password_cost=4))
    assert "etc/postfix/main.cf" in split.plain
    assert {"etc/dovecot/passwd", "etc/postsrsd.secret"} <= set(split.secret)
    for item in split.plain.values():
        for value in VALUES.values():
            assert value.encode() not in item.content


def test_secrets_from_the_environment_are_searched_too() -> None:
    """A value given as MAILBRIDGE_SECRET_<NAME> is as secret as a config one."""
    environ = {env_name(name): value for name, value in VALUES.items()}
    store = SecretStore(values={"isp-pop3": "from-config-123456"}, environ=environ)
    found = secret_values([SPEC], store)
    assert "from-config-123456" in found
    assert set(VALUES.values()) - {VALUES["isp-pop3"]} <= set(found)
    assert VALUES["isp-pop3"] not in found  # the config's value wins
    split = render_split([SPEC], {}, HostOptions(password_cost=4), environ=environ)
    assert {"etc/dovecot/passwd", "etc/postsrsd.secret"} <= set(split.secret)
    for item in split.plain.values():
        for value in VALUES.values():
            assert value.encode() not in item.content
    # The value search itself: a world-readable file that happens to hold an
    # environment secret's value goes to the secret side.
    leaky = {**environ, env_name("isp-pop3"): "compatibility_level = 3.6"}
    split = render_split([SPEC], {}, HostOptions(password_cost=4), environ=leaky)
    assert "etc/postfix/main.cf" in split.secret


def test_live_records_drop_retired_selectors_only() -> None:
    public = {"s2026a": "v=DKIM1; k=rsa; p=AAAA"}
    live = [record_key(r) for r in live_records(SPEC, public)]
    assert "TXT s2026a._domainkey.example.com" in live
    gone = [record_key(r) for r in live_records(SPEC, public, ["s2026a"])]
    assert set(live) - set(gone) == {"TXT s2026a._domainkey.example.com"}
    assert not any(r.placeholder for r in live_records(SPEC, public))


def test_local_state_merge_keeps_salt_and_secrets(tmp_path: Path) -> None:
    tracked = {"config": {"mailbridge:spec": "stacks/example.com.yaml"}}
    working = {
        "encryptionsalt": "v1:abc",
        "config": {
            "mailbridge:spec": "old.yaml",
            "mailbridge:secrets": {"srs-2026a": {"secure": "v1:xyz"}},
        },
    }
    merged = merge(tracked, working)
    assert merged["encryptionsalt"] == "v1:abc"
    assert merged["config"]["mailbridge:spec"] == "stacks/example.com.yaml"
    assert merged["config"]["mailbridge:secrets"] == {"srs-2026a": {"secure": "v1:xyz"}}
    spec = ROOT / "stacks/example.com.yaml"
    assert missing_secrets(spec, merged, environ={}) == [
        n for n in sorted(VALUES) if n != "srs-2026a"
    ]
    # A secret given as MAILBRIDGE_SECRET_<NAME> gets no random stand-in.
    environ = {"MAILBRIDGE_SECRET_ALICE_PASSWORD": "from-the-environment"}
    assert "alice-password" not in missing_secrets(spec, merged, environ=environ)

    tracked_file, working_file = tmp_path / "t.yaml", tmp_path / "w/w.yaml"
    tracked_file.write_text(yaml.safe_dump(tracked))
    assert localstate_main(["merge", str(tracked_file), str(working_file)]) == 0
    assert yaml.safe_load(working_file.read_text()) == tracked
    assert localstate_main(["nonsense"]) == 2


def test_the_missing_secrets_fix_sets_the_object_the_program_reads() -> None:
    """Without --path, `mailbridge:secrets.NAME` is a key of its own, unread."""
    import pytest

    from mailbridge.errors import InputError

    with pytest.raises(InputError) as caught:
        SecretStore(values={}, environ={}).require(["secret:alice-password"])
    fix = caught.value.problems[0].fix or ""
    assert "pulumi config set --secret --path mailbridge:secrets.NAME" in fix
    assert "MAILBRIDGE_SECRET_ALICE_PASSWORD" in fix
