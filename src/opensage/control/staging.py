"""Moving bytes between object storage and a job's `/opt/ml` tree (File mode), and back."""

from __future__ import annotations

import json
import os
import random
import tarfile
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from opensage.contract import MLPaths
from opensage.errors import OpenSageError, ValidationError
from opensage.storage import ObjectStorage, S3Uri
from opensage.storage.base import validate_key


class StagingError(OpenSageError):
    """Input that cannot be delivered: becomes the job's `ClientError` FailureReason."""


def channel_objects(storage: ObjectStorage, source: dict[str, Any]) -> list[tuple[S3Uri, str]]:
    """(object, relative path in the channel folder) for an S3Prefix or ManifestFile source."""
    uri = S3Uri.parse(source["S3Uri"])
    if source["S3DataType"] == "ManifestFile":
        return _manifest_objects(storage, uri)
    if not storage.bucket_exists(uri.bucket):
        raise StagingError(f"ClientError: The bucket of {uri} does not exist")
    exact = storage.head(uri) if uri.key and not uri.key.endswith("/") else None
    if exact is not None:
        return [(uri, uri.key.rsplit("/", 1)[-1])]
    found = [
        (info.uri, info.uri.key[len(uri.key) :].lstrip("/"))
        for info in storage.list(uri)
        if not info.uri.key.endswith("/")
    ]
    if not found:
        raise StagingError(f'ClientError: No S3 objects found under S3 URL "{uri}"')
    return found


def _manifest_objects(storage: ObjectStorage, uri: S3Uri) -> list[tuple[S3Uri, str]]:
    try:
        manifest = json.loads(storage.get_bytes(uri))
        prefix = S3Uri.parse(str(manifest[0]["prefix"]))
        if prefix.key and not prefix.key.endswith("/"):
            prefix = S3Uri(prefix.bucket, prefix.key + "/")
        keys = [str(k) for k in manifest[1:]]
        for key in keys:
            validate_key(key)
        return [(S3Uri(prefix.bucket, prefix.key + key), key) for key in keys]
    except OpenSageError as exc:
        raise StagingError(f"ClientError: Cannot read manifest {uri}: {exc.message}") from exc
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise StagingError(
            f"ClientError: Manifest {uri} must be a JSON list whose first element is "
            '{"prefix": "s3://bucket/prefix/"} followed by relative keys'
        ) from exc


T = TypeVar("T")


def arrange(
    items: list[T],
    shuffle: dict[str, Any] | None,
    epoch: int,
    shard: tuple[int, int] | None,
) -> list[T]:
    """The objects one host gets, in order: shuffled with the seed (drawn anew each epoch), then
    every n-th for `ShardedByS3Key` (whole objects; host i of n gets items i, i+n, ...)."""
    arranged = list(items)
    if shuffle:
        random.Random(f"{shuffle['Seed']}/{epoch}").shuffle(arranged)
    if shard is not None:
        index, count = shard
        arranged = arranged[index::count]
    return arranged


def shard_of(channel: dict[str, Any], index: int, count: int) -> tuple[int, int] | None:
    """Host `index`'s share of a channel: None (everything) unless it is ShardedByS3Key."""
    source = channel["DataSource"]["S3DataSource"]
    if source.get("S3DataDistributionType", "FullyReplicated") != "ShardedByS3Key":
        return None
    return index, count


def download_channel(
    storage: ObjectStorage,
    source: dict[str, Any],
    folder: Path,
    shard: tuple[int, int] | None = None,
    shuffle: dict[str, Any] | None = None,
) -> int:
    """File mode: this host's objects of the channel (all, or its ShardedByS3Key share)."""
    objects = arrange(sorted(channel_objects(storage, source), key=lambda o: str(o[0])),
                      shuffle, 0, shard)  # fmt: skip
    for obj, relative in objects:
        dest = (folder / relative).resolve()
        if not dest.is_relative_to(folder.resolve()):
            raise StagingError(f"ClientError: Object key {obj} escapes the channel folder")
        try:
            storage.download(obj, dest)
        except OpenSageError as exc:
            raise StagingError(f"ClientError: Cannot download {obj}: {exc.message}") from exc
    return len(objects)


def download_code(storage: ObjectStorage, submit_directory: str, code_dir: Path) -> None:
    """Pre-extract the user's sourcedir.tar.gz into /opt/ml/code, as the toolkit would."""
    try:
        uri = S3Uri.parse(submit_directory)
    except ValidationError as exc:
        raise StagingError(f"ClientError: sagemaker_submit_directory: {exc.message}") from exc
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "sourcedir.tar.gz"
        try:
            storage.download(uri, archive)
            with tarfile.open(archive) as tar:
                tar.extractall(code_dir, filter="data")
        except OpenSageError as exc:
            raise StagingError(f"ClientError: Cannot download {uri}: {exc.message}") from exc
        except (tarfile.TarError, OSError) as exc:
            raise StagingError(f"ClientError: {uri} is not a valid tar.gz archive: {exc}") from exc


def download_prefix(storage: ObjectStorage, prefix: S3Uri, folder: Path) -> None:
    if not storage.bucket_exists(prefix.bucket):
        return
    for info in storage.list(prefix):
        relative = info.uri.key[len(prefix.key) :].lstrip("/")
        if relative:
            storage.download(info.uri, folder / relative)


def sync_up(storage: ObjectStorage, folder: Path, prefix: S3Uri) -> None:
    """Make the prefix mirror the folder: new and changed files up, deleted files removed."""
    storage.create_bucket(prefix.bucket)
    if prefix.key and not prefix.key.endswith("/"):
        prefix = S3Uri(prefix.bucket, prefix.key + "/")  # never touch sibling prefixes
    local = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    for relative, path in local.items():
        target = prefix.join(relative)
        remote = storage.head(target)
        if (
            remote is None
            or remote.size != path.stat().st_size
            or remote.last_modified < (path.stat().st_mtime)
        ):
            storage.put_file(target, path)
    for info in storage.list(prefix):
        relative = info.uri.key[len(prefix.key) :].lstrip("/")
        if relative and relative not in local:
            storage.delete(info.uri)


def pack(folder: Path, archive: Path) -> None:
    """tar.gz with the folder's entries at the archive root, symlinks dereferenced."""
    with tarfile.open(archive, "w:gz", dereference=True) as tar:
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            tar.add(entry, arcname=entry.name)


def upload_artifacts(storage: ObjectStorage, paths: MLPaths, output: S3Uri, work: Path) -> None:
    storage.create_bucket(output.bucket)
    for folder, name in ((paths.model, "model.tar.gz"), (paths.output_data, "output.tar.gz")):
        archive = work / name
        pack(folder, archive)
        storage.put_file(output.join(name), archive)
        os.unlink(archive)
