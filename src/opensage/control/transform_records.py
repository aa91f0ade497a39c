"""Batch transform's data path: input objects split into records, records packed into requests,
responses joined into the output object (spec hosting-transform-tuning §4.3 steps 4, 5 and 8).

Everything streams: an object is read chunk by chunk and only whole records travel on, so memory
stays bounded by a chunk, one record and one request. The hot case (a big CSV split by Line and
packed MultiRecord into 6 MB requests) costs no Python step per line: records move in blocks, a
chunk's bytes plus where each of its records ends, and a request is cut from a block by one
bisection on those ends. Per-record lists are built only where the caller asks for them
(`keep_records`, for DataProcessing) or where the work is per record anyway (SingleRecord).

Positions in errors are those a person can look up in their file: record numbers count from 1,
byte offsets are in the decompressed object.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import io
import itertools
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, NoReturn, cast

import numpy as np

from opensage.formats.recordio import HEADER_SIZE, MAGIC, MAGIC_BYTES, MAX_LENGTH, padding

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

SPLIT_TYPES = ("None", "Line", "RecordIO", "TFRecord")
STRATEGIES = ("SingleRecord", "MultiRecord")
COMPRESSIONS = ("None", "Gzip")
ASSEMBLE_WITH = ("None", "Line")
CHUNK_SIZE = 1 << 20

_MB = 1 << 20
_RECORDIO_HEADER = struct.Struct("<II")
_TFRECORD_HEADER = struct.Struct("<QI")  # payload length, masked CRC32C of the length bytes
_TFRECORD_FOOTER = 4  # masked CRC32C of the payload
_LENGTH = struct.Struct("<Q")


class SplitError(Exception):
    """An object that cannot be cut into records or requests; the runner fails that object.

    The message says what and where; `record` (1-based) and `offset` (byte in the decompressed
    object) repeat the where for callers, None where unknown.
    """

    def __init__(self, message: str, record: int | None = None, offset: int | None = None) -> None:
        # All three in args, so the error survives pickling (a runner may use processes).
        super().__init__(message, record, offset)
        self.message = message
        self.record = record
        self.offset = offset

    def __str__(self) -> str:
        return self.message


class RecordTooLarge(SplitError):
    """One record alone is over MaxPayloadInMB: SageMaker fails the object, it never cuts a
    record in two."""


# --- decompression -------------------------------------------------------------------------------


def open_object(stream: BinaryIO, compression: str) -> BinaryIO:
    """The object's bytes as its records are made of (`TransformInput.CompressionType`)."""
    if compression == "None":
        return stream
    if compression == "Gzip":
        return cast(BinaryIO, io.BufferedReader(_Gunzip(stream), CHUNK_SIZE))
    raise ValueError(
        f"CompressionType must be one of {', '.join(COMPRESSIONS)}; got {compression!r}"
    )


class _Gunzip(io.RawIOBase):
    """A gzip stream whose corruption surfaces as SplitError.

    Bad gzip is only discovered by the read that reaches it, deep inside a splitter; gzip reports
    it as OSError, EOFError or zlib.error, which a runner cannot tell from a failing disk or
    socket. Concatenated members are read in turn, as `zcat` does.
    """

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._gzip = gzip.GzipFile(fileobj=stream, mode="rb")
        self._offset = 0  # decompressed bytes delivered so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        with memoryview(buffer) as view, view.cast("B") as out:
            try:
                # read1: what one step decompresses, so bytes before a corruption get through.
                data = self._gzip.read1(len(out))
            except (OSError, EOFError, zlib.error) as exc:
                raise SplitError(
                    f"Cannot gunzip the object (CompressionType is Gzip) after {self._offset} "
                    f"bytes of output: {exc}. Check that it is a whole gzip file, or set "
                    "CompressionType to None",
                    offset=self._offset,
                ) from exc
            out[: len(data)] = data
        self._offset += len(data)
        return len(data)

    def close(self) -> None:
        self._gzip.close()
        super().close()


