"""Turning the two columns into table rows: IPv4 text to integers, entities and IP prefixes to
embedding rows.

Entities are opaque strings hashed into `num_entity_vectors` rows (feature hashing, as
SageMaker does): blake2b of the UTF-8 text, not Python's `hash`, which is salted per process
and would give a served model other rows than the trained one. An IP address becomes four rows
of one prefix table, one per prefix length /8, /16, /24 and /32: the /8 and /16 prefixes have
rows of their own (256 + 65,536), the /24 and /32 ones are hashed into `buckets` rows each
(a 64-bit mixer, vectorised over numpy arrays), so addresses of one subnet share their
leading rows and an unseen address of a known /24 still lands near its neighbours.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
UInt32s = npt.NDArray[np.uint32]

PREFIXES: Final = (8, 16, 24, 32)
DIRECT_ROWS: Final = 256 + 65_536
"""Rows of the /8 and /16 prefixes, which are indexed directly."""
MIN_BUCKETS: Final = 1024
MAX_BUCKETS: Final = 1 << 17
"""Hashed rows per prefix length (/24, /32): about the number of entity vectors, within these
bounds, so a small model stays small and a large one keeps collisions rare without spending
memory on more rows than a day of logins has subnets."""
_SALT_24: Final = np.uint64(0x9E3779B97F4A7C15)
_SALT_32: Final = np.uint64(0xC2B2AE3D27D4EB4F)


_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN: Final = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
"""Exactly what `parse_ipv4` accepts (after stripping), as a regular expression."""
_ALL_IPV4: Final = re.compile(rf"{IPV4_PATTERN}(?:\n{IPV4_PATTERN})*")


class AddressError(ValueError):
    """Text that is not a dotted-decimal IPv4 address."""


def parse_ipv4(text: str) -> int:
    """`a.b.c.d` (decimal, 0-255, no leading zeros, as `ipaddress` reads it) as an integer;
    surrounding whitespace is ignored. AddressError otherwise."""
    parts = text.strip().split(".")
    if len(parts) != 4:
        raise AddressError(f"'{_clip(text)}' is not an IPv4 address (a.b.c.d)")
    value = 0
    for part in parts:
        if (
            not (part.isascii() and part.isdigit())
            or len(part) > 3
            or (len(part) > 1 and part[0] == "0")
        ):
            raise AddressError(f"'{_clip(text)}' is not an IPv4 address (a.b.c.d)")
        octet = int(part)
        if octet > 255:
            raise AddressError(f"'{_clip(text)}' is not an IPv4 address: {octet} exceeds 255")
        value = value << 8 | octet
    return value


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def format_ipv4(value: int) -> str:
    return ".".join(str(value >> shift & 255) for shift in (24, 16, 8, 0))


def parse_valid(texts: Sequence[str]) -> UInt32s:
    """Addresses already known to match `IPV4_PATTERN` exactly, parsed by numpy in one call."""
    if not texts:
        return np.empty(0, dtype=np.uint32)
    octets = np.fromstring(".".join(texts), dtype=np.int64, sep=".").reshape(-1, 4)
    values = octets[:, 0] << 24 | octets[:, 1] << 16 | octets[:, 2] << 8 | octets[:, 3]
    return values.astype(np.uint32)


def parse_many(texts: Sequence[str]) -> tuple[UInt32s, int | None]:
    """The addresses as uint32, and the index of the first malformed one (None when all parse).

    One regular-expression match over all of them, then one numpy parse, when they are all
    plain addresses; else each distinct text parsed once, to find the first bad one."""
    if _ALL_IPV4.fullmatch("\n".join(texts)):
        return parse_valid(texts), None
    seen: dict[str, int] = {}
    out = np.empty(len(texts), dtype=np.uint32)
    for i, text in enumerate(texts):
        value = seen.get(text)
        if value is None:
            try:
                value = parse_ipv4(text)
            except AddressError:
                return out[:i], i
            seen[text] = value
        out[i] = value
    return out, None


def entity_rows(entities: Sequence[str], rows: int) -> Ints:
    """Each entity's row in a table of `rows`: blake2b-64 of its UTF-8 text, modulo `rows`
    (each distinct entity hashed once)."""
    seen: dict[str, int] = {}
    out = np.empty(len(entities), dtype=np.int64)
    for i, entity in enumerate(entities):
        row = seen.get(entity)
        if row is None:
            digest = hashlib.blake2b(entity.encode("utf-8"), digest_size=8).digest()
            row = int.from_bytes(digest, "little") % rows
            seen[entity] = row
        out[i] = row
    return out


def ip_buckets(num_entity_vectors: int) -> int:
    return int(min(max(num_entity_vectors, MIN_BUCKETS), MAX_BUCKETS))


def prefix_table_rows(buckets: int) -> int:
    return DIRECT_ROWS + 2 * buckets


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finaliser: every input bit reaches every output bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def prefix_rows(ips: Any, buckets: int) -> Ints:
    """(n, 4) rows of the prefix table for the /8, /16, /24 and /32 prefixes of each address."""
    ip = np.asarray(ips, dtype=np.uint32).astype(np.uint64).reshape(-1)
    out = np.empty((ip.shape[0], 4), dtype=np.int64)
    out[:, 0] = ip >> np.uint64(24)
    out[:, 1] = 256 + (ip >> np.uint64(16))
    with np.errstate(over="ignore"):
        h24 = _mix((ip >> np.uint64(8)) ^ _SALT_24) % np.uint64(buckets)
        h32 = _mix(ip ^ _SALT_32) % np.uint64(buckets)
    out[:, 2] = DIRECT_ROWS + h24.astype(np.int64)
    out[:, 3] = DIRECT_ROWS + buckets + h32.astype(np.int64)
    return out
