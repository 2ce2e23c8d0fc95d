"""DKIM keys: generate, store, load, and their public TXT values.

Keys live in one folder per domain: `<keys_dir>/<domain>/<selector>.key`
holds the private key (PEM, PKCS#8, mode 0600) and `<selector>.pub` the
public key (PEM, SubjectPublicKeyInfo). Either file is enough to publish
the record; the signer needs the `.key`.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailbridge.errors import InputError, Location, Problem
from mailbridge.fsutil import write_atomic
from mailbridge.spec.models import DkimAlgorithm, DomainSpec, Selector

log = logging.getLogger(__name__)

DkimPublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
DkimPrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# RFC 8301 section 3.2: signers use RSA keys of at least 2048 bits.
MIN_RSA_BITS = 2048
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


@dataclass(frozen=True)
class DkimKeyPair:
    """A private DKIM key; the public half and the TXT value derive from it."""

    algorithm: DkimAlgorithm
    private_key: DkimPrivateKey

    @property
    def public_key(self) -> DkimPublicKey:
        return self.private_key.public_key()

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )

    def record_value(self) -> str:
        return public_record_value(self.public_key)


def generate_key(
    algorithm: DkimAlgorithm | str = DkimAlgorithm.RSA, bits: int = MIN_RSA_BITS
) -> DkimKeyPair:
    """A new key: RSA of `bits` (at least 2048) or Ed25519 (bits ignored)."""
    algorithm = DkimAlgorithm(algorithm)
    if algorithm == DkimAlgorithm.ED25519:
        return DkimKeyPair(algorithm, ed25519.Ed25519PrivateKey.generate())
    if bits < MIN_RSA_BITS:
        raise ValueError(f"RSA DKIM keys need at least {MIN_RSA_BITS} bits (RFC 8301)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return DkimKeyPair(algorithm, key)


def public_record_value(public_key: DkimPublicKey) -> str:
    """The DKIM key record text (RFC 6376 section 3.6.1).

    RSA publishes the DER SubjectPublicKeyInfo; Ed25519 publishes the raw
    32-byte key (RFC 8463 section 4.2), both in base64.
    """
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def placeholder_value(algorithm: DkimAlgorithm | str = DkimAlgorithm.RSA) -> str:
    """A key record with an empty `p=`: RFC 6376 reads it as a revoked key."""
    return f"v=DKIM1; k={DkimAlgorithm(algorithm)}; p="


def key_path(keys_dir: Path, domain: str, selector: str, suffix: str) -> Path:
    return keys_dir / domain / f"{selector}{suffix}"


def _key_problem(
    path: Path,
    message: str,
    *,
    expected: str | None = None,
    found: str | None = None,
    fix: str | None = None,
) -> InputError:
    problem = Problem(
        message,
        location=Location(str(path)),
        expected=expected,
        found=found,
        fix=fix,
        rule="dkim-key",
    )
    return InputError([problem])


def _read_private(path: Path) -> DkimKeyPair:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise _key_problem(
            path,
            f"cannot read the DKIM private key: {err}",
            expected="an unencrypted PEM private key (PKCS#8)",
            fix="regenerate it with `mailbridge records SPEC --generate-keys` "
            "after moving the broken file away",
        ) from err
    if isinstance(key, rsa.RSAPrivateKey):
        return DkimKeyPair(DkimAlgorithm.RSA, key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return DkimKeyPair(DkimAlgorithm.ED25519, key)
    raise _key_problem(path, "the DKIM key is neither RSA nor Ed25519")


def _read_public(path: Path) -> DkimPublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, UnsupportedAlgorithm) as err:
        raise _key_problem(
            path,
            f"cannot read the DKIM public key: {err}",
            expected="a PEM public key (-----BEGIN PUBLIC KEY-----)",
        ) from err
    if isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return key
    raise _key_problem(path, "the DKIM key is neither RSA nor Ed25519")


def _algorithm_of(key: DkimPublicKey) -> DkimAlgorithm:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return DkimAlgorithm.ED25519
    return DkimAlgorithm.RSA


def load_public_key(keys_dir: Path, domain: str, selector: str) -> DkimPublicKey | None:
    """The selector's public key from its `.key` or `.pub`; None if neither exists.

    When both exist they must hold the same key.
    """
    private = key_path(keys_dir, domain, selector, PRIVATE_SUFFIX)
    public = key_path(keys_dir, domain, selector, PUBLIC_SUFFIX)
    key: DkimPublicKey | None = None
    if private.exists():
        key = _read_private(private).public_key
    if public.exists():
        published = _read_public(public)
        if key is not None and public_record_value(key) != public_record_value(
            published
        ):
            raise _key_problem(
                public,
                f"{public.name} does not belong to {private.name}",
                fix=f"delete {public} so it is derived from the private key again",
            )
        key = published
    return key


def _check_selector(path: Path, selector: Selector, key: DkimPublicKey) -> None:
    found = _algorithm_of(key)
    if found != selector.algorithm:
        raise _key_problem(
            path,
            f"the key of selector {selector.name} is {found}, "
            f"the spec says {selector.algorithm}",
            expected=f"a {selector.algorithm} key",
            found=f"a {found} key",
            fix="use a new selector name for a new algorithm",
        )
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise _key_problem(
            path,
            f"the key of selector {selector.name} has {key.key_size} bits",
            expected=f"at least {MIN_RSA_BITS} bits (RFC 8301)",
            fix="generate a new key under a new selector name",
        )


def load_keys(keys_dir: Path, spec: DomainSpec) -> dict[str, str]:
    """Selector name -> public TXT value, for each selector that has a key.

    Selectors without a key file are left out (they get a placeholder
    record). Every unreadable or mismatched key is reported together.
    """
    values: dict[str, str] = {}
    if spec.dkim is None:
        return values
    problems: list[Problem] = []
    for selector in spec.dkim.selectors:
        try:
            key = load_public_key(keys_dir, spec.domain, selector.name)
            if key is None:
                log.info("dkim selector=%s no key in %s", selector.name, keys_dir)
                continue
            _check_selector(keys_dir / spec.domain, selector, key)
        except InputError as err:
            problems.extend(err.problems)
            continue
        values[selector.name] = public_record_value(key)
    if problems:
        raise InputError(problems)
    return values


def write_key(keys_dir: Path, domain: str, selector: str, pair: DkimKeyPair) -> Path:
    """Store a key pair: `.key` with mode 0600, `.pub` with 0644; returns `.key`.

    The private key file is created 0600 before any byte is written, and
    appears under its name only when complete.
    """
    folder = keys_dir / domain
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = key_path(keys_dir, domain, selector, PRIVATE_SUFFIX)
    write_atomic(private, pair.private_pem(), 0o600)
    public = key_path(keys_dir, domain, selector, PUBLIC_SUFFIX)
    write_atomic(public, pair.public_pem(), 0o644)
    log.info("dkim selector=%s domain=%s key written to %s", selector, domain, private)
    return private


def missing_selectors(keys_dir: Path, spec: DomainSpec) -> list[Selector]:
    """Selectors of the spec with neither a `.key` nor a `.pub` file."""
    if spec.dkim is None:
        return []
    return [
        sel
        for sel in spec.dkim.selectors
        if not any(
            key_path(keys_dir, spec.domain, sel.name, suffix).exists()
            for suffix in (PRIVATE_SUFFIX, PUBLIC_SUFFIX)
        )
    ]


def generate_missing_keys(keys_dir: Path, spec: DomainSpec) -> list[Path]:
    """Generate and store a key for each selector that has none yet.

    Existing keys are never replaced: a published key stays valid.
    """
    written = []
    for sel in missing_selectors(keys_dir, spec):
        pair = generate_key(sel.algorithm, sel.bits)
        written.append(write_key(keys_dir, spec.domain, sel.name, pair))
    return written
