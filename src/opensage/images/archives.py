"""Loading images into the store from the three forms they travel in.

- an OCI image layout folder (`oci-layout`, `index.json`, `blobs/`), as `skopeo copy ... oci:DIR`
  and `buildah push` write it;
- an OCI archive: that layout in a tar file (`skopeo copy ... oci-archive:FILE`);
- a `docker save` archive: `manifest.json` listing each image's config file, its `RepoTags`
  and its layer tars (Docker 25 and later also write the OCI layout alongside; the manifest is
  read either way, since only it carries the `RepoTags`).

Blobs are copied into the store through its digest check, so a layer whose content does not
match its digest is refused before anything refers to it. A tar archive is unpacked to a
temporary folder first, member by member, with the same path checks as image layers.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from opensage.images.layers import LayerError, member_parts
from opensage.images.reference import ReferenceError, parse_reference
from opensage.images.store import (
    INDEXES,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    REF_NAME,
    Image,
    ImageError,
    ImageStore,
    sha256_hex,
)


def load(store: ImageStore, path: Path, name: str | None = None) -> list[Image]:
    """Load every image in `path` (a folder or a tar file); `name` tags the one image there."""
    if path.is_dir():
        return _load_folder(store, path, name)
    if not path.is_file():
        raise ImageError(f"{path} does not exist")
    with tempfile.TemporaryDirectory(prefix="opensage-load-") as tmp:
        _untar(path, Path(tmp))
        return _load_folder(store, Path(tmp), name)


def _load_folder(store: ImageStore, folder: Path, name: str | None) -> list[Image]:
    extra = [_name(name)] if name else []
    if (folder / "manifest.json").is_file():
        images = _load_docker(store, folder, extra)
    elif (folder / "oci-layout").is_file() and (folder / "index.json").is_file():
        images = _load_oci(store, folder, extra)
    else:
        raise ImageError(
            f"{folder} is neither an OCI image layout (oci-layout, index.json) nor a docker save "
            "archive (manifest.json)"
        )
    if extra and len({image.manifest_digest for image in images}) != 1:
        raise ImageError(f"--name needs exactly one image in the archive, found {len(images)}")
    return images


def _load_oci(store: ImageStore, folder: Path, extra: list[str]) -> list[Image]:
    index = _json(folder / "index.json")
    images = []
    for entry in index.get("manifests") or []:
        digest = str(entry["digest"])
        _copy_tree_of(store, folder, digest)
        ref = (entry.get("annotations") or {}).get(REF_NAME)
        names = [_name(ref)] if ref and _is_reference(ref) else []
        if not names and not extra:
            raise ImageError(
                f"the image {digest} in {folder} has no repository name (ref name {ref!r}); "
                "give one with --name REPOSITORY:TAG"
            )
        names = list(dict.fromkeys([*names, *extra]))
        store.put_manifest(_blob(folder, digest), names, digest)
        images.append(store.resolve(names[0]))
    if not images:
        raise ImageError(f"{folder}/index.json lists no images")
    return images


def _copy_tree_of(store: ImageStore, folder: Path, digest: str) -> None:
    """Copy a manifest's (or index's) blobs into the store, children first."""
    manifest = json.loads(_blob(folder, digest))
    if manifest.get("mediaType") in INDEXES or "manifests" in manifest:
        children = [str(d["digest"]) for d in manifest.get("manifests") or []]
        for child in children:
            _copy_tree_of(store, folder, child)
            store.put_bytes(_blob(folder, child), child)
        return
    for descriptor in [manifest["config"], *(manifest.get("layers") or [])]:
        blob = str(descriptor["digest"])
        if store.has_blob(blob):
            continue
        with _blob_path(folder, blob).open("rb") as stream:
            store.put_blob(stream, blob)


def _load_docker(store: ImageStore, folder: Path, extra: list[str]) -> list[Image]:
    images = []
    for entry in _json(folder / "manifest.json"):
        config_bytes = _member(folder, entry["Config"]).read_bytes()
        config_digest = store.put_bytes(config_bytes)
        layers = []
        for layer in entry.get("Layers") or []:
            path = _member(folder, layer)
            with path.open("rb") as stream:
                gzipped = stream.read(2) == b"\x1f\x8b"
                stream.seek(0)
                digest, size = store.put_blob(stream)
            if layer.startswith("blobs/sha256/") and digest != f"sha256:{Path(layer).name}":
                raise ImageError(f"layer {layer} does not match its digest (got {digest})")
            layers.append(
                {
                    "mediaType": OCI_LAYER_GZIP if gzipped else OCI_LAYER,
                    "digest": digest,
                    "size": size,
                }
            )
        if str(entry["Config"]).startswith("blobs/sha256/") and config_digest != (
            f"sha256:{Path(entry['Config']).name}"
        ):
            raise ImageError(f"config {entry['Config']} does not match its digest")
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": layers,
        }
        names = list(dict.fromkeys([*(_name(t) for t in entry.get("RepoTags") or []), *extra]))
        data = json.dumps(manifest, separators=(",", ":")).encode()
        digest = store.put_manifest(data, names)
        _check_diff_ids(store, config_bytes, layers)
        images.append(store.resolve(names[0] if names else f"x@{digest}"))
    if not images:
        raise ImageError(f"{folder}/manifest.json lists no images")
    return images


def _check_diff_ids(store: ImageStore, config: bytes, layers: list[dict[str, Any]]) -> None:
    """Docker's layer tars are the uncompressed layers: each must hash to the config's diff_id."""
    diff_ids = (json.loads(config).get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layers):
        raise ImageError(f"the config lists {len(diff_ids)} layers, the archive {len(layers)}")
    for layer, diff_id in zip(layers, diff_ids, strict=True):
        if layer["mediaType"] == OCI_LAYER:
            actual = layer["digest"]
        else:
            with gzip.open(store.blob_path(layer["digest"])) as stream:
                actual = f"sha256:{_hash_stream(stream)}"
        if actual != diff_id:
            raise ImageError(
                f"layer {layer['digest']} does not match the config's diff_id {diff_id}"
            )


def _hash_stream(stream: Any) -> str:
    import hashlib

    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _untar(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                parts = member_parts(member.name)
                if not parts or member.isdir():
                    continue
                if not member.isfile():
                    if member.issym() or member.islnk():
                        raise ImageError(f"{archive}: member '{member.name}' is a link")
                    continue
                path = target.joinpath(*parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, path.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except LayerError as exc:
        raise ImageError(f"{archive}: {exc}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageError(f"{archive} is not a readable tar archive: {exc}") from None


def _member(folder: Path, name: str) -> Path:
    try:
        path = folder.joinpath(*member_parts(name))
    except LayerError as exc:
        raise ImageError(str(exc)) from None
    if not path.is_file():
        raise ImageError(f"the archive has no file '{name}'")
    return path


def _blob_path(folder: Path, digest: str) -> Path:
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64 or not hex_digest.isalnum():
        raise ImageError(f"unsupported digest '{digest}'")
    path = folder / "blobs" / algorithm / hex_digest
    if not path.is_file():
        raise ImageError(f"the layout has no blob {digest}")
    return path


def _blob(folder: Path, digest: str) -> bytes:
    data = _blob_path(folder, digest).read_bytes()
    if f"sha256:{sha256_hex(data)}" != digest:
        raise ImageError(f"blob {digest} does not match its digest")
    return data


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read {path.name}: {exc}") from None


def _is_reference(ref: str) -> bool:
    """An OCI ref name that names a repository (`repo:tag`), not a bare tag (`latest`)."""
    if ":" not in ref and "/" not in ref:
        return False
    try:
        parse_reference(ref)
    except ReferenceError:
        return False
    return True


def _name(ref: str) -> str:
    try:
        return parse_reference(ref).name
    except ReferenceError as exc:
        raise ImageError(str(exc)) from None
