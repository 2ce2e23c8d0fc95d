"""Each component built on its own under Pulumi's mocks.

The program tests (test_components.py) build them all through MailDomain;
these give each one only its own arguments, so a component that leaned on
something MailDomain happens to do would fail here. The dynamic providers'
`create` runs for real (see tests/pulumi/mocks.py), so files and keys are
real; backends that need a server (rfc2136, ssh) are proven against real
ones in test_engine.py and tests/deploy/.
"""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import pulumi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from components.dkim import DkimKey, DkimKeyArgs
from components.dns import DnsRecords, DnsRecordsArgs
from components.host import MailHost, MailHostArgs
from mailbridge.spec import load_spec
from mailbridge.spec.models import LocalHost, Selector
from tests.pulumi.conftest import EXAMPLE_SECRETS, Deploy


def _seen(outputs: dict[str, pulumi.Output[Any]], into: dict[str, Any]) -> Any:
    """Resolve outputs into `into` as (value, is_secret) pairs."""

    async def gather() -> None:
        for name, output in outputs.items():
            into[name] = (await output.future(), await output.is_secret())

    return pulumi.Output.from_input(gather())


def test_dkim_key_alone_makes_both_kinds_of_key(project: Path, deploy: Deploy) -> None:
    seen: dict[str, Any] = {}

    def program(_: Path) -> Any:
        ed = DkimKey(
            "example.org-ed",
            DkimKeyArgs("example.org", Selector(name="ed", algorithm="ed25519")),
        )
        big = DkimKey(
            "example.org-big",
            DkimKeyArgs("example.org", Selector(name="big", bits=3072)),
        )
        assert ed.record_name == "ed._domainkey.example.org"
        return _seen(
            {
                "ed_private": ed.private_key,
                "ed_public": ed.public_value,
                "big_private": big.private_key,
                "big_public": big.public_value,
                "big_state": big.state,
                "big_retired": big.retired,
            },
            seen,
        )

    mocks = deploy(project, program=program)

    assert sorted(r.name for r in mocks.of_type("mailbridge:dkim:DkimKey")) == [
        "example.org-big",
        "example.org-ed",
    ]
    assert len(mocks.of_type(":DkimKeyPair")) == 2
    ed_pem, ed_secret = seen["ed_private"]
    big_pem, big_secret = seen["big_private"]
    assert ed_secret and big_secret
    assert not seen["big_public"][1]
    ed_key = serialization.load_pem_private_key(ed_pem.encode(), None)
    big_key = serialization.load_pem_private_key(big_pem.encode(), None)
    assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
    assert isinstance(big_key, rsa.RSAPrivateKey) and big_key.key_size == 3072
    # The published value is this very key's public half.
    ed_public = seen["ed_public"][0]
    assert ed_public.startswith("v=DKIM1; k=ed25519; p=")
    raw = ed_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert ed_public.endswith(base64.b64encode(raw).decode())
    assert seen["big_public"][0].startswith("v=DKIM1; k=rsa; p=")
    assert seen["big_state"][0] == "active" and seen["big_retired"][0] is False


def test_dns_records_alone_write_the_fragment_and_confirm_the_key(
    project: Path, deploy: Deploy
) -> None:
    spec = load_spec(project / "stacks/example.com.yaml").spec
    seen: dict[str, Any] = {}

    def program(folder: Path) -> Any:
        (selector,) = spec.dkim.selectors
        key = DkimKey("k", DkimKeyArgs(spec.domain, selector))
        records = DnsRecords(
            "example.com-dns",
            DnsRecordsArgs(spec, {selector.name: key}, project_dir=str(folder)),
        )
        assert "TXT s2026a._domainkey.example.com" in records.record_names
        assert records.zone_path is not None
        return _seen(
            {
                "confirmed": records.confirmed[selector.name],
                "public": key.public_value,
                "path": records.zone_path,
            },
            seen,
        )

    mocks = deploy(project, program=program)

    assert seen["confirmed"][0] is True
    zone_file = Path(seen["path"][0])
    assert zone_file == project / "build/dns/example.com.zone"
    zone = zone_file.read_text().replace('" "', "")
    assert seen["public"][0].split("p=")[1] in zone
    assert "@ 3600 IN MX 10 mx1.example.com." in " ".join(zone.split())
    (confirmation,) = mocks.of_type(":DkimConfirmation")
    assert confirmation.inputs["source"]["kind"] == "zonefile"


def test_mail_host_alone_writes_plain_and_secret_files(
    project: Path, deploy: Deploy
) -> None:
    spec = load_spec(project / "stacks/example.com.yaml").spec
    pem = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"
    seen: dict[str, Any] = {}

    def program(folder: Path) -> Any:
        host = MailHost(
            "example.com-host",
            MailHostArgs(
                [spec],
                LocalHost(root="target"),
                secrets=EXAMPLE_SECRETS,
                dkim_keys={("example.com", "s2026a"): pulumi.Output.secret(pem)},
                project_dir=str(folder),
            ),
        )
        assert host.root == str((folder / "target").resolve())
        return _seen({"paths": host.paths, "changed": host.changed}, seen)

    mocks = deploy(project, program=program)

    root = project / "target"
    key_file = root / "etc/opendkim/keys/example.com/s2026a.key"
    assert key_file.read_text() == pem
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o640
    assert "etc/postfix/main.cf" in seen["paths"][0]
    assert "etc/opendkim/keys/example.com/s2026a.key" in seen["changed"][0]
    (files,) = mocks.of_type(":HostFiles")
    assert files.secret_inputs >= {"secret_files"}
    assert "etc/opendkim/keys/example.com/s2026a.key" in files.inputs["secret_files"]
    assert "etc/postfix/main.cf" in files.inputs["files"]
    plain_text = repr(files.inputs["files"])
    assert pem not in plain_text
    for value in EXAMPLE_SECRETS.values():
        assert value not in plain_text
    assert files.inputs["connection"] == {
        "backend": "local",
        "root": str(root.resolve()),
    }
