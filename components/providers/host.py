"""The files of a mail host on a target (a folder here, or a host over SSH).

Inputs: `files` (path -> file, no secrets inside), `secret_files` (the same
shape, a secret input so the state keeps it encrypted), `connection` (see
`mailbridge.deploy.hostfiles.open_target`), `reload` and `reload_commands`.
After a write, the services whose files changed are reloaded.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from components.providers.base import changed_keys, plain

TARGET_KEYS = ("backend", "host", "port", "user", "root")


def _wanted(props: dict[str, Any]) -> dict[str, Any]:
    from mailbridge.deploy.hostfiles import HostFile

    merged = {**(props.get("files") or {}), **(props.get("secret_files") or {})}
    return {path: HostFile.from_dict(data) for path, data in merged.items()}


def _files_of(props: dict[str, Any]) -> dict[str, Any]:
    return {**(props.get("files") or {}), **(props.get("secret_files") or {})}


def _apply(
    props: dict[str, Any], previous: list[str], olds: dict[str, Any] | None = None
) -> dict[str, Any]:
    from mailbridge.deploy.hostfiles import (
        RELOAD_COMMANDS,
        apply_tree,
        open_target,
        reload_services,
        services_for,
    )

    with open_target(props["connection"]) as target:
        changed = apply_tree(target, _wanted(props), previous)
        due = set(changed)
        if olds is not None:
            # Files that differ from the last successful run count too: when
            # a reload failed then, they are in place but never took effect.
            before, after = _files_of(olds), _files_of(props)
            due |= {
                p for p in before.keys() | after.keys() if before.get(p) != after.get(p)
            }
        reloaded: list[str] = []
        if props.get("reload") and due:
            commands = {**RELOAD_COMMANDS, **(props.get("reload_commands") or {})}
            reloaded = reload_services(target, services_for(sorted(due)), commands)
    outs = plain(props)
    outs["paths"] = sorted(_wanted(props))
    outs["changed"] = changed
    outs["reloaded"] = reloaded
    return outs


def _target_of(props: dict[str, Any]) -> dict[str, Any]:
    connection = props.get("connection") or {}
    return {k: connection.get(k) for k in TARGET_KEYS}


class HostFilesProvider(ResourceProvider):
    """Writes only what differs; `read` reports the files as they are now."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = _apply(props, [])
        target = _target_of(props)
        ident = f"{target['backend']}:{target.get('host') or ''}:{target['root']}"
        return CreateResult(id_=ident, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [] if _target_of(olds) == _target_of(news) else ["connection"]
        changes = changed_keys(
            olds,
            news,
            ("files", "secret_files", "connection", "reload", "reload_commands"),
        )
        # Another target may be the same machine by another name, port or
        # user: the old files go first, or removing them would undo the new.
        return DiffResult(
            changes=bool(changes or replaces),
            replaces=replaces,
            delete_before_replace=True,
        )

    def update(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> UpdateResult:
        return UpdateResult(outs=_apply(news, list(olds.get("paths") or []), olds))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from mailbridge.deploy.hostfiles import open_target, read_tree

        paths = list(props.get("paths") or [])
        with open_target(props["connection"]) as target:
            found = read_tree(target, paths)
        secret_paths = set(props.get("secret_files") or {})
        outs = plain(props)
        outs["files"] = {
            p: f.to_dict() for p, f in found.items() if p not in secret_paths
        }
        outs["secret_files"] = {
            p: f.to_dict() for p, f in found.items() if p in secret_paths
        }
        return ReadResult(id_=id_, outs=outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from mailbridge.deploy.hostfiles import open_target

        with open_target(props["connection"]) as target:
            for path in props.get("paths") or []:
                target.remove(path)


class HostFiles(Resource, module="mailbridge", name="HostFiles"):
    """The rendered files of one mail host, written and reloaded as a set."""

    paths: pulumi.Output[list[str]]
    changed: pulumi.Output[list[str]]
    reloaded: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Keep file bodies holding secrets, and the SSH key, encrypted in the
        # state whatever the engine infers from the inputs.
        opts = pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(
                additional_secret_outputs=["secret_files", "connection"]
            ),
        )
        super().__init__(
            HostFilesProvider(),
            name,
            {**props, "paths": None, "changed": None, "reloaded": None},
            opts,
        )
