"""A zone fragment file as a Pulumi resource: `pulumi refresh` reads it back."""

from __future__ import annotations

from pathlib import Path
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


class ZoneFragmentProvider(ResourceProvider):
    """Inputs `path` (absolute) and `content`; the file holds exactly `content`."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        from mailbridge.deploy.zonefile import write_fragment

        write_fragment(Path(props["path"]), props["content"])
        return CreateResult(id_=props["path"], outs=plain(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = changed_keys(olds, news, ("path", "content"))
        return DiffResult(
            changes=bool(changes),
            replaces=["path"] if "path" in changes else [],
            delete_before_replace=False,
        )

    def update(
        self, _id: str, _olds: dict[str, Any], news: dict[str, Any]
    ) -> UpdateResult:
        from mailbridge.deploy.zonefile import write_fragment

        write_fragment(Path(news["path"]), news["content"])
        return UpdateResult(outs=plain(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from mailbridge.deploy.zonefile import read_fragment

        text = read_fragment(Path(props["path"]))
        if text is None:
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs={**plain(props), "content": text})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from mailbridge.deploy.zonefile import remove_fragment

        remove_fragment(Path(props["path"]))


class ZoneFragment(Resource, module="mailbridge", name="ZoneFragment"):
    """A file holding the domain's records in zone-file format."""

    path: pulumi.Output[str]
    content: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        path: pulumi.Input[str],
        content: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            ZoneFragmentProvider(), name, {"path": path, "content": content}, opts
        )
