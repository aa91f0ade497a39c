"""Object storage on any S3-compatible service (AWS S3, MinIO, Ceph, moto...) through boto3.

The same port as the local folder store, with the same answers where S3 allows it: bucket names
and keys are validated before any request (`validate_bucket`, `validate_key`), folder markers
(keys ending in `/`) are refused, a missing bucket or key is a NotFoundError and deleting a bucket
that still holds objects a BucketNotEmptyError. S3 itself allows an object and a prefix of one
name (`a` and `a/b`), which the folder store cannot; that is the one difference callers may see.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

from opensage.errors import NotFoundError, OpenSageError, ValidationError
from opensage.storage.base import (
    BucketNotEmptyError,
    ObjectInfo,
    S3Uri,
    validate_bucket,
    validate_key,
)

_MISSING_BUCKET = {"NoSuchBucket"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_READ_CHUNK = 1 << 20
_SINGLE_PUT_LIMIT = 64 << 20  # above this, put_file uploads in parts (boto3's managed transfer)


class StorageError(OpenSageError):
    """The S3 service failed in a way no caller can fix (access denied, unreachable...)."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ObjectStorage:
    """`client` is a boto3 S3 client; `storage.from_url` builds one from a storage URL."""

    def __init__(self, client: Any) -> None:
        self.client = client

    # buckets -------------------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        validate_bucket(bucket)
        region = self.client.meta.region_name
        extra: dict[str, Any] = {}
        if region and region != "us-east-1":  # us-east-1 is S3's default and refuses to be named
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(Bucket=bucket, **extra)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyOwnedByYou":
                return  # idempotent, as the folder store's
            if _code(exc) == "BucketAlreadyExists":
                raise ValidationError(
                    f"The bucket name {bucket} is taken on the S3 service (bucket names are "
                    "global there): choose another"
                ) from exc
            raise self._failure(exc, f"create bucket {bucket}") from exc

    def delete_bucket(self, bucket: str) -> None:
        validate_bucket(bucket)
        try:
            self.client.delete_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) == "BucketNotEmpty":
                raise BucketNotEmptyError(
                    f"The bucket {bucket} is not empty: delete its objects first"
                ) from exc
            raise self._failure(exc, f"delete bucket {bucket}", bucket=bucket) from exc

    def bucket_exists(self, bucket: str) -> bool:
        validate_bucket(bucket)
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "403"):  # 403: someone else's, not usable
                return False
            raise self._failure(exc, f"look up bucket {bucket}") from exc
        return True

    def list_buckets(self) -> list[str]:
        try:
            answer = self.client.list_buckets()
        except ClientError as exc:
            raise self._failure(exc, "list buckets") from exc
        return sorted(str(b["Name"]) for b in answer.get("Buckets", []))

    # objects -------------------------------------------------------------------------------

    def put_bytes(self, uri: S3Uri, data: bytes) -> ObjectInfo:
        self._writable(uri)
        try:
            answer = self.client.put_object(Bucket=uri.bucket, Key=uri.key, Body=data)
        except ClientError as exc:
            raise self._failure(exc, f"write {uri}", bucket=uri.bucket) from exc
        # PutObject answers no Last-Modified; S3 sets it when the request arrives, i.e. now.
        return ObjectInfo(uri, len(data), time.time(), str(answer["ETag"]))

    def put_file(self, uri: S3Uri, source: Path) -> ObjectInfo:
        self._writable(uri)
        size = source.stat().st_size  # a missing source fails here, before any request
        if size <= _SINGLE_PUT_LIMIT:
            with source.open("rb") as body:
                try:
                    answer = self.client.put_object(Bucket=uri.bucket, Key=uri.key, Body=body)
                except ClientError as exc:
                    raise self._failure(exc, f"write {uri}", bucket=uri.bucket) from exc
            return ObjectInfo(uri, size, time.time(), str(answer["ETag"]))
        from boto3.exceptions import S3UploadFailedError

        try:
            self.client.upload_file(str(source), uri.bucket, uri.key)
        except S3UploadFailedError as exc:
            if not self.bucket_exists(uri.bucket):
                raise NotFoundError(f"The specified bucket does not exist: {uri.bucket}") from exc
            raise StorageError(f"Could not write {uri}: {exc}") from exc
        info = self.head(uri)
        if info is None:
            raise StorageError(f"{uri} was uploaded but is not there")
        return info

    def get_bytes(self, uri: S3Uri) -> bytes:
        with self.open(uri) as stream:
            return stream.read()

    def open(self, uri: S3Uri) -> BinaryIO:
        """The object as a seekable binary stream, read in ranges as the reader goes.

        Every range after the first asks for the same ETag (If-Match), so an object replaced
        while it is being read fails the read instead of mixing two versions.
        """
        validate_key(uri.key)
        answer = self._get(uri)
        raw = _RangedReader(self, uri, answer)
        return cast(BinaryIO, io.BufferedReader(raw, _READ_CHUNK))

    def download(self, uri: S3Uri, dest: Path) -> None:
        """Into a temporary file beside `dest`, renamed into place once complete."""
        validate_key(uri.key)
        answer = self._get(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            with os.fdopen(fd, "wb") as out, contextlib.closing(answer["Body"]) as body:
                while chunk := body.read(_READ_CHUNK):
                    out.write(chunk)
            os.replace(tmp, dest)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"Could not read {uri}: {exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def head(self, uri: S3Uri) -> ObjectInfo | None:
        validate_bucket(uri.bucket)
        validate_key(uri.key)
        if uri.key.endswith("/"):
            return None
        try:
            answer = self.client.head_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as exc:
            if _code(exc) in _MISSING | _MISSING_BUCKET:
                return None
            raise self._failure(exc, f"look up {uri}") from exc
        return ObjectInfo(
            uri,
            int(answer["ContentLength"]),
            answer["LastModified"].timestamp(),
            str(answer["ETag"]),
        )

    def list(self, prefix: S3Uri) -> list[ObjectInfo]:
        """Every object whose key starts with the prefix, sorted by key (as S3 lists them)."""
        validate_bucket(prefix.bucket)
        validate_key(prefix.key, allow_empty=True)
        found = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=prefix.bucket, Prefix=prefix.key
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(
                        ObjectInfo(
                            S3Uri(prefix.bucket, str(item["Key"])),
                            int(item["Size"]),
                            item["LastModified"].timestamp(),
                            str(item["ETag"]),
                        )
                    )
        except ClientError as exc:
            raise self._failure(exc, f"list {prefix}", bucket=prefix.bucket) from exc
        return sorted(found, key=lambda info: info.uri.key)

    def delete(self, uri: S3Uri) -> None:
        validate_bucket(uri.bucket)
        validate_key(uri.key)
        try:
            self.client.delete_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as exc:
            if _code(exc) in _MISSING_BUCKET:
                return  # nothing there to delete, as with the folder store
            raise self._failure(exc, f"delete {uri}") from exc

    # helpers -------------------------------------------------------------------------------

    def _writable(self, uri: S3Uri) -> None:
        validate_bucket(uri.bucket)
        validate_key(uri.key)
        if uri.key.endswith("/"):
            raise ValidationError(f"Cannot write '{uri}': folder markers are not stored")

    def _get(self, uri: S3Uri, **extra: Any) -> dict[str, Any]:
        validate_bucket(uri.bucket)
        try:
            return dict(self.client.get_object(Bucket=uri.bucket, Key=uri.key, **extra))
        except ClientError as exc:
            raise self._failure(exc, f"read {uri}", bucket=uri.bucket, uri=uri) from exc

    @staticmethod
    def _failure(
        exc: ClientError, what: str, *, bucket: str | None = None, uri: S3Uri | None = None
    ) -> OpenSageError:
        """The platform's error for an S3 error code: the same as the folder store raises."""
        code = _code(exc)
        if bucket is not None and code in _MISSING_BUCKET:
            return NotFoundError(f"The specified bucket does not exist: {bucket}")
        if uri is not None and code in _MISSING:
            return NotFoundError(f"The specified key does not exist: {uri}")
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        return StorageError(f"Could not {what}: {code}: {message}")


class _RangedReader(io.RawIOBase):
    """A GetObject body that can seek: a seek drops the body and the next read asks for the
    rest of the object from there (a Range request)."""

    def __init__(self, storage: S3ObjectStorage, uri: S3Uri, first: dict[str, Any]) -> None:
        super().__init__()
        self._storage = storage
        self._uri = uri
        self._size = int(first["ContentLength"])
        self._etag = str(first["ETag"])
        self._body: Any = first["Body"]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._pos:
            self._drop_body()
            self._pos = target
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        if self._body is None:
            answer = self._storage._get(self._uri, Range=f"bytes={self._pos}-", IfMatch=self._etag)
            self._body = answer["Body"]
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"Could not read {self._uri}: {exc}") from exc
        if not data:  # the connection ended before the object did: never a silent truncation
            raise StorageError(f"Could not read {self._uri}: the answer ended at {self._pos}")
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()
