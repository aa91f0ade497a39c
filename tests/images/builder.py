"""Container images built by the tests from files on this machine: nothing is pulled.

`Layer` is a list of entries (files, folders, links, whiteouts) written as a tar; `build_layout`
writes an OCI image layout from layers and a run config, and `docker_save` / `oci_archive` give
the same image (the same config bytes, so the same image id) in the other two forms.

Two root file systems come from the host: `shell_files()` is bash with the libraries it links
(`ldd`), enough for a `train` written in shell (bash's `/dev/tcp` probes the network); and
`python_files()` adds this Python's interpreter, its shared libraries and the pure-Python
standard library (no site-packages), enough for an HTTP model server.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Entry:
    """One tar member: a file (`data`), a folder (`folder`), a symlink or hard link (`link`)."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    folder: bool = False
    symlink: str | None = None
    hardlink: str | None = None


@dataclass
class Image:
    layers: list[list[Entry]]
    config: dict[str, Any] = field(default_factory=dict)
    gzip_layers: bool = True

    def layer_tars(self) -> list[bytes]:
        return [layer_tar(entries) for entries in self.layers]


def layer_tar(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mode = entry.mode
            info.mtime = 0
            if entry.folder:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif entry.symlink is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = entry.symlink
                tar.addfile(info)
            elif entry.hardlink is not None:
                info.type = tarfile.LNKTYPE
                info.linkname = entry.hardlink
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def config_bytes(image: Image) -> bytes:
    document = {
        "architecture": "amd64",
        "os": "linux",
        "config": image.config,
        "rootfs": {"type": "layers", "diff_ids": [digest(t) for t in image.layer_tars()]},
    }
    return json.dumps(document, sort_keys=True).encode()


def build_layout(folder: Path, image: Image, ref_name: str | None) -> str:
    """Write `image` as an OCI layout; its manifest digest."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        name = digest(data)
        (blobs / name.removeprefix("sha256:")).write_bytes(data)
        return name

    layers = []
    for tar in image.layer_tars():
        stored = gzip.compress(tar, compresslevel=1, mtime=0) if image.gzip_layers else tar
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if image.gzip_layers else "")
        layers.append({"mediaType": media, "digest": put(stored), "size": len(stored)})
    config = config_bytes(image)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    manifest_digest = put(manifest)
    entry: dict[str, Any] = {
        "mediaType": OCI_MANIFEST,
        "digest": manifest_digest,
        "size": len(manifest),
    }
    if ref_name:
        entry["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return manifest_digest


def oci_archive(layout: Path, path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        for item in sorted(layout.rglob("*")):
            if item.is_file():
                tar.add(item, arcname=str(item.relative_to(layout)))


def docker_save(path: Path, image: Image, repo_tags: list[str]) -> None:
    """The classic `docker save` layout: `<id>.json`, `<n>/layer.tar`, `manifest.json`."""
    config = config_bytes(image)
    config_name = f"{digest(config).removeprefix('sha256:')}.json"
    members = {config_name: config}
    names = []
    for number, tar in enumerate(image.layer_tars()):
        name = f"{number:02d}{digest(tar)[7:19]}/layer.tar"
        members[name] = tar
        names.append(name)
    manifest = [{"Config": config_name, "RepoTags": repo_tags, "Layers": names}]
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


# root file systems from this machine -------------------------------------------------------------


def _host_file(path: str, mode: int | None = None) -> Entry:
    real = Path(path).resolve()
    return Entry(path.lstrip("/"), real.read_bytes(), mode if mode is not None else 0o755)


def _libraries(binary: str) -> list[str]:
    """The shared libraries `binary` loads, by the paths the loader looks them up under."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = []
    for line in out.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            paths.append(match.group(1))
    return paths


def _with_parents(entries: list[Entry]) -> list[Entry]:
    folders: set[str] = set()
    for entry in entries:
        parts = entry.path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folders.add("/".join(parts[:depth]))
    return [Entry(f, folder=True) for f in sorted(folders)] + entries


def shell_files() -> list[Entry]:
    bash = "/bin/bash" if os.path.exists("/bin/bash") else "/usr/bin/bash"
    entries = [_host_file(bash)]
    entries += [_host_file(lib) for lib in _libraries(bash)]
    entries.append(Entry("bin/sh", symlink="bash"))
    return _with_parents(_dedupe(entries))


_SKIP = {
    "site-packages", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "__pycache__", "pydoc_data", "distutils", "unittest", "config-3.11",
}  # fmt: skip


def python_files() -> tuple[list[Entry], str]:
    """This Python in a root file system, and the path of its interpreter there."""
    executable = str(Path(sys.executable).resolve())
    entries = [_host_file(executable)]
    entries += [_host_file(lib) for lib in _libraries(executable)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    dynload = stdlib / "lib-dynload"
    for path in sorted(stdlib.rglob("*")):
        relative = path.relative_to(stdlib)
        if _SKIP & set(relative.parts[:-1]) or relative.parts[0] in _SKIP:
            continue
        if path.suffix == ".py" and path.is_file():
            entries.append(Entry(str(path).lstrip("/"), path.read_bytes(), 0o644))
    for path in sorted(dynload.glob("*.so")):
        entries.append(_host_file(str(path)))
        entries += [_host_file(lib) for lib in _libraries(str(path))]
    entries.append(Entry("usr/bin/python3", symlink=executable))
    return _with_parents(_dedupe(entries)), executable


def _dedupe(entries: list[Entry]) -> list[Entry]:
    seen: dict[str, Entry] = {}
    for entry in entries:
        seen.setdefault(entry.path, entry)
    return list(seen.values())
