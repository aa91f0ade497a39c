"""Object storage addressed by `s3://bucket/key` URIs, behind one small port."""

from opensage.storage.base import BucketNotEmptyError, ObjectInfo, ObjectStorage, S3Uri
from opensage.storage.local import LocalObjectStorage
from opensage.storage.s3 import S3ObjectStorage
from opensage.storage.urls import from_url

__all__ = [
    "BucketNotEmptyError",
    "LocalObjectStorage",
    "ObjectInfo",
    "ObjectStorage",
    "S3ObjectStorage",
    "S3Uri",
    "from_url",
]
