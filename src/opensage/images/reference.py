"""Image references as Docker spells them: `[host[:port]/]repository[:tag][@sha256:hex]`.

The store keys images by repository and tag alone, whatever the host: users copy image URIs
between registries (`<account>.dkr.ecr.<region>.amazonaws.com/my-algo:1`,
`localhost:8080/my-algo:1`, `my-algo:1`), and opensage is their one registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class ReferenceError(ValueError):
    """Not an image reference; the message says why."""


@dataclass(frozen=True)
class Reference:
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`repository:tag` (the tag `latest` when none is given), the store's key."""
        return f"{self.repository}:{self.tag or 'latest'}"


def parse_reference(image: str) -> Reference:
    rest, _, digest = image.partition("@")
    if digest and not DIGEST.match(digest):
        raise ReferenceError(f"'{image}' has an invalid digest (want sha256:<64 hex digits>)")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        rest = remainder  # a registry host: not part of the repository
    repository, colon, tag = rest.rpartition(":")
    if not colon or "/" in tag:
        repository, tag = rest, ""
    if not _REPOSITORY.match(repository):
        raise ReferenceError(
            f"'{image}' is not an image reference: the repository '{repository}' must be "
            "lower-case letters, digits and separators (. _ -), in /-separated parts"
        )
    if tag and not _TAG.match(tag):
        raise ReferenceError(f"'{image}' has an invalid tag '{tag}'")
    return Reference(repository, tag or None, digest or None)


def valid_repository(name: str) -> bool:
    return bool(_REPOSITORY.match(name))


def valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag))
