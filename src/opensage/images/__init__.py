"""Container images without a Docker daemon: a content-addressed OCI store, the archive formats
images travel in, and layers unpacked safely into root file systems the runtime runs."""

from opensage.images.archives import load
from opensage.images.reference import Reference, ReferenceError, parse_reference
from opensage.images.store import Image, ImageError, ImageNotFound, ImageStore, user_ids

__all__ = [
    "Image",
    "ImageError",
    "ImageNotFound",
    "ImageStore",
    "Reference",
    "ReferenceError",
    "load",
    "parse_reference",
    "user_ids",
]
