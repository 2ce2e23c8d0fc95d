"""DKIM keys: record values match the key, files are private, dkimpy verifies."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import dkim
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailbridge.dns.dkim import (
    DkimKeyPair,
    generate_key,
    generate_missing_keys,
    key_path,
    load_keys,
    public_record_value,
    write_key,
)
from mailbridge.dns.record import Record
from mailbridge.dns.records import build_records, dkim_name
from mailbridge.errors import InputError
from mailbridge.spec.models import DkimAlgorithm, DomainSpec
from tests.dns.helpers import make_spec

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: DKIM round trip\r\n"
    b"Date: Thu, 03 Dec 2026 19:00:00 +0000\r\n"
    b"Message-ID: <roundtrip@example.org>\r\n"
    b"\r\n"
    b"Hello from the DNS tests.\r\n"
)


@pytest.fixture(scope="module")
def rsa_pair() -> DkimKeyPair:
    return generate_key(DkimAlgorithm.RSA, 2048)


@pytest.fixture(scope="module")
def ed_pair() -> DkimKeyPair:
    return generate_key(DkimAlgorithm.ED25519)


def _tags(value: str) -> dict[str, str]:
    return dict(part.strip().split("=", 1) for part in value.split(";"))


def _dkim_spec() -> DomainSpec:
    return make_spec(
        dkim={
            "selectors": [
                {"name": "r1", "algorithm": "rsa", "bits": 2048},
                {"name": "e1", "algorithm": "ed25519", "state": "published"},
            ]
        }
    )


def test_rsa_value_is_the_der_public_key(rsa_pair: DkimKeyPair) -> None:
    tags = _tags(rsa_pair.record_value())
    assert tags["v"] == "DKIM1"
    assert tags["k"] == "rsa"
    key = serialization.load_der_public_key(base64.b64decode(tags["p"]))
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.public_numbers() == rsa_pair.public_key.public_numbers()
    assert key.key_size == 2048


def test_ed25519_value_is_the_raw_key(ed_pair: DkimKeyPair) -> None:
    tags = _tags(ed_pair.record_value())
    assert tags["k"] == "ed25519"
    raw = base64.b64decode(tags["p"])
    assert len(raw) == 32
    key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    assert public_record_value(key) == ed_pair.record_value()


def test_short_rsa_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="2048"):
        generate_key(DkimAlgorithm.RSA, 1024)


def test_write_key_is_private_and_loads_back(
    tmp_path: Path, rsa_pair: DkimKeyPair, ed_pair: DkimKeyPair
) -> None:
    spec = _dkim_spec()
    private = write_key(tmp_path, spec.domain, "r1", rsa_pair)
    write_key(tmp_path, spec.domain, "e1", ed_pair)
    assert private == tmp_path / "example.org" / "r1.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    pub = key_path(tmp_path, spec.domain, "r1", ".pub")
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [
        p.name for p in (tmp_path / "example.org").iterdir() if p.name[0] == "."
    ] == []
    assert load_keys(tmp_path, spec) == {
        "r1": rsa_pair.record_value(),
        "e1": ed_pair.record_value(),
    }


def test_a_public_file_alone_is_enough(tmp_path: Path, ed_pair: DkimKeyPair) -> None:
    spec = _dkim_spec()
    folder = tmp_path / spec.domain
    folder.mkdir()
    (folder / "e1.pub").write_bytes(ed_pair.public_pem())
    assert load_keys(tmp_path, spec) == {"e1": ed_pair.record_value()}


def test_wrong_algorithm_and_mismatched_pub_are_reported(
    tmp_path: Path, rsa_pair: DkimKeyPair, ed_pair: DkimKeyPair
) -> None:
    spec = _dkim_spec()
    write_key(tmp_path, spec.domain, "e1", rsa_pair)
    write_key(tmp_path, spec.domain, "r1", rsa_pair)
    key_path(tmp_path, spec.domain, "r1", ".pub").write_bytes(ed_pair.public_pem())
    with pytest.raises(InputError) as caught:
        load_keys(tmp_path, spec)
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 2
    assert "r1.pub does not belong to r1.key" in messages[0]
    assert "selector e1 is rsa, the spec says ed25519" in messages[1]


def test_broken_key_file_is_an_input_error(tmp_path: Path) -> None:
    spec = _dkim_spec()
    (tmp_path / spec.domain).mkdir()
    (tmp_path / spec.domain / "r1.key").write_text("not a key\n")
    with pytest.raises(InputError) as caught:
        load_keys(tmp_path, spec)
    (problem,) = caught.value.problems
    assert problem.location is not None
    assert problem.location.file.endswith("r1.key")


def test_generate_missing_keys_keeps_existing_ones(
    tmp_path: Path, ed_pair: DkimKeyPair
) -> None:
    spec = _dkim_spec()
    write_key(tmp_path, spec.domain, "e1", ed_pair)
    written = generate_missing_keys(tmp_path, spec)
    assert [p.name for p in written] == ["r1.key"]
    assert generate_missing_keys(tmp_path, spec) == []
    keys = load_keys(tmp_path, spec)
    assert keys["e1"] == ed_pair.record_value()
    assert _tags(keys["r1"])["k"] == "rsa"


def _dnsfunc(records: list[Record]):  # type: ignore[no-untyped-def]
    """Answers dkimpy's TXT queries from the built records, as DNS would."""

    def lookup(name: bytes | str, timeout: int = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        for record in records:
            if record.name == text.rstrip("."):
                rdata = dns.rdata.from_text(
                    dns.rdataclass.IN, dns.rdatatype.TXT, record.values[0]
                )
                return b"".join(rdata.strings)  # type: ignore[attr-defined]
        return None

    return lookup


def test_dkimpy_verifies_against_the_published_value(
    tmp_path: Path, rsa_pair: DkimKeyPair, ed_pair: DkimKeyPair
) -> None:
    spec = _dkim_spec()
    write_key(tmp_path, spec.domain, "r1", rsa_pair)
    write_key(tmp_path, spec.domain, "e1", ed_pair)
    records = build_records(spec, load_keys(tmp_path, spec))
    dnsfunc = _dnsfunc(records)
    assert dnsfunc(dkim_name("r1", spec.domain) + ".") is not None

    rsa_pem = key_path(tmp_path, spec.domain, "r1", ".key").read_bytes()
    signed = dkim.sign(MESSAGE, b"r1", b"example.org", rsa_pem) + MESSAGE
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    assert not dkim.verify(signed.replace(b"Hello", b"Jello"), dnsfunc=dnsfunc)

    # dkimpy signs Ed25519 with the raw 32-byte seed in base64 (RFC 8463).
    private = ed_pair.private_key
    seed = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    signed = (
        dkim.sign(
            MESSAGE,
            b"e1",
            b"example.org",
            base64.b64encode(seed),
            signature_algorithm=b"ed25519-sha256",
        )
        + MESSAGE
    )
    assert dkim.verify(signed, dnsfunc=dnsfunc)


def test_signature_fails_against_another_key(
    tmp_path: Path, rsa_pair: DkimKeyPair
) -> None:
    spec = make_spec(dkim={"selectors": [{"name": "r1"}]})
    other = generate_key(DkimAlgorithm.RSA, 2048)
    records = build_records(spec, {"r1": other.record_value()})
    signed = dkim.sign(MESSAGE, b"r1", b"example.org", rsa_pair.private_pem())
    assert not dkim.verify(signed + MESSAGE, dnsfunc=_dnsfunc(records))


def test_missing_key_gives_a_marked_placeholder(tmp_path: Path) -> None:
    spec = _dkim_spec()
    records = build_records(spec, load_keys(tmp_path, spec), keys_dir=tmp_path)
    dkim_records = [r for r in records if "._domainkey." in r.name]
    assert [r.name for r in dkim_records] == [
        "r1._domainkey.example.org",
        "e1._domainkey.example.org",
    ]
    assert all(r.placeholder for r in dkim_records)
    assert dkim_records[0].texts() == ["v=DKIM1; k=rsa; p="]
    assert dkim_records[1].texts() == ["v=DKIM1; k=ed25519; p="]
    assert dkim_records[0].reason.startswith(f"placeholder: no key found in {tmp_path}")
    assert "mailbridge records --generate-keys" in dkim_records[0].reason
