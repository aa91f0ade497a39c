"""Applying image layers to a root file system: whiteouts, and no path ever leaves the root.

A layer is a tar archive of the files it adds or changes, plus whiteouts for what it removes
(the OCI image spec's "changeset" format, which Docker's layers use too):
- `dir/.wh.name` deletes `dir/name` from the layers below;
- `dir/.wh..wh..opq` makes `dir` opaque: whatever the layers below put in it is gone, and only
  this layer's entries remain. The marker may come before or after those entries in the tar, so
  the layer's own paths are remembered and spared.

An archive from outside is untrusted. Every member's path is checked before anything is
written: absolute paths and `..` components are refused, a symbolic link whose relative target
climbs out of the root is refused, and parents are resolved inside the root (an absolute link
target means the root's path, as it will inside the container), so nothing lands outside it.
Device nodes and FIFOs are skipped: the runtime gives the container its own `/dev`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS


class LayerError(Exception):
    """A layer that cannot be applied safely; the message says which member and why."""


def member_parts(name: str) -> tuple[str, ...]:
    """The path components of a tar member, refused when absolute or climbing with `..`."""
    if name.startswith("/"):
        raise LayerError(f"layer member '{name}' has an absolute path")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise LayerError(f"layer member '{name}' climbs out of the root with '..'")
    return parts


def check_link_target(parts: tuple[str, ...], target: str) -> None:
    """A relative symbolic link must not point above the root from where it sits."""
    if target.startswith("/"):
        return  # resolved against the root inside the container, and by `inside` here
    depth = len(parts) - 1
    for part in PurePosixPath(target).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                raise LayerError(
                    f"symbolic link '{'/'.join(parts)}' -> '{target}' points outside the root"
                )
        elif part not in ("", "."):
            depth += 1


def inside(root: Path, parts: tuple[str, ...]) -> Path:
    """The host path of `parts` under `root`, following the root's own symbolic links in its
    parents as the container would see them (absolute targets start again at the root)."""
    resolved: list[str] = []
    pending = list(parts[:-1])
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > _MAX_LINKS:
                raise LayerError(f"too many symbolic links under '{'/'.join(parts)}'")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [*PurePosixPath(target).parts[1 if target.startswith("/") else 0 :], *pending]
            continue
        resolved.append(part)
    return root.joinpath(*resolved, *parts[-1:])


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def apply_layer(root: Path, layer: IO[bytes]) -> None:
    """Apply one layer (a tar stream, compressed with gzip or not) on top of `root`."""
    written: set[Path] = set()
    opaque: list[Path] = []
    try:
        with tarfile.open(fileobj=layer, mode="r|*") as archive:
            for member in archive:
                _apply_member(root, archive, member, written, opaque)
    except LayerError:
        raise
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise LayerError(f"could not read the layer: {exc}") from None
    for folder in opaque:
        if folder.is_dir() and not folder.is_symlink():
            for entry in folder.iterdir():
                if entry not in written:
                    _remove(entry)


def _apply_member(
    root: Path,
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    written: set[Path],
    opaque: list[Path],
) -> None:
    parts = member_parts(member.name)
    if not parts:
        return  # the root itself
    base = parts[-1]
    if base == OPAQUE:
        opaque.append(inside(root, (*parts[:-1], "x")).parent)
        return
    if base.startswith(WHITEOUT):
        target = inside(root, (*parts[:-1], base[len(WHITEOUT) :]))
        if target.is_symlink() or target.exists():
            _remove(target)
        return
    path = inside(root, parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    if member.isdir():
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            _remove(path)
        path.mkdir(exist_ok=True)
        _set_mode(path, member)
        written.add(path)
        return
    if member.isdev() or member.isfifo():
        return
    if path.is_symlink() or path.exists():
        _remove(path)
    if member.issym():
        check_link_target(parts, member.linkname)
        os.symlink(member.linkname, path)
    elif member.islnk():
        source = inside(root, member_parts(member.linkname))
        if not source.is_file() or source.is_symlink():
            raise LayerError(
                f"hard link '{member.name}' -> '{member.linkname}': no such file in the image"
            )
        os.link(source, path)
    else:
        data = archive.extractfile(member)
        if data is None:
            raise LayerError(f"layer member '{member.name}' has no data")
        with data, path.open("wb") as out:
            shutil.copyfileobj(data, out, 1 << 20)
        _set_mode(path, member)
    written.add(path)


def _set_mode(path: Path, member: tarfile.TarInfo) -> None:
    with contextlib.suppress(OSError):
        os.chmod(path, stat.S_IMODE(member.mode) | (0o700 if member.isdir() else 0))
