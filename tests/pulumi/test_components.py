"""The components under Pulumi's mocks, with the dynamic providers' create run."""

from __future__ import annotations

import stat
from pathlib import Path

import pulumi
import pytest

from tests.pulumi.conftest import EXAMPLE_SECRETS, Deploy
from tests.pulumi.mocks import monitor_urns


def test_example_domain_writes_zone_and_host_tree(
    project: Path, deploy: Deploy
) -> None:
    mocks = deploy(project, peers=["stacks/example.net.yaml"])

    zone = (project / "build/dns/example.com.zone").read_text()
    pair = mocks.of_type(":DkimKeyPair")[0]
    assert pair.outputs["public_value"].startswith("v=DKIM1; k=rsa; p=")
    key_b64 = pair.outputs["public_value"].split("p=")[1]
    assert key_b64[:40] in zone.replace('" "', "")
    assert "s2026a._domainkey" in zone
    assert "placeholder" not in zone

    host = project / "build/host"
    assert "virtual_alias_maps" in (host / "etc/postfix/main.cf").read_text()
    key_file = host / "etc/opendkim/keys/example.com/s2026a.key"
    assert key_file.read_text() == pair.outputs["private_key"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o640
    passwd = host / "etc/dovecot/passwd"
    assert "alice@example.com" in passwd.read_text()
    assert EXAMPLE_SECRETS["alice-password"] not in passwd.read_text()
    assert EXAMPLE_SECRETS["srs-2026a"] in (host / "etc/postsrsd.secret").read_text()


def test_type_tokens_and_parents(project: Path, deploy: Deploy) -> None:
    mocks = deploy(project)

    components = {
        r.type for r in mocks.registrations if not r.type.startswith("pulumi-python")
    }
    assert components == {
        "mailbridge:domain:MailDomain",
        "mailbridge:dkim:DkimKey",
        "mailbridge:dns:DnsRecords",
        "mailbridge:host:MailHost",
    }
    # A URN's type is `<parent type>$<type>`: every resource has a parent
    # component except the domain (below the stack), each the right one.
    parents = {}
    for urn in monitor_urns():
        qualified, name = urn.split("::")[2:4]
        parents[name] = qualified.rsplit("$", 1)[0] if "$" in qualified else None
    assert parents.pop("example.com") == "pulumi:pulumi:Stack"
    assert set(parents.values()) == {
        "mailbridge:domain:MailDomain",
        "mailbridge:dkim:DkimKey",
        "mailbridge:dns:DnsRecords",
        "mailbridge:host:MailHost",
    }
    assert parents["example.com-dkim-s2026a-pair"] == "mailbridge:dkim:DkimKey"
    assert parents["example.com-dns-zone"] == "mailbridge:dns:DnsRecords"
    assert parents["example.com-host-files"] == "mailbridge:host:MailHost"


def test_secrets_are_secret_inputs(project: Path, deploy: Deploy) -> None:
    mocks = deploy(project)

    files = mocks.of_type(":HostFiles")[0]
    assert "secret_files" in files.secret_inputs
    assert "files" not in files.secret_inputs
    plain_text = repr(files.inputs["files"])
    for value in EXAMPLE_SECRETS.values():
        assert value not in plain_text
    secret_paths = set(files.inputs["secret_files"])
    assert {"etc/postsrsd.secret", "etc/dovecot/passwd"} <= secret_paths
    assert "etc/opendkim/keys/example.com/s2026a.key" in secret_paths
    assert "etc/postfix/main.cf" in files.inputs["files"]
    domain = mocks.of_type(":MailDomain")[0]
    assert domain.inputs["mailbridgeSpec"].startswith("{")
    assert "srs-2026a-value" not in domain.inputs["mailbridgeSpec"]


def test_published_selector_does_not_sign(project: Path, deploy: Deploy) -> None:
    spec = project / "stacks/example.com.yaml"
    spec.write_text(
        spec.read_text().replace(
            "    - {name: s2026a, algorithm: rsa, bits: 2048}",
            "    - {name: s2026a, algorithm: rsa, bits: 2048}\n"
            "    - {name: s2026b, algorithm: ed25519, state: published}",
        )
    )
    mocks = deploy(project)

    pairs = {r.inputs["selector"]: r for r in mocks.of_type(":DkimKeyPair")}
    assert set(pairs) == {"s2026a", "s2026b"}
    assert pairs["s2026b"].outputs["public_value"].startswith("v=DKIM1; k=ed25519;")
    zone = (project / "build/dns/example.com.zone").read_text()
    assert "s2026b._domainkey" in zone
    keys = project / "build/host/etc/opendkim/keys/example.com"
    assert sorted(p.name for p in keys.iterdir()) == ["s2026a.key"]
    key_table = (project / "build/host/etc/opendkim/KeyTable").read_text()
    assert "s2026a" in key_table and "s2026b" not in key_table
    confirmations = mocks.of_type(":DkimConfirmation")
    assert {c.inputs["name"] for c in confirmations} == {
        "s2026a._domainkey.example.com",
        "s2026b._domainkey.example.com",
    }
    assert all(c.outputs["confirmed"] for c in confirmations)


def test_bad_spec_stops_the_run_with_its_problems(
    project: Path, deploy: Deploy
) -> None:
    spec = project / "stacks/example.com.yaml"
    spec.write_text(spec.read_text().replace("domain: example.com", "domain: -bad-"))
    with pytest.raises(pulumi.RunError) as err:
        deploy(project)
    assert "example.com.yaml:3" in str(err.value)
    assert "domain" in str(err.value)


def test_spf_over_the_lookup_limit_stops_the_run_with_its_problem(
    project: Path, deploy: Deploy
) -> None:
    spec = project / "stacks/example.com.yaml"
    many = ", ".join(f"spf{i}.example.org" for i in range(11))
    spec.write_text(
        spec.read_text().replace("include: [_spf.google.com]", f"include: [{many}]")
    )
    with pytest.raises(pulumi.RunError) as err:
        deploy(project)
    assert "example.com.yaml:41" in str(err.value)
    assert "11 DNS lookups" in str(err.value)
    assert "fix:" in str(err.value)


def test_a_tsig_secret_that_is_not_base64_stops_the_run_without_its_value(
    project: Path, deploy: Deploy
) -> None:
    spec = project / "stacks/example.com.yaml"
    spec.write_text(
        spec.read_text()
        + "dns:\n  backend: rfc2136\n  server: 127.0.0.1\n"
        + '  tsig: {name: deploy.example.com, secret: "secret:tsig"}\n'
    )
    with pytest.raises(pulumi.RunError) as err:
        deploy(project, secrets={**EXAMPLE_SECRETS, "tsig": "not base64 at all!"})
    assert "TSIG secret secret:tsig is not base64" in str(err.value)
    assert "not base64 at all!" not in str(err.value)


def test_second_example_signs_with_both_algorithms(
    project: Path, deploy: Deploy
) -> None:
    mocks = deploy(project, spec="stacks/example.net.yaml")

    pairs = {r.inputs["selector"]: r.outputs for r in mocks.of_type(":DkimKeyPair")}
    assert pairs["s2026a"]["public_value"].startswith("v=DKIM1; k=rsa;")
    assert pairs["s2026b"]["public_value"].startswith("v=DKIM1; k=ed25519;")
    keys = project / "build/host/etc/opendkim/keys/example.net"
    assert sorted(p.name for p in keys.iterdir()) == ["s2026a.key", "s2026b.key"]
    zone = (project / "build/dns/example.net.zone").read_text()
    assert "s2026a._domainkey" in zone and "s2026b._domainkey" in zone


def test_missing_secrets_stop_the_run_naming_each(
    project: Path, deploy: Deploy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbridge.secrets import env_name

    secrets = dict(EXAMPLE_SECRETS)
    secrets.pop("alice-password")
    secrets.pop("srs-2026a")
    for name in ("alice-password", "srs-2026a"):
        monkeypatch.delenv(env_name(name), raising=False)
    with pytest.raises(pulumi.RunError) as caught:
        deploy(project, secrets=secrets)
    text = str(caught.value)
    assert "example.com.yaml: error:" in text
    assert "secret values are missing: alice-password, srs-2026a" in text
    assert "--path mailbridge:secrets.NAME" in text
    assert "MAILBRIDGE_SECRET_ALICE_PASSWORD, MAILBRIDGE_SECRET_SRS_2026A" in text
    assert not (project / "build/host").exists()


def test_a_secret_the_host_cannot_use_stops_the_run_cleanly(
    project: Path, deploy: Deploy
) -> None:
    """bcrypt hashes at most 72 bytes: the renderer's problem, shown as such."""
    secrets = {**EXAMPLE_SECRETS, "alice-password": "x" * 100}
    with pytest.raises(pulumi.RunError) as caught:
        deploy(project, secrets=secrets)
    text = str(caught.value)
    assert "the password of alice@example.com is longer than bcrypt can hash" in text
    assert "fix:" in text and "x" * 100 not in text
