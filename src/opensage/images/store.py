"""The local image store: an OCI image layout under `OPENSAGE_HOME/images`, and unpacked roots.

The store is itself an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), so
any OCI tool can read it, and every byte in it is content-addressed: a blob is written to a
temporary file while its sha256 is computed, and kept under its digest only when that digest is
the one announced. Layers are shared between images by construction. `index.json` lists every
manifest, with the `repository:tag` names that point at it as `org.opencontainers.image.ref.name`
annotations; it is rewritten atomically under a file lock.

An image's identity is its config's digest (Docker's IMAGE ID): the same image loaded from a
`docker save` archive, an OCI layout or a registry push has the same config bytes, while its
manifest may differ (compression). Unpacked root file systems are cached per image id under
`roots/`, built in a temporary folder and renamed into place, so concurrent first runs are safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from opensage.images.layers import LayerError, apply_layer
from opensage.images.reference import DIGEST, ReferenceError, parse_reference

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
REF_NAME = "org.opencontainers.image.ref.name"
# Mount points the runtime binds over; a read-only root must already have them.
MOUNT_POINTS = ("opt/ml", "tmp", "dev", "proc")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageError(Exception):
    """A bad image or blob (wrong digest, unsafe layer, unreadable manifest)."""


class ImageNotFound(ImageError):
    """No stored image has that name or digest."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    """A stored image: its manifest, its config, and the names that point at it."""

    manifest_digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    names: tuple[str, ...]

    @property
    def id(self) -> str:
        """The config's digest: the image's identity across archive formats."""
        return str(self.manifest["config"]["digest"])

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("layers") or [])

    @property
    def size(self) -> int:
        return sum(int(d.get("size", 0)) for d in [self.manifest["config"], *self.layers])

    @property
    def run_config(self) -> dict[str, Any]:
        return dict(self.config.get("config") or {})

    @property
    def entrypoint(self) -> list[str]:
        return list(self.run_config.get("Entrypoint") or [])

    @property
    def cmd(self) -> list[str]:
        return list(self.run_config.get("Cmd") or [])

    @property
    def env(self) -> dict[str, str]:
        env = {"PATH": DEFAULT_PATH}
        for item in self.run_config.get("Env") or []:
            key, _, value = str(item).partition("=")
            env[key] = value
        return env

    @property
    def working_dir(self) -> str:
        return str(self.run_config.get("WorkingDir") or "/")

    @property
    def user(self) -> str:
        return str(self.run_config.get("User") or "")

    @property
    def exposed_ports(self) -> list[str]:
        return sorted(self.run_config.get("ExposedPorts") or {})


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = root / "oci"
        self.blobs = self.layout / "blobs" / "sha256"
        self.roots = root / "roots"
        self.uploads = root / "uploads"

    # blobs -------------------------------------------------------------------------------

    def _ensure(self) -> None:
        if (self.layout / "oci-layout").exists():
            return
        for folder in (self.blobs, self.roots, self.uploads):
            folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.layout / "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        if not (self.layout / "index.json").exists():
            self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})

    def blob_path(self, digest: str) -> Path:
        if not DIGEST.match(digest):
            raise ImageError(f"'{digest}' is not a sha256 digest")
        return self.blobs / digest.removeprefix("sha256:")

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def put_blob(self, stream: IO[bytes], expected: str | None = None) -> tuple[str, int]:
        """Store a blob from `stream`; its digest must be `expected` when one is given."""
        self._ensure()
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.uploads, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            return self.adopt(Path(tmp), f"sha256:{digest.hexdigest()}", expected), size
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def adopt(self, path: Path, actual: str, expected: str | None) -> str:
        """Move a fully written file whose digest is `actual` into the blob store."""
        self._ensure()
        if expected is not None and expected != actual:
            raise ImageError(
                f"blob content does not match its digest: expected {expected}, got {actual}"
            )
        target = self.blob_path(actual)
        if not target.exists():
            os.replace(path, target)
        return actual

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        self._ensure()
        actual = f"sha256:{sha256_hex(data)}"
        if expected is not None and expected != actual:
            raise ImageError(
                f"blob content does not match its digest: expected {expected}, got {actual}"
            )
        if not self.has_blob(actual):
            _write_atomic(self.blob_path(actual), data)
        return actual

    def read_blob(self, digest: str) -> bytes:
        path = self.blob_path(digest)
        if not path.is_file():
            raise ImageError(f"blob {digest} is not in the store")
        return path.read_bytes()

    # manifests and names ------------------------------------------------------------------

    def put_manifest(
        self, data: bytes, names: Sequence[str] = (), expected: str | None = None
    ) -> str:
        """Store a manifest (or an index) whose blobs are all stored already, and name it."""
        try:
            manifest = json.loads(data)
        except ValueError:
            raise ImageError("the manifest is not JSON") from None
        media_type = _media_type(manifest)
        children = (
            [d["digest"] for d in manifest.get("manifests") or []]
            if media_type in INDEXES
            else [
                manifest["config"]["digest"],
                *(d["digest"] for d in manifest.get("layers") or []),
            ]
            if media_type in MANIFESTS
            else None
        )
        if children is None:
            raise ImageError(f"unsupported manifest media type '{media_type}'")
        missing = [d for d in children if not self.has_blob(str(d))]
        if missing:
            raise ImageError(
                f"the manifest refers to blobs that are not stored: {', '.join(missing)}"
            )
        digest = self.put_bytes(data, expected)
        with self._index() as index:
            entries = [e for e in index["manifests"] if not _named(e, names)]
            new = {"mediaType": media_type, "digest": digest, "size": len(data)}
            if names:
                entries += [{**new, "annotations": {REF_NAME: name}} for name in names]
            elif not any(e["digest"] == digest for e in entries):
                entries.append(new)
            index["manifests"] = entries
        return digest

    def tag(self, name: str, digest: str) -> None:
        self.put_manifest(self.read_blob(digest), [name], digest)

    def manifest(self, digest: str) -> tuple[bytes, str]:
        data = self.read_blob(digest)
        return data, _media_type(json.loads(data))

    def resolve(self, reference: str) -> Image:
        """The image a reference names: `repository[:tag]` or `...@sha256:...`, any host."""
        try:
            ref = parse_reference(reference)
        except ReferenceError as exc:
            raise ImageNotFound(str(exc)) from None
        if ref.digest is not None:
            if not self._known(ref.digest):
                raise ImageNotFound(f"no stored image has the digest {ref.digest}")
            return self._image(ref.digest)
        digest = self.digest_of(ref.name)
        if digest is None:
            raise ImageNotFound(f"image {ref.name} is not in the store")
        return self._image(digest)

    def digest_of(self, name: str) -> str | None:
        for entry in self._entries():
            if (entry.get("annotations") or {}).get(REF_NAME) == name:
                return str(entry["digest"])
        return None

    def images(self) -> list[Image]:
        digests = list(dict.fromkeys(str(e["digest"]) for e in self._entries()))
        return [self._image(d) for d in digests]

    def repositories(self) -> list[str]:
        return sorted({n.rsplit(":", 1)[0] for n in self._names()})

    def tags(self, repository: str) -> list[str]:
        return sorted(
            n.rsplit(":", 1)[1] for n in self._names() if n.rsplit(":", 1)[0] == repository
        )

    def remove(self, reference: str) -> list[str]:
        """Untag (or, by digest, drop) an image; blobs and roots nothing uses any more go too."""
        ref = parse_reference(reference)
        with self._index() as index:
            before = len(index["manifests"])
            if ref.digest is not None:
                kept = [e for e in index["manifests"] if e["digest"] != ref.digest]
            else:
                kept = [e for e in index["manifests"] if not _named(e, [ref.name])]
            if len(kept) == before:
                raise ImageNotFound(f"image {reference} is not in the store")
            index["manifests"] = kept
        return self.collect_garbage()

    def collect_garbage(self) -> list[str]:
        used: set[str] = set()
        ids: set[str] = set()
        pending = [str(e["digest"]) for e in self._entries()]
        while pending:
            digest = pending.pop()
            if digest in used or not self.has_blob(digest):
                continue
            used.add(digest)
            manifest = json.loads(self.read_blob(digest))
            if _media_type(manifest) in INDEXES:
                pending += [str(d["digest"]) for d in manifest.get("manifests") or []]
            else:
                ids.add(str(manifest["config"]["digest"]))
                used.add(str(manifest["config"]["digest"]))
                used.update(str(d["digest"]) for d in manifest.get("layers") or [])
        removed = []
        if self.blobs.is_dir():
            for path in self.blobs.iterdir():
                if f"sha256:{path.name}" not in used:
                    path.unlink()
                    removed.append(f"sha256:{path.name}")
        if self.roots.is_dir():
            for path in self.roots.iterdir():
                if f"sha256:{path.name}" not in ids:
                    shutil.rmtree(path, ignore_errors=True)
        return removed

    # unpacked roots ------------------------------------------------------------------------

    def root_of(self, image: Image) -> Path:
        """The image's root file system, unpacked once and cached by image id."""
        target = self.roots / image.id.removeprefix("sha256:")
        if target.is_dir():
            return target
        self._ensure()
        work = Path(tempfile.mkdtemp(dir=self.roots, prefix=".unpack-"))
        try:
            diff_ids = list((image.config.get("rootfs") or {}).get("diff_ids") or [])
            if diff_ids and len(diff_ids) != len(image.layers):
                raise ImageError(
                    f"image {image.id}: the config lists {len(diff_ids)} layers, the manifest "
                    f"{len(image.layers)}"
                )
            for number, layer in enumerate(image.layers):
                expected = diff_ids[number] if diff_ids else None
                self._apply(work, layer, expected)
            for point in MOUNT_POINTS:
                (work / point).mkdir(parents=True, exist_ok=True)
            try:
                os.rename(work, target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target

    def _apply(self, root: Path, layer: dict[str, Any], diff_id: str | None) -> None:
        media_type = str(layer.get("mediaType", OCI_LAYER))
        if "zstd" in media_type:
            raise ImageError(
                f"layer {layer['digest']}: zstd-compressed layers are not supported yet"
            )
        with self.blob_path(str(layer["digest"])).open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if compressed else raw  # type: ignore[assignment]
            hashing = _Hashing(stream)
            try:
                apply_layer(root, hashing)  # type: ignore[arg-type]
            except LayerError as exc:
                raise ImageError(f"layer {layer['digest']}: {exc}") from None
            except (OSError, EOFError) as exc:
                raise ImageError(f"layer {layer['digest']} cannot be read: {exc}") from None
            hashing.drain()
        if diff_id is not None and hashing.digest() != diff_id:
            raise ImageError(
                f"layer {layer['digest']}: its uncompressed content does not match the config's "
                f"diff_id {diff_id} (got {hashing.digest()})"
            )

    # internals -------------------------------------------------------------------------------

    def _image(self, digest: str) -> Image:
        manifest = json.loads(self.read_blob(digest))
        if _media_type(manifest) in INDEXES:
            digest = _platform_child(manifest)
            manifest = json.loads(self.read_blob(digest))
        config = json.loads(self.read_blob(str(manifest["config"]["digest"])))
        names = tuple(n for n, d in self._named_digests() if d == digest)
        return Image(digest, manifest, config, names)

    def _known(self, digest: str) -> bool:
        return self.has_blob(digest) and _is_manifest(self.read_blob(digest))

    def _entries(self) -> list[dict[str, Any]]:
        path = self.layout / "index.json"
        if not path.exists():
            return []
        return list(json.loads(path.read_text()).get("manifests") or [])

    def _named_digests(self) -> Iterator[tuple[str, str]]:
        for entry in self._entries():
            name = (entry.get("annotations") or {}).get(REF_NAME)
            if name:
                yield str(name), str(entry["digest"])

    def _names(self) -> list[str]:
        return [name for name, _ in self._named_digests()]

    @contextlib.contextmanager
    def _index(self) -> Iterator[dict[str, Any]]:
        self._ensure()
        with (self.root / "index.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index = json.loads((self.layout / "index.json").read_text())
            yield index
            self._write_index(index)

    def _write_index(self, index: dict[str, Any]) -> None:
        _write_atomic(self.layout / "index.json", json.dumps(index, indent=1).encode())


class _Hashing:
    """A read-only stream that hashes what passes through it (a layer's uncompressed tar)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


def _media_type(manifest: dict[str, Any]) -> str:
    media_type = manifest.get("mediaType")
    if media_type:
        return str(media_type)
    if "manifests" in manifest:
        return OCI_INDEX
    return OCI_MANIFEST if "config" in manifest else ""


def _is_manifest(data: bytes) -> bool:
    try:
        return _media_type(json.loads(data)) in (*MANIFESTS, *INDEXES)
    except (ValueError, AttributeError):
        return False


def _named(entry: dict[str, Any], names: Sequence[str]) -> bool:
    return (entry.get("annotations") or {}).get(REF_NAME) in names


def _platform_child(index: dict[str, Any]) -> str:
    """From an image index, this machine's platform (linux and its architecture), else the first."""
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    entries = list(index.get("manifests") or [])
    if not entries:
        raise ImageError("the image index lists no manifests")
    for entry in entries:
        wanted = entry.get("platform") or {}
        if wanted.get("os") == "linux" and wanted.get("architecture") == machine:
            return str(entry["digest"])
    return str(entries[0]["digest"])


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def user_ids(root: Path, user: str) -> tuple[int, int] | None:
    """The uid and gid an image's `User` (`name`, `uid`, `name:group`, `uid:gid`) means, read
    from the image's own /etc/passwd and /etc/group; None for root or no user."""
    if not user:
        return None
    name, _, group = user.partition(":")
    uid = _lookup(root / "etc/passwd", name, 2)
    if uid is None:
        raise ImageError(f"the image's User '{user}' is not in its /etc/passwd")
    gid = _lookup(root / "etc/group", group, 2) if group else _lookup(root / "etc/passwd", name, 3)
    if gid is None:
        raise ImageError(f"the image's User '{user}': group '{group}' is not in its /etc/group")
    return None if (uid, gid) == (0, 0) else (uid, gid)


def _lookup(table: Path, key: str, field: int) -> int | None:
    """A numeric id as itself; a name through a passwd/group file (field 2: its id, 3: gid)."""
    if key.isdigit() and field == 2:
        return int(key)
    try:
        lines = table.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":")
        if len(parts) > field and (parts[0] == key or (key.isdigit() and parts[2] == key)):
            return int(parts[field]) if parts[field].isdigit() else None
    return int(key) if key.isdigit() else None
