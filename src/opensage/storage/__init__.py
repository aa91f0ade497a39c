"""Object storage addressed by `s3://bucket/key` URIs, behind one small port."""

from opensage.storage.base import BucketNotEmptyError, ObjectInfo, ObjectStorage, S3Uri
from opensage.storage.local import LocalObjectStorage

__all__ = ["BucketNotEmptyError", "LocalObjectStorage", "ObjectInfo", "ObjectStorage", "S3Uri"]
