"""The zone fragment and host file providers' CRUD, called directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.providers.host import HostFilesProvider
from components.providers.zonefile import ZoneFragmentProvider
from mailbridge.deploy.hostfiles import HostError, HostFile


def test_zone_fragment_crud_and_drift(tmp_path: Path) -> None:
    provider = ZoneFragmentProvider()
    path = tmp_path / "dns/example.com.zone"
    props = {"path": str(path), "content": "@ 300 IN MX 10 mx1.example.com.\n"}
    created = provider.create(dict(props))
    assert path.read_text() == props["content"]
    assert provider.diff(created.id, created.outs, dict(props)).changes is False

    path.write_text("edited by hand\n")
    read = provider.read(created.id, created.outs)
    assert read.outs["content"] == "edited by hand\n"
    assert provider.diff(created.id, read.outs, dict(props)).changes is True
    provider.update(created.id, read.outs, dict(props))
    assert path.read_text() == props["content"]

    moved = {**props, "path": str(tmp_path / "other.zone")}
    assert provider.diff(created.id, created.outs, moved).replaces == ["path"]
    provider.delete(created.id, created.outs)
    assert not path.exists()
    assert provider.read(created.id, created.outs).id == ""


def test_host_files_crud_reload_and_drift(tmp_path: Path) -> None:
    provider = HostFilesProvider()
    root = tmp_path / "host"
    marker = tmp_path / "reloads"
    props = {
        "files": {"etc/postfix/main.cf": HostFile(b"a = 1\n").to_dict()},
        "secret_files": {"etc/postsrsd.secret": HostFile(b"s3\n", 0o600).to_dict()},
        "connection": {"backend": "local", "root": str(root)},
        "reload": True,
        "reload_commands": {
            "postfix": f"echo postfix >> {marker}",
            "postsrsd": f"echo postsrsd >> {marker}",
        },
    }
    created = provider.create(dict(props))
    assert created.outs["paths"] == ["etc/postfix/main.cf", "etc/postsrsd.secret"]
    assert marker.read_text().split() == ["postfix", "postsrsd"]
    assert (root / "etc/postsrsd.secret").stat().st_mode & 0o777 == 0o600

    changed = dict(props)
    changed["files"] = {"etc/postfix/main.cf": HostFile(b"a = 2\n").to_dict()}
    assert provider.diff(created.id, created.outs, changed).changes is True
    updated = provider.update(created.id, created.outs, changed).outs
    assert updated["changed"] == ["etc/postfix/main.cf"]
    assert updated["reloaded"] == ["postfix"]
    assert marker.read_text().split() == ["postfix", "postsrsd", "postfix"]

    (root / "etc/postfix/main.cf").write_text("edited by hand\n")
    read = provider.read(created.id, updated)
    assert read.outs["files"]["etc/postfix/main.cf"]["content"] == "edited by hand\n"
    assert provider.diff(created.id, read.outs, changed).changes is True

    # A reload that fails leaves the state as it was; the next run reloads,
    # although the files on the host already match.
    third = {
        **changed,
        "files": {"etc/postfix/main.cf": HostFile(b"a = 3\n").to_dict()},
    }
    broken = {**third, "reload_commands": {"postfix": "exit 3"}}
    with pytest.raises(HostError, match="status 3"):
        provider.update(created.id, updated, broken)
    assert (root / "etc/postfix/main.cf").read_bytes() == b"a = 3\n"
    retried = provider.update(created.id, updated, third).outs
    assert retried["changed"] == [] and retried["reloaded"] == ["postfix"]
    assert marker.read_text().split() == ["postfix", "postsrsd", "postfix", "postfix"]

    moved = {**changed, "connection": {"backend": "local", "root": str(tmp_path / "x")}}
    diff = provider.diff(created.id, updated, moved)
    assert diff.replaces == ["connection"] and diff.delete_before_replace
    provider.delete(created.id, updated)
    assert not (root / "etc").exists()


def test_providers_pickle_by_reference_with_nothing_captured() -> None:
    import base64

    import dill
    from pulumi.dynamic.dynamic import serialize_provider

    from components.providers.dkim import (
        DkimConfirmationProvider,
        DkimKeyPairProvider,
    )
    from components.providers.rfc2136 import RecordSetProvider

    for cls in (
        ZoneFragmentProvider,
        RecordSetProvider,
        DkimKeyPairProvider,
        DkimConfirmationProvider,
        HostFilesProvider,
    ):
        raw = base64.b64decode(serialize_provider(cls()))
        # A reference to the class and an empty instance: no code, no state.
        assert len(raw) < 120, (cls.__name__, raw)
        assert cls.__module__.encode() in raw
        restored = dill.loads(raw)
        assert type(restored) is cls and vars(restored) == {}


def test_dkim_confirmation_waits_for_the_published_key(tmp_path: Path) -> None:
    import pulumi
    import pytest

    from components.domain import _confirmed_key
    from components.providers.dkim import DkimConfirmationProvider

    zone = tmp_path / "example.com.zone"
    zone.write_text(
        '$ORIGIN example.com.\ns1._domainkey 300 IN TXT "v=DKIM1; k=ed25519; p=OLD"\n'
    )
    props = {
        "name": "s1._domainkey.example.com",
        "origin": "example.com",
        "expected": "v=DKIM1; k=ed25519; p=NEW",
        "state": "active",
        "source": {"kind": "zonefile", "path": str(zone)},
        "timeout": 0,
    }
    provider = DkimConfirmationProvider()
    with pytest.raises(RuntimeError, match="not published as expected.*p=OLD"):
        provider.create(dict(props))
    with pytest.raises(pulumi.RunError, match="refusing to sign"):
        _confirmed_key("s1", "-----BEGIN PRIVATE KEY-----", False)

    zone.write_text(zone.read_text().replace("p=OLD", "p=NEW"))
    created = provider.create(dict(props))
    assert created.outs["confirmed"] is True
    assert provider.diff(created.id, created.outs, dict(props)).changes is False

    # Refresh with the record gone: the next up confirms again.
    zone.write_text("$ORIGIN example.com.\n")
    refreshed = provider.read(created.id, created.outs).outs
    assert refreshed["confirmed"] is False
    assert provider.diff(created.id, refreshed, dict(props)).changes is True
    zone.write_text(
        zone.read_text() + f's1._domainkey 300 IN TXT "{props["expected"]}"\n'
    )
    assert provider.update(created.id, refreshed, dict(props)).outs["confirmed"]

    retired = provider.update(created.id, created.outs, {**props, "expected": ""})
    assert retired.outs["confirmed"] is False
    # A retired selector is never confirmed, and that is no change.
    retired_props = {**props, "expected": ""}
    assert provider.diff(created.id, retired.outs, retired_props).changes is False
