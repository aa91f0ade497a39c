"""S3 multipart uploads, staged on the server's disk and handed to the storage port whole.

Parts live in `<uploads>/<upload id>/` until CompleteMultipartUpload joins them in the order the
client lists them into one file and `put_file`s it, so any storage backend gets multipart for
free and no reader ever sees a half-assembled object. Upload ids are random hex, checked before
they name a folder; each upload remembers the object it is for, and a part or a completion for
another key is refused as S3 refuses it (NoSuchUpload).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from opensage.errors import NotFoundError, ValidationError
from opensage.storage import ObjectInfo, ObjectStorage, S3Uri

MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last, as S3 requires
MAX_PARTS = 10_000
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class NoSuchUploadError(ValidationError):
    """An upload id that is not (or no longer) in progress for this key: S3's 404 NoSuchUpload."""


class InvalidPartError(ValidationError):
    """A completion naming a part that was not uploaded, or with another ETag: S3's InvalidPart."""


class InvalidPartOrderError(ValidationError):
    """Completion parts not in ascending order: S3's InvalidPartOrder."""


class EntityTooSmallError(ValidationError):
    """A part other than the last under 5 MiB: S3's EntityTooSmall."""


class MultipartUploads:
    def __init__(self, storage: ObjectStorage, root: Path) -> None:
        self.storage = storage
        self.root = root

    def create(self, uri: S3Uri) -> str:
        if not self.storage.bucket_exists(uri.bucket):
            raise NotFoundError(f"The specified bucket does not exist: {uri.bucket}")
        upload_id = uuid.uuid4().hex
        folder = self.root / upload_id
        folder.mkdir(parents=True)
        (folder / "target.json").write_text(json.dumps([uri.bucket, uri.key]))
        return upload_id

    def put_part(self, upload_id: str, uri: S3Uri, number: int, data: bytes) -> str:
        """Store (or replace) part `number`; its ETag is the MD5 of its bytes, as S3's."""
        folder = self._folder(upload_id, uri)
        _check_part_number(number)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, folder / f"{number:05d}")
        return _etag(hashlib.md5(data, usedforsecurity=False).hexdigest())

    def put_part_from(self, upload_id: str, uri: S3Uri, number: int, source: BinaryIO) -> str:
        """A part copied from a stream (UploadPartCopy); read whole, parts are at most 5 GiB."""
        return self.put_part(upload_id, uri, number, source.read())

    def complete(self, upload_id: str, uri: S3Uri, parts: Sequence[tuple[int, str]]) -> ObjectInfo:
        """Join the parts into the object. Its ETag is the storage's, as HEAD and GET give it
        (not S3's MD5 of the parts' MD5s: no client of this subset compares the two)."""
        folder = self._folder(upload_id, uri)
        if not parts:
            raise ValidationError("CompleteMultipartUpload names no parts")
        numbers = [n for n, _ in parts]
        if numbers != sorted(set(numbers)):
            raise InvalidPartOrderError(
                "The list of parts was not in ascending order, or named a part twice"
            )
        for position, (number, etag) in enumerate(parts, start=1):
            path = folder / f"{number:05d}"
            if not path.is_file():
                raise InvalidPartError(f"Part {number} was not uploaded")
            digest = _md5_of(path)
            if etag.strip('"') != digest:
                raise InvalidPartError(f"Part {number}'s ETag {etag} is not the uploaded part's")
            if position < len(parts) and path.stat().st_size < MIN_PART_SIZE:
                raise EntityTooSmallError(
                    f"Part {number} is {path.stat().st_size} bytes: every part but the last "
                    f"must be at least {MIN_PART_SIZE} bytes"
                )
        joined = folder / ".joined"
        with joined.open("wb") as out:
            for number, _ in parts:
                with (folder / f"{number:05d}").open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        info = self.storage.put_file(uri, joined)
        shutil.rmtree(folder, ignore_errors=True)
        return info

    def abort(self, upload_id: str, uri: S3Uri) -> None:
        shutil.rmtree(self._folder(upload_id, uri), ignore_errors=True)

    def _folder(self, upload_id: str, uri: S3Uri) -> Path:
        folder = self.root / upload_id
        target = folder / "target.json"
        if not _UPLOAD_ID.match(upload_id) or not target.is_file():
            raise NoSuchUploadError(f"The upload {upload_id} does not exist or was completed")
        if json.loads(target.read_text()) != [uri.bucket, uri.key]:
            raise NoSuchUploadError(f"The upload {upload_id} is not for {uri}")
        return folder


def _check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PARTS:
        raise ValidationError(f"Part number must be an integer from 1 to {MAX_PARTS}: {number}")


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _etag(hexdigest: str) -> str:
    return f'"{hexdigest}"'