# --- splitting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """Consecutive whole records of one object: record i is `data[ends[i-1]:ends[i]]` (record 0
    starts at 0; `ends[-1] == len(data)`). `offset` is where `data` starts in the object and
    `index` the 0-based index of its first record."""

    data: bytes
    ends: list[int]
    offset: int
    index: int


def iter_records(
    stream: BinaryIO, split_type: str, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """Each record of the object, with its framing exactly as in the input (`SplitType`).

    `None`: the whole object (read into memory: it is one request anyway). `Line`: each line with
    its `\\n` (a `\\r` before it stays too); a last line without one is a record as well.
    `RecordIO`: each logical record, all its frames (a multi-part record's parts together).
    `TFRecord`: each record, checking the CRC of its length but not that of its payload: a
    table-driven CRC32C costs about 130 ns a byte in Python (13 s per 100 MB), far more than the
    rest of the data path; a corrupt payload is the model's to reject. An empty object has no
    records. Malformed input raises SplitError when the splitter reaches it.
    """
    return _records_of(_blocks(stream, split_type, chunk_size))


def _records_of(blocks: Iterable[_Block]) -> Iterator[bytes]:
    for block in blocks:
        data = block.data
        start = 0
        for end in block.ends:
            yield data[start:end]
            start = end


def _blocks(stream: BinaryIO, split_type: str, chunk_size: int) -> Iterator[_Block]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1; got {chunk_size}")
    if split_type == "None":
        return _whole_object(stream)
    if split_type == "Line":
        return _line_blocks(stream, chunk_size)
    if split_type == "RecordIO":
        return _framed_blocks(stream, chunk_size, _recordio_end)
    if split_type == "TFRecord":
        return _framed_blocks(stream, chunk_size, _tfrecord_end)
    raise ValueError(f"SplitType must be one of {', '.join(SPLIT_TYPES)}; got {split_type!r}")


def _whole_object(stream: BinaryIO) -> Iterator[_Block]:
    data = stream.read()
    if data:
        yield _Block(data, [len(data)], 0, 0)


def _line_blocks(stream: BinaryIO, chunk_size: int) -> Iterator[_Block]:
    offset = index = 0
    for data in _whole_lines(stream, chunk_size):
        newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
        ends: list[int] = (newlines + 1).tolist()
        if not ends or ends[-1] != len(data):
            ends.append(len(data))  # the object's last line, without a newline
        yield _Block(data, ends, offset, index)
        offset += len(data)
        index += len(ends)


def _whole_lines(stream: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    """The object in pieces that each end after a newline (the last one may not)."""
    carry: list[bytes] = []  # a line begun in earlier chunks; a list, so a huge line is joined once
    while chunk := stream.read(chunk_size):
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            carry.append(chunk)
            continue
        yield b"".join((*carry, chunk[:cut])) if carry else chunk[:cut]
        carry = [chunk[cut:]] if cut < len(chunk) else []
    if carry:
        yield b"".join(carry)


class _Window:
    """The not yet split rest of a stream: `data` holds its bytes from object offset `base` on.

    `data` is one bytearray for the window's life, grown and trimmed in place (so a scanner may
    hold on to it across `has`), a chunk at a time: a record many chunks long costs linear time.
    """

    def __init__(self, stream: BinaryIO, chunk_size: int) -> None:
        self.stream = stream
        self.chunk_size = chunk_size
        self.data = bytearray()
        self.base = 0

    def has(self, size: int) -> bool:
        """Whether the window holds `size` bytes, reading on as needed; False at the end."""
        while len(self.data) < size:
            chunk = self.stream.read(self.chunk_size)
            if not chunk:
                return False
            self.data += chunk
        return True

    def block(self, ends: list[int], index: int) -> _Block:
        """The records that end at `ends` (the first one at the window's start), taken out."""
        size = ends[-1]
        block = _Block(bytes(self.data[:size]), ends, self.base, index)
        del self.data[:size]
        self.base += size
        return block


_RecordEnd = Callable[[_Window, int, int], int]
"""(window, where a record starts in it, its 1-based number) -> where it ends in the window."""


def _framed_blocks(stream: BinaryIO, chunk_size: int, record_end: _RecordEnd) -> Iterator[_Block]:
    """Blocks of about a chunk; at a broken record, the whole ones before it first, then the
    SplitError."""
    window = _Window(stream, chunk_size)
    index = 0
    while window.has(1):
        ends: list[int] = []
        try:
            while not ends or (ends[-1] < chunk_size and window.has(ends[-1] + 1)):
                ends.append(record_end(window, ends[-1] if ends else 0, index + len(ends) + 1))
        except SplitError:
            if ends:
                yield window.block(ends, index)
            raise
        yield window.block(ends, index)
        index += len(ends)


def _recordio_end(window: _Window, start: int, number: int) -> int:
    """dmlc's rule: a record is one frame flagged 0, or frames flagged 1, 2..., 3. A missing final
    pad is forgiven at the very end of the object, as dmlc's reader does."""
    data = window.data
    pos = start
    while True:
        frame, where = pos, window.base + pos
        if len(data) < pos + HEADER_SIZE and not window.has(pos + HEADER_SIZE):
            left = len(data) - pos
            _fail("RecordIO", number, where, f"truncated header, {left} of {HEADER_SIZE} bytes")
        magic, lrec = _RECORDIO_HEADER.unpack_from(data, pos)
        if magic != MAGIC:
            _fail("RecordIO", number, where, f"bad magic 0x{magic:08x} (expected 0x{MAGIC:08x})")
        flag, length = lrec >> 29, lrec & MAX_LENGTH
        if flag > 3:
            _fail("RecordIO", number, where, f"bad continuation flag {flag} (0 to 3 allowed)")
        if pos == start and flag > 1:
            _fail("RecordIO", number, where, f"continuation part (flag {flag}) without a first")
        if pos > start and flag < 2:
            _fail("RecordIO", number, where, "record ends without its last part (flag 3)")
        stop = pos + HEADER_SIZE + length
        pos = stop + padding(length)
        if len(data) < pos and not window.has(pos):
            if len(data) < stop:
                left = len(data) - frame - HEADER_SIZE
                what = f"truncated: header says {length} bytes, {left} remain"
                _fail("RecordIO", number, where, what)
            pos = len(data)
        if flag in (0, 3):
            return int(pos)


def _tfrecord_end(window: _Window, start: int, number: int) -> int:
    data, where = window.data, window.base + start
    header = _TFRECORD_HEADER.size
    if len(data) < start + header and not window.has(start + header):
        left = len(data) - start
        _fail("TFRecord", number, where, f"truncated header, {left} of {header} bytes")
    length, stored = _TFRECORD_HEADER.unpack_from(data, start)
    computed = _length_crc(length)
    if computed != stored:
        crcs = f"stored 0x{stored:08x}, computed 0x{computed:08x}"
        _fail("TFRecord", number, where, f"bad length CRC ({crcs}); is this TFRecord data?")
    end = start + header + int(length) + _TFRECORD_FOOTER
    if len(data) < end and not window.has(end):
        left = len(data) - start - header
        _fail("TFRecord", number, where, f"truncated: header says {length}+4 bytes, {left} remain")
    return end


@functools.lru_cache(maxsize=4096)
def _length_crc(length: int) -> int:
    """Files tend to repeat record lengths; a CRC computed in Python is worth remembering."""
    return masked_crc32c(_LENGTH.pack(length))


def _fail(kind: str, number: int, offset: int, what: str) -> NoReturn:
    raise SplitError(f"{kind} record {number} at byte {offset}: {what}", number, offset)


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes | bytearray) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses (zlib only has the other CRC-32)."""
    table = _CRC32C_TABLE
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray) -> int:
    """TFRecord's stored form of a CRC, rotated and offset so a CRC of CRCs is not trivial."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def payload(record: bytes, split_type: str) -> bytes:
    """The record without its framing, what SingleRecord sends.

    RecordIO: the payload of its frames; a multi-part record's parts with the magic word put
    back between them (a writer cuts a payload only at a magic word and drops it, dmlc's reader
    restores it). TFRecord: the bytes between the header and the payload CRC.
    """
    if split_type in ("None", "Line"):
        return record
    if split_type == "RecordIO":
        parts = []
        pos = 0
        while pos < len(record):
            length = _RECORDIO_HEADER.unpack_from(record, pos)[1] & MAX_LENGTH
            parts.append(record[pos + HEADER_SIZE : pos + HEADER_SIZE + length])
            pos += HEADER_SIZE + length + padding(length)
        return parts[0] if len(parts) == 1 else MAGIC_BYTES.join(parts)
    if split_type == "TFRecord":
        return record[_TFRECORD_HEADER.size : len(record) - _TFRECORD_FOOTER]
    raise ValueError(f"SplitType must be one of {', '.join(SPLIT_TYPES)}; got {split_type!r}")


