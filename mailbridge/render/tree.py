"""Write a rendered host tree to a folder, all at once or not at all."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from mailbridge.errors import InputError
from mailbridge.fsutil import set_group
from mailbridge.render.options import RenderedFile

log = logging.getLogger(__name__)

# Marks a folder written by write_tree, which may therefore be replaced.
MARKER = ".mailbridge-tree"


def write_tree(files: Mapping[str, RenderedFile], outdir: Path | str) -> Path:
    """Write `files` below `outdir`, replacing what was there.

    The files are written into a new folder beside `outdir` and renamed into
    place, so a reader sees the old tree or the new one, never a mix. Modes
    are set exactly; a file's group is set when that group exists here.
    """
    target = Path(outdir).absolute()
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        staging.chmod(0o755)
        for rel, item in sorted(files.items()):
            _write_file(staging, rel, item)
        (staging / MARKER).write_text("written by mailbridge render\n")
        _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("write: folder=%s files=%d", target, len(files))
    return target


def _check_replaceable(target: Path) -> None:
    """Only an empty folder or an earlier tree may be replaced."""
    if not target.exists():
        return
    if not target.is_dir():
        raise InputError.single(
            f"{target} is a file, not a folder",
            expected="a new or empty folder, or one written by mailbridge render",
            fix="choose another output folder",
        )
    if (target / MARKER).exists() or not any(target.iterdir()):
        return
    raise InputError.single(
        f"{target} holds files that mailbridge did not write",
        expected="a new or empty folder, or one written by mailbridge render",
        found=f"a folder without {MARKER}",
        fix="choose another output folder; its whole content is replaced",
    )


def _write_file(base: Path, rel: str, item: RenderedFile) -> None:
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise ValueError(f"rendered path {rel!r} is not a relative path")
    path = base.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, item.content)
        os.fsync(fd)
        if item.group is not None:
            set_group(fd, path, item.group)
        os.fchmod(fd, item.mode)
    finally:
        os.close(fd)


def _swap(staging: Path, target: Path) -> None:
    """Put `staging` where `target` is; the old tree is removed afterwards."""
    if not target.exists():
        staging.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old)
