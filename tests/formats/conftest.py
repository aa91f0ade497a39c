"""Shared helpers for the formats tests."""

from __future__ import annotations

import io
from typing import BinaryIO


class Trickle(io.RawIOBase):
    """A non-seekable stream that returns at most `step` bytes per read, like a pipe: exercises
    every chunk boundary of the streaming readers."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def trickle(data: bytes, step: int = 7) -> BinaryIO:
    return Trickle(data, step)  # type: ignore[return-value]
