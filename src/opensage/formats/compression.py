"""Gzip detected by its magic bytes, on any reader's input.

SageMaker users hand us `.gz` objects under names that do not say so (and plain files named
`.gz`), so readers look at the first two bytes rather than at the name.
"""

from __future__ import annotations

import gzip
import io
from typing import BinaryIO, cast

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(head: bytes) -> bool:
    """Whether `head` (the first bytes of a stream) starts a gzip member."""
    return head[:2] == GZIP_MAGIC


class _Prefixed(io.RawIOBase):
    """A stream that first returns `head`, then the rest of `stream`: lets us sniff the magic of
    a non-seekable, non-peekable stream (a pipe) without losing the bytes we read."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def decompressed(stream: BinaryIO) -> BinaryIO:
    """`stream` itself, or a stream of its decompressed bytes when it starts with gzip magic.

    Concatenated gzip members are decompressed in turn, as `gzip` and the `zcat` tool do.
    """
    peek = getattr(stream, "peek", None)
    head = bytes(peek(2)[:2]) if peek is not None else b""
    if len(head) < 2:  # no peek, or it returned fewer bytes than asked (not always the end)
        head = _read_upto(stream, 2)
        stream = cast(BinaryIO, io.BufferedReader(_Prefixed(head, stream)))
    if is_gzip(head):
        return cast(BinaryIO, gzip.GzipFile(fileobj=stream, mode="rb"))
    return stream


def _read_upto(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes: fewer only at the end (raw streams may return short reads)."""
    out = b""
    while len(out) < size:
        data = stream.read(size - len(out))
        if not data:
            break
        out += data
    return out


def decompress_bytes(data: bytes) -> bytes:
    """`data`, gunzipped when it starts with gzip magic."""
    return gzip.decompress(data) if is_gzip(data) else data


def gzip_bytes(data: bytes, *, mtime: float = 0) -> bytes:
    """`data` as one gzip member, reproducibly (fixed mtime) so tests and goldens are stable."""
    return gzip.compress(data, mtime=mtime)
