"""JSON Lines (`application/jsonlines`): one JSON value per line (spec training-and-data 2.3).

Used by DeepAR, Object2Vec, batch transform output and augmented manifests. Blank lines are
skipped; a line that is not JSON raises `RecordError` with its index and byte offset.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from opensage.formats.compression import decompressed
from opensage.formats.errors import RecordError


def iter_lines(stream: BinaryIO) -> Iterator[tuple[int, int, bytes]]:
    """(line index, byte offset, stripped line) of each non-blank line; gzip detected."""
    offset = 0
    for number, raw in enumerate(decompressed(stream)):
        start = offset
        offset += len(raw)
        line = raw.strip()
        if line:
            yield number, start, line


def read_jsonlines(data: bytes | BinaryIO, *, source: str | None = None) -> Iterator[Any]:
    """Each line's JSON value, streaming."""
    stream: BinaryIO = io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray) else data
    for number, offset, line in iter_lines(stream):
        try:
            yield json.loads(line)
        except ValueError as exc:
            raise RecordError(
                f"not JSON ({exc}) (line {number + 1})", source=source, record=number, offset=offset
            ) from None


def dumps_line(value: Any) -> bytes:
    """One JSON Lines line: compact JSON and a newline."""
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def encode_jsonlines(values: Iterable[Any]) -> bytes:
    """Several values as JSON Lines."""
    return b"".join(dumps_line(v) for v in values)


def write_jsonlines(file: BinaryIO, values: Iterable[Any]) -> None:
    """Write values as JSON Lines."""
    for value in values:
        file.write(dumps_line(value))