# --- mini-batches --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MiniBatch:
    """One request: `body` is what is POSTed to /invocations.

    `index` is its 0-based position among the object's requests, `first` the 0-based index of its
    first record in the object, `count` how many records it carries and `offset` the byte where
    its first record starts. `records` holds those records as `iter_records` yields them (with
    framing), but only when asked for (`keep_records=True`, for DataProcessing, which matches a
    response's lines to records); otherwise it is empty, so the fast path never builds a Python
    object per record.
    """

    index: int
    first: int
    count: int
    offset: int
    body: bytes
    records: list[bytes]


def mini_batches(
    records: Iterable[bytes],
    split_type: str,
    strategy: str,
    max_payload: int | None,
    *,
    keep_records: bool = False,
) -> Iterator[MiniBatch]:
    """The requests for one object's records, in order (`BatchStrategy`, `MaxPayloadInMB`).

    `records` are consecutive records of one object as `iter_records` yields them (offsets in
    errors count their bytes from the object's start). `max_payload` is in bytes, None for no
    limit (MaxPayloadInMB 0). SingleRecord: one record per request, its framing stripped
    (`payload`), as SageMaker does for binary formats. MultiRecord: as many consecutive records as
    fit in `max_payload`, framing kept, never splitting one. A record alone over the limit raises
    RecordTooLarge when reached (batches before it have been yielded). No records, no batches.

    `object_batches` gives the same batches straight from a stream, faster.
    """
    _check_batching(split_type, strategy, max_payload)
    if strategy == "SingleRecord":
        return _single(records, split_type, _bytes_limit(max_payload), keep_records)
    return _multi(_grouped(records), _bytes_limit(max_payload), keep_records)


