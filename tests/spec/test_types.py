"""The reusable field types: host names, addresses, patterns, secret refs."""

from __future__ import annotations

import pytest

from mailbridge.spec.types import (
    FieldValueError,
    check_secret_ref,
    normalize_address,
    normalize_hostname,
    normalize_pattern,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("MX1.Example.COM.", "mx1.example.com"),
        (" mail.example.net ", "mail.example.net"),
        ("a-b.example", "a-b.example"),
    ],
)
def test_hostnames_are_lower_case_without_the_trailing_dot(
    given: str, expected: str
) -> None:
    assert normalize_hostname(given) == expected


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("localhost", "is not fully qualified"),
        ("example..com", "has an empty label"),
        ("-a.example.com", "has an invalid label '-a'"),
        ("_spf.example.com", "has an invalid label '_spf'"),
        ("203.0.113.10", "looks like an IP address"),
        ("a" * 64 + ".example.com", "has an invalid label"),
        (".", "is not a host name"),
    ],
)
def test_bad_hostnames_say_why(given: str, reason: str) -> None:
    # Twice: a remembered good name must not hide a bad one.
    for _ in range(2):
        with pytest.raises(FieldValueError) as err:
            normalize_hostname(given)
        assert reason in str(err.value)


def test_dns_names_may_hold_underscores() -> None:
    assert normalize_hostname("_spf.Google.com", underscore=True) == "_spf.google.com"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("first.last+tag@example.com", "first.last+tag@example.com"),
    ],
)
def test_addresses_are_lower_case(given: str, expected: str) -> None:
    assert normalize_address(given) == expected


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("bob.gmail.com", "is not an email address"),
        ("a@b@example.com", "is not an email address"),
        (".bob@example.com", "has an invalid local part"),
        ("bo..b@example.com", "has an invalid local part"),
        ("bob@example", "has an invalid domain"),
        ("*@example.com", "is a catch-all pattern, not an address"),
        ("#sales@example.com", "read as a comment"),
    ],
)
def test_bad_addresses_say_why(given: str, reason: str) -> None:
    with pytest.raises(FieldValueError) as err:
        normalize_address(given)
    assert reason in str(err.value)


def test_catch_all_patterns_are_allowed_only_as_patterns() -> None:
    assert normalize_pattern("*@Example.com") == "*@example.com"
    assert normalize_pattern("Sales@example.com") == "sales@example.com"
    with pytest.raises(FieldValueError):
        normalize_pattern("*@example..com")


def test_secret_refs_only() -> None:
    assert check_secret_ref("secret:alice-password") == "secret:alice-password"
    with pytest.raises(FieldValueError) as err:
        check_secret_ref("hunter2")
    assert err.value.fix is not None and "secret:NAME" in err.value.fix
    # The refused value never reaches the report, which may land in CI logs.
    assert err.value.found == "a literal value of 7 characters (not shown)"
    assert "hunter2" not in str(err.value)
    with pytest.raises(FieldValueError) as err:
        check_secret_ref(123456)
    assert err.value.found == "a literal number (not shown)"
    with pytest.raises(FieldValueError):
        check_secret_ref("secret:Has Space")


def test_non_ascii_names_suggest_their_ascii_form() -> None:
    with pytest.raises(FieldValueError) as err:
        normalize_hostname("mx.Bücher.de")
    assert err.value.fix == "write the name in its ASCII form: mx.xn--bcher-kva.de"
    with pytest.raises(FieldValueError) as err:
        normalize_address("info@café.example")
    assert err.value.fix == "write the name in its ASCII form: xn--caf-dma.example"
    with pytest.raises(FieldValueError) as err:
        normalize_hostname("a_b.example")
    assert err.value.fix is None
