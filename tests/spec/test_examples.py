"""The example specs in stacks/ load cleanly."""

from pathlib import Path

from mailbridge.spec import load_specs


def test_example_stacks_load(stacks_dir: Path) -> None:
    loaded = load_specs([stacks_dir])
    assert sorted(s.spec.domain for s in loaded) == ["example.com", "example.net"]
    com = next(s.spec for s in loaded if s.spec.domain == "example.com")
    assert com.mx_hosts[0].host == "mx1.example.com"
    assert any(f.is_catch_all for f in com.forwarders)
