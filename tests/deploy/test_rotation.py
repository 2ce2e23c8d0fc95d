"""DKIM selector life: state changes, the retiring window, and the key provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from components.providers.dkim import DkimKeyPairProvider
from mailbridge.deploy.rotation import advance, from_text, start, to_text
from mailbridge.spec.models import SelectorState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_retiring_selector_is_retired_after_its_window() -> None:
    active = start(SelectorState.ACTIVE, T0)
    retiring = advance(active, SelectorState.RETIRING, 7, T0 + timedelta(days=30))
    assert retiring.state == SelectorState.RETIRING
    assert retiring.since == T0 + timedelta(days=30)
    assert not retiring.retired
    later = T0 + timedelta(days=36)
    assert advance(retiring, SelectorState.RETIRING, 7, later) == retiring
    gone = advance(retiring, SelectorState.RETIRING, 7, T0 + timedelta(days=38))
    assert gone.retired
    assert advance(gone, SelectorState.RETIRING, 7, T0 + timedelta(days=99)) == gone


def test_a_zero_window_still_keeps_the_record_for_the_switching_run() -> None:
    active = start(SelectorState.ACTIVE, T0)
    switched = advance(active, SelectorState.RETIRING, 0, T0)
    assert not switched.retired
    assert advance(
        switched, SelectorState.RETIRING, 0, T0 + timedelta(seconds=1)
    ).retired


def test_published_and_active_never_retire() -> None:
    published = start(SelectorState.PUBLISHED, T0)
    assert not advance(
        published, SelectorState.PUBLISHED, 0, T0 + timedelta(days=9)
    ).retired
    active = advance(published, SelectorState.ACTIVE, 0, T0 + timedelta(days=1))
    assert not advance(active, SelectorState.ACTIVE, 0, T0 + timedelta(days=9)).retired


def test_timestamps_round_trip() -> None:
    assert from_text(to_text(T0)) == T0


def _props(state: str, days: int = 0, algorithm: str = "ed25519") -> dict[str, object]:
    return {
        "domain": "example.com",
        "selector": "s1",
        "algorithm": algorithm,
        "bits": 2048.0,
        "state": state,
        "retire_after_days": float(days),
    }


def test_key_pair_provider_keeps_the_key_through_rotation() -> None:
    provider = DkimKeyPairProvider()
    created = provider.create(_props("published"))
    outs = created.outs
    assert outs["public_value"].startswith("v=DKIM1; k=ed25519; p=")
    assert "PRIVATE KEY" in outs["private_key"]
    assert provider.diff(created.id, outs, _props("published")).changes is False

    diff = provider.diff(created.id, outs, _props("active"))
    assert diff.changes is True and not diff.replaces
    active = provider.update(created.id, outs, _props("active")).outs
    assert active["private_key"] == outs["private_key"]
    assert active["state"] == "active" and not active["retired"]

    retiring = provider.update(created.id, active, _props("retiring")).outs
    assert not retiring["retired"]
    # The window (0 days) has passed by the next run: the diff sees it.
    retiring["state_since"] = to_text(datetime.now(UTC) - timedelta(seconds=5))
    assert provider.diff(created.id, retiring, _props("retiring")).changes is True
    retired = provider.update(created.id, retiring, _props("retiring")).outs
    assert retired["retired"] is True
    assert retired["public_value"] == outs["public_value"]


def test_key_pair_provider_refuses_a_new_algorithm_for_a_selector() -> None:
    provider = DkimKeyPairProvider()
    olds = _props("active", algorithm="rsa")
    result = provider.check(olds, _props("active", algorithm="ed25519"))
    assert [f.property for f in result.failures] == ["algorithm"]
    assert "add a new selector" in result.failures[0].reason


@pytest.mark.parametrize("bits", [1024])
def test_weak_rsa_keys_are_not_generated(bits: int) -> None:
    with pytest.raises(ValueError, match="2048"):
        DkimKeyPairProvider().create(
            {**_props("active", algorithm="rsa"), "bits": bits}
        )
