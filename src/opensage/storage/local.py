"""The default object store: one folder per bucket under `OPENSAGE_HOME/storage`.

Writes go to a temporary file on the same file system and are renamed into place, so a reader
never sees half an object. Keys are validated before they touch the disk (see `validate_key`),
and every resolved path is checked to stay under the root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from opensage.errors import NotFoundError, ValidationError
from opensage.storage.base import (
    BucketNotEmptyError,
    ObjectInfo,
    S3Uri,
    validate_bucket,
    validate_key,
)

_TMP = ".tmp"


class LocalObjectStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _bucket_dir(self, bucket: str) -> Path:
        validate_bucket(bucket)
        return self.root / bucket

    def _path(self, uri: S3Uri) -> Path:
        validate_key(uri.key)
        path = self._bucket_dir(uri.bucket) / uri.key
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ValidationError(f"Invalid object key '{uri.key}'")
        return path

    def _require_bucket(self, bucket: str) -> Path:
        folder = self._bucket_dir(bucket)
        if not folder.is_dir():
            raise NotFoundError(f"The specified bucket does not exist: {bucket}")
        return folder

    def create_bucket(self, bucket: str) -> None:
        self._bucket_dir(bucket).mkdir(parents=True, exist_ok=True)

    def delete_bucket(self, bucket: str) -> None:
        folder = self._require_bucket(bucket)
        if any(folder.iterdir()):
            raise BucketNotEmptyError(f"The bucket {bucket} is not empty: delete its objects first")
        folder.rmdir()

    def bucket_exists(self, bucket: str) -> bool:
        return self._bucket_dir(bucket).is_dir()

    def list_buckets(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name != _TMP)

    def put_bytes(self, uri: S3Uri, data: bytes) -> ObjectInfo:
        def write(fd: int) -> None:
            with os.fdopen(fd, "wb") as out:
                out.write(data)

        return self._atomic_write(uri, write)

    def put_file(self, uri: S3Uri, source: Path) -> ObjectInfo:
        def write(fd: int) -> None:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        return self._atomic_write(uri, write)

    def _atomic_write(self, uri: S3Uri, write: object) -> ObjectInfo:
        self._require_bucket(uri.bucket)
        if uri.key.endswith("/"):
            raise ValidationError(f"Cannot write '{uri}': folder markers are not stored")
        path = self._path(uri)
        if path.is_dir():
            raise ValidationError(f"Cannot write '{uri}': a prefix of that name holds objects")
        tmp_dir = self.root / _TMP
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir)
        try:
            write(fd)  # type: ignore[operator]
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except (NotADirectoryError, FileExistsError) as exc:
            raise ValidationError(f"Cannot write '{uri}': part of its key is an object") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return self._info(uri, path)

    def get_bytes(self, uri: S3Uri) -> bytes:
        return self._existing(uri).read_bytes()

    def open(self, uri: S3Uri) -> BinaryIO:
        """The object as a binary stream, for readers that must not hold it all in memory."""
        return self._existing(uri).open("rb")

    def download(self, uri: S3Uri, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._existing(uri), dest)

    def _existing(self, uri: S3Uri) -> Path:
        self._require_bucket(uri.bucket)
        path = self._path(uri)
        if not path.is_file():
            raise NotFoundError(f"The specified key does not exist: {uri}")
        return path

    def head(self, uri: S3Uri) -> ObjectInfo | None:
        if not self.bucket_exists(uri.bucket):
            return None
        if uri.key.endswith("/"):
            return None
        path = self._path(uri)
        return self._info(uri, path) if path.is_file() else None

    def list(self, prefix: S3Uri) -> list[ObjectInfo]:
        """Every object whose key starts with the prefix, sorted by key (as S3 lists them)."""
        bucket_dir = self._require_bucket(prefix.bucket)
        start = bucket_dir / prefix.key.rpartition("/")[0] if "/" in prefix.key else bucket_dir
        if not start.is_dir():
            return []
        found = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                path = Path(dirpath) / name
                key = path.relative_to(bucket_dir).as_posix()
                if key.startswith(prefix.key):
                    found.append(self._info(S3Uri(prefix.bucket, key), path))
        return sorted(found, key=lambda info: info.uri.key)

    def delete(self, uri: S3Uri) -> None:
        """Remove the object and the folders it leaves empty, so the names are free again."""
        path = self._path(uri)
        if not path.is_file():
            return
        path.unlink()
        bucket_dir = self._bucket_dir(uri.bucket)
        parent = path.parent
        while parent != bucket_dir and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    @staticmethod
    def _info(uri: S3Uri, path: Path) -> ObjectInfo:
        """Stat only: the ETag is derived from size and mtime so listing never reads data."""
        stat = path.stat()
        tag = hashlib.md5(f"{stat.st_size}:{stat.st_mtime_ns}".encode(), usedforsecurity=False)
        return ObjectInfo(uri, stat.st_size, stat.st_mtime, f'"{tag.hexdigest()}"')
