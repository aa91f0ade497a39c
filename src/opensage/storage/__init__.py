"""Object storage addressed by `s3://bucket/key` URIs, behind one small port."""

from opensage.storage.base import ObjectInfo, ObjectStorage, S3Uri
from opensage.storage.local import LocalObjectStorage

__all__ = ["LocalObjectStorage", "ObjectInfo", "ObjectStorage", "S3Uri"]