def object_batches(
    stream: BinaryIO,
    split_type: str,
    strategy: str,
    max_payload: int | None,
    *,
    keep_records: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[MiniBatch]:
    """`mini_batches(iter_records(stream, split_type, chunk_size), ...)`, without making a bytes
    object per record for MultiRecord: requests are sliced out of the splitter's chunks."""
    _check_batching(split_type, strategy, max_payload)
    blocks = _blocks(stream, split_type, chunk_size)
    if strategy == "SingleRecord":
        return _single(_records_of(blocks), split_type, _bytes_limit(max_payload), keep_records)
    return _multi(blocks, _bytes_limit(max_payload), keep_records)


def _check_batching(split_type: str, strategy: str, max_payload: int | None) -> None:
    if split_type not in SPLIT_TYPES:
        raise ValueError(f"SplitType must be one of {', '.join(SPLIT_TYPES)}; got {split_type!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"BatchStrategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if max_payload is not None and max_payload < 1:
        raise ValueError(f"max_payload must be a positive byte count or None; got {max_payload}")


def _bytes_limit(max_payload: int | None) -> int:
    return sys.maxsize if max_payload is None else max_payload


def _single(
    records: Iterable[bytes], split_type: str, limit: int, keep: bool
) -> Iterator[MiniBatch]:
    offset = 0
    for index, record in enumerate(records):
        body = payload(record, split_type)
        if len(body) > limit:
            raise _too_large(index + 1, offset, len(body), limit)
        yield MiniBatch(index, index, 1, offset, body, [record] if keep else [])
        offset += len(record)


def _grouped(records: Iterable[bytes]) -> Iterator[_Block]:
    """Records gathered into blocks of about a chunk, for the block packer."""
    parts: list[bytes] = []
    ends: list[int] = []
    size = offset = index = 0
    for record in records:
        parts.append(record)
        size += len(record)
        ends.append(size)
        if size >= CHUNK_SIZE:
            yield _Block(b"".join(parts), ends, offset, index)
            offset += size
            index += len(ends)
            parts, ends, size = [], [], 0
    if parts:
        yield _Block(b"".join(parts), ends, offset, index)


def _multi(blocks: Iterable[_Block], limit: int, keep: bool) -> Iterator[MiniBatch]:
    """Greedy packing: a block's records k..j-1 fit while `ends[j-1] - start <= limit - size`,
    so one bisection finds a request's last record in a block."""
    pieces: list[memoryview] = []  # the request's bytes: slices of one or more blocks
    kept: list[bytes] = []
    size = count = first = offset = index = 0
    for block in blocks:
        data, ends = block.data, block.ends
        view = memoryview(data)
        k = start = 0  # the block's next record, and where it starts
        while k < len(ends):
            if not count:
                first, offset = block.index + k, block.offset + start
            j = bisect.bisect_right(ends, start + limit - size, k)
            if j > k:
                end = ends[j - 1]
                pieces.append(view[start:end])
                if keep:
                    kept += [data[a:b] for a, b in itertools.pairwise([start, *ends[k:j]])]
                size += end - start
                count += j - k
                k, start = j, end
            if k < len(ends):
                if not count:
                    raise _too_large(
                        block.index + k + 1, block.offset + start, ends[k] - start, limit
                    )
                yield MiniBatch(index, first, count, offset, b"".join(pieces), kept)
                index += 1
                pieces, kept, size, count = [], [], 0, 0
    if count:
        yield MiniBatch(index, first, count, offset, b"".join(pieces), kept)


def _too_large(number: int, offset: int, size: int, limit: int) -> RecordTooLarge:
    if limit % _MB == 0:
        what = f"the MaxPayloadInMB limit of {limit // _MB} MB ({limit} bytes)"
    else:
        what = f"the payload limit of {limit} bytes"
    return RecordTooLarge(
        f"Record {number} (starting at byte {offset}) is {size} bytes, over {what}; SageMaker "
        "never splits a record: raise MaxPayloadInMB (at most 100) or cut the input into "
        "smaller records",
        number,
        offset,
    )


# --- output --------------------------------------------------------------------------------------


def assembled(bodies: Iterable[bytes], assemble_with: str) -> Iterator[bytes]:
    """Response bodies as they go into the output object, in input order (`AssembleWith`).

    `None`: each body as it is. `Line`: each body ending in a newline, added unless it has one
    (spec §4.3 step 8). An empty body becomes a lone newline: one line per request, so a
    SingleRecord output keeps one line per input record even where the model answered nothing.
    """
    if assemble_with == "None":
        return iter(bodies)
    if assemble_with == "Line":
        return (body if body.endswith(b"\n") else body + b"\n" for body in bodies)
    raise ValueError(
        f"AssembleWith must be one of {', '.join(ASSEMBLE_WITH)}; got {assemble_with!r}"
    )
