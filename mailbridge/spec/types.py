"""Reusable validated types for spec fields: names, addresses, secret refs."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field


class FieldValueError(ValueError):
    """A field value is wrong; carries what was expected and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        expected: str | None = None,
        fix: str | None = None,
        found: str | None = None,
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.fix = fix
        # Said instead of the value itself, when that must not be shown.
        self.found = found


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Names that are not host names (SPF includes, SRV owners) may use '_'.
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_LOCAL_PART = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SECRET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SECRET_PREFIX = "secret:"


def _text(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


@functools.lru_cache(maxsize=4096)
def normalize_hostname(value: str, *, underscore: bool = False) -> str:
    """Lower-case a DNS name, drop one trailing dot, check each label (RFC 1123).

    With `underscore`, labels may hold '_' as DNS names (not host names) may.
    """
    name = value.strip().lower().rstrip(".") if value.strip() != "." else "."
    expected = "a fully qualified host name such as mx1.example.com"
    if not name or name == "." or len(name) > 253:
        raise FieldValueError(f"{value!r} is not a host name", expected=expected)
    labels = name.split(".")
    if len(labels) < 2:
        raise FieldValueError(
            f"{value!r} is not fully qualified",
            expected=expected,
            fix="write the whole name, including its domain",
        )
    if "" in labels:
        raise FieldValueError(
            f"{value!r} has an empty label (two dots in a row)", expected=expected
        )
    for label in labels:
        if not (_DNS_LABEL if underscore else _LABEL).match(label):
            raise FieldValueError(
                f"{value!r} has an invalid label {label!r}",
                expected="labels of letters, digits and inner hyphens, 1-63 long",
                fix=_ascii_fix(name),
            )
    if labels[-1].isdigit():
        raise FieldValueError(
            f"{value!r} looks like an IP address, not a name", expected=expected
        )
    return name


def _ascii_fix(name: str) -> str | None:
    """For a name with non-ASCII letters, its ASCII (IDNA) form to write instead."""
    if name.isascii():
        return None
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return "write the name in ASCII (its xn-- form)"
    return f"write the name in its ASCII form: {ascii_name}"


@functools.lru_cache(maxsize=65536)
def normalize_address(value: str) -> str:
    """Lower-case an email address and check its parts (no display names)."""
    text = value.strip()
    expected = "an address such as alice@example.com"
    if text.count("@") != 1:
        raise FieldValueError(
            f"{value!r} is not an email address",
            expected=expected,
            fix="write one address as name@domain, without a display name or <>",
        )
    local, domain = text.split("@")
    local = local.lower()
    if local == "*":
        raise FieldValueError(
            f"{value!r} is a catch-all pattern, not an address",
            expected=expected,
            fix="write `*@domain` only as the address of a forwarder; "
            "list real addresses here",
        )
    if local.startswith("#"):
        # Postfix lookup tables and Dovecot's passwd file read such a line
        # as a comment: the entry would vanish without a word.
        raise FieldValueError(
            f"{value!r} starts with '#', which the mail host's tables read "
            "as a comment",
            expected=expected,
            fix="choose an address whose local part does not start with '#'",
        )
    if not _LOCAL_PART.match(local) or local.startswith(".") or ".." in local:
        raise FieldValueError(
            f"{value!r} has an invalid local part {local!r}",
            expected=expected,
            fix="before the @ use letters, digits and signs such as . _ + -: "
            "no spaces, no dot at either end, no two dots in a row",
        )
    try:
        domain = normalize_hostname(domain)
    except FieldValueError as err:
        raise FieldValueError(
            f"{value!r} has an invalid domain: {err}",
            expected=expected,
            fix=err.fix or "write the whole domain after the @, e.g. example.com",
        ) from err
    return f"{local}@{domain}"


def normalize_pattern(value: str) -> str:
    """An address, or a catch-all `*@domain` that matches the whole domain."""
    text = value.strip()
    if text.startswith("*@"):
        return "*@" + normalize_hostname(text[2:])
    return normalize_address(text)


def normalize_selector(value: str) -> str:
    name = value.strip().lower()
    if not _SELECTOR.match(name):
        raise FieldValueError(
            f"{value!r} is not a valid DKIM selector",
            expected="one DNS label: letters, digits, inner hyphens (e.g. s2026a)",
        )
    return name


def _hidden(value: object) -> str:
    """What a literal credential is, without showing it (errors reach CI logs)."""
    if isinstance(value, str):
        return f"a literal value of {len(value)} characters (not shown)"
    kind = "number" if isinstance(value, int | float) else "value"
    return f"a literal {kind} (not shown)"


def check_secret_ref(value: object) -> str:
    """Accept only `secret:NAME`; a literal credential is refused, unshown."""
    text = value.strip() if isinstance(value, str) else ""
    if not text.startswith(SECRET_PREFIX):
        raise FieldValueError(
            "credentials are never written inline in a spec",
            expected="a secret reference such as secret:alice-password",
            found=_hidden(value),
            fix=(
                "store the value with `pulumi config set --secret "
                "mailbridge:secrets.NAME` or in the environment variable "
                "MAILBRIDGE_SECRET_NAME, and write `secret:NAME` here"
            ),
        )
    name = text[len(SECRET_PREFIX) :]
    if not _SECRET_NAME.match(name):
        raise FieldValueError(
            f"{name!r} is not a valid secret name",
            expected="lower-case letters, digits, '-', '_' or '.', up to 64 long",
        )
    return text


def check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError as err:
        raise FieldValueError(
            f"{value!r} is not an IP address", expected="e.g. 203.0.113.10"
        ) from err


def check_ipv4(value: str) -> str:
    text = check_ip(value)
    if ":" in text:
        raise FieldValueError(f"{value!r} is IPv6", fix="list it under ipv6")
    return text


def check_ipv6(value: str) -> str:
    text = check_ip(value)
    if ":" not in text:
        raise FieldValueError(f"{value!r} is IPv4", fix="list it under ipv4")
    return text


def check_network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as err:
        raise FieldValueError(
            f"{value!r} is not an IP address or network",
            expected="e.g. 203.0.113.10 or 203.0.113.0/24",
        ) from err


Hostname = Annotated[str, BeforeValidator(_text), AfterValidator(normalize_hostname)]
DnsName = Annotated[
    str,
    BeforeValidator(_text),
    AfterValidator(lambda v: normalize_hostname(v, underscore=True)),
]
EmailAddress = Annotated[str, BeforeValidator(_text), AfterValidator(normalize_address)]
AddressPattern = Annotated[
    str, BeforeValidator(_text), AfterValidator(normalize_pattern)
]
DkimSelector = Annotated[str, AfterValidator(normalize_selector)]
# A before-validator, so a number or a list given as a password is refused
# here too, and never echoed by a generic type error.
SecretRef = Annotated[str, BeforeValidator(check_secret_ref)]
IPv4 = Annotated[str, AfterValidator(check_ipv4)]
IPv6 = Annotated[str, AfterValidator(check_ipv6)]
Network = Annotated[str, AfterValidator(check_network)]
IPAddress = Annotated[str, AfterValidator(check_ip)]
Port = Annotated[int, Field(ge=1, le=65535)]


def secret_name(ref: str) -> str:
    """The NAME of a `secret:NAME` reference."""
    return ref[len(SECRET_PREFIX) :]
