"""The storage port and the `s3://` URI every layer uses to name an object or a prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from opensage.errors import ValidationError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Uri:
    """A validated `s3://bucket/key` (the key may be a prefix, possibly empty).

    >>> S3Uri.parse("s3://data/train/part-0.csv").key
    'train/part-0.csv'
    """

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ValidationError(f"'{uri}' is not an S3 URI: it must start with s3://")
        bucket, _, key = uri[len("s3://") :].partition("/")
        validate_bucket(bucket)
        validate_key(key, allow_empty=True)
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Uri:
        key = self.key.rstrip("/")
        joined = "/".join(p.strip("/") for p in (key, *parts) if p.strip("/"))
        validate_key(joined, allow_empty=True)
        return S3Uri(self.bucket, joined)


def validate_bucket(bucket: str) -> None:
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValidationError(
            f"Invalid bucket name '{bucket}': 3-63 lowercase letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit"
        )


def validate_key(key: str, *, allow_empty: bool = False) -> None:
    """Refuse keys that could escape the storage root or cannot be stored as files."""
    if not key:
        if allow_empty:
            return
        raise ValidationError("An object key must not be empty")
    if len(key.encode()) > 1024:
        raise ValidationError("An object key must be at most 1024 bytes")
    if "\x00" in key or key.startswith("/"):
        raise ValidationError(f"Invalid object key '{key}'")
    segments = key.split("/")
    if segments[-1] == "":  # a prefix such as "train/" is fine; its folders are checked below
        segments = segments[:-1]
    if any(s in ("", ".", "..") for s in segments):
        raise ValidationError(f"Invalid object key '{key}': empty, '.' or '..' path segments")
    if any(len(s.encode()) > 255 for s in segments):
        raise ValidationError(f"Invalid object key '{key}': a path segment is over 255 bytes")


@dataclass(frozen=True)
class ObjectInfo:
    uri: S3Uri
    size: int
    last_modified: float
    etag: str


class BucketNotEmptyError(ValidationError):
    """DeleteBucket on a bucket that still holds objects: S3's 409 BucketNotEmpty."""


class ObjectStorage(Protocol):
    """What the platform needs from an object store; one backend per URI scheme."""

    def create_bucket(self, bucket: str) -> None: ...

    def delete_bucket(self, bucket: str) -> None:
        """Remove an empty bucket: NotFoundError if there is none, BucketNotEmptyError if it
        holds objects."""
        ...

    def bucket_exists(self, bucket: str) -> bool: ...

    def list_buckets(self) -> list[str]: ...

    def put_bytes(self, uri: S3Uri, data: bytes) -> ObjectInfo: ...

    def put_file(self, uri: S3Uri, source: Path) -> ObjectInfo: ...

    def get_bytes(self, uri: S3Uri) -> bytes: ...

    def open(self, uri: S3Uri) -> BinaryIO: ...

    def download(self, uri: S3Uri, dest: Path) -> None: ...

    def head(self, uri: S3Uri) -> ObjectInfo | None: ...

    def list(self, prefix: S3Uri) -> list[ObjectInfo]: ...

    def delete(self, uri: S3Uri) -> None: ...
