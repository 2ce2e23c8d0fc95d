"""Dovecot password hashes (BLF-CRYPT) that stay the same for the same input.

A render must give byte-identical files for the same spec and secrets, so
the bcrypt salt cannot be random. It is derived instead: the first 16 bytes
of HMAC-SHA256(key=password, message=address). The trade-off: the salt is
still unique per address and unknown to anyone without the password, so
precomputed tables do not help; but a hash only changes when the password
(or the address, or the cost) does, so two renders reveal whether the
password changed between them. Dovecot verifies the result with its own
BLF-CRYPT scheme (listed by `doveadm pw -l`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt

from mailbridge.errors import InputError

SCHEME = "BLF-CRYPT"
# bcrypt reads at most 72 bytes of a password and refuses longer ones.
MAX_PASSWORD_BYTES = 72
_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TO_BCRYPT = bytes.maketrans(_STANDARD, _BCRYPT)


def derived_salt(password: str, address: str, cost: int) -> bytes:
    """A bcrypt salt string (`$2y$COST$` and 22 characters) for one mailbox."""
    digest = hmac.new(password.encode(), address.encode(), hashlib.sha256).digest()
    encoded = base64.b64encode(digest[:16])[:22].translate(_TO_BCRYPT)
    return b"$2y$%02d$" % cost + encoded


def hash_password(password: str, address: str, cost: int = 12) -> str:
    """`{BLF-CRYPT}$2y$...` for `password` of mailbox `address`."""
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        raise InputError.single(
            f"the password of {address} is longer than bcrypt can hash",
            expected=f"at most {MAX_PASSWORD_BYTES} bytes",
            found=f"{len(raw)} bytes",
            fix="choose a shorter password (a 32-character random one is plenty)",
        )
    hashed = bcrypt.hashpw(raw, derived_salt(password, address, cost))
    return "{" + SCHEME + "}" + hashed.decode()
