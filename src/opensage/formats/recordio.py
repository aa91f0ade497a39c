"""The dmlc/MXNet RecordIO framing (spec training-and-data 2.4), exactly.

    record := magic(4) lrec(4) data(len) pad(0..3)     all words uint32 little-endian
    lrec   := cflag << 29 | len                        cflag 0 whole, 1 first, 2 middle, 3 last

Writers behave like the SageMaker SDK's (one part, cflag 0) so our files are byte-identical to
it; a payload can only be cut where it holds the magic at an aligned offset (the reader puts the
magic back between parts), which is dmlc's rule and the only split a dmlc reader undoes.

Readers implement dmlc's full rule (multi-part records reassembled), stream in constant memory,
and frame a buffer without a Python step per record: every header is an aligned magic word, so
numpy finds them all at once and checks that each record's length leads exactly to the next
(`_chain`); only where that fails (a magic word inside a payload, multi-part records, errors)
does a per-record loop take over.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from opensage.formats.errors import RecordError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
MAX_LENGTH = (1 << 29) - 1
"""The largest part the 29-bit length field can describe."""
HEADER_SIZE = 8
CHUNK_SIZE = 1 << 22

_HEADER = struct.Struct("<II")
_PAD = (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00")
_MIN_RUN = 4  # records a vectorised chain must cover to be tried again at once

Int64Array = npt.NDArray[np.int64]


def padding(length: int) -> int:
    """Zero bytes after a part of `length` bytes, to the next multiple of 4."""
    return -length & 3


def _header(cflag: int, length: int) -> bytes:
    return _HEADER.pack(MAGIC, (cflag << 29) | length)


def magic_cuts(payload: bytes) -> list[int]:
    """The aligned offsets where `payload` holds the magic word (dmlc `WriteRecord` cuts there)."""
    aligned = len(payload) & ~3
    if aligned == 0 or MAGIC_BYTES not in payload:
        return []
    words = np.frombuffer(payload, dtype="<u4", count=aligned // 4)
    return [int(i) * 4 for i in np.flatnonzero(words == MAGIC)]


def encode_record(
    payload: bytes, *, split_magic: bool = False, max_part: int = MAX_LENGTH
) -> bytes:
    """One payload framed as one RecordIO record.

    By default it is written whole (cflag 0) as the SageMaker SDK does, unless it is longer than
    `max_part` (the 29-bit length limit): then, and always with `split_magic=True` (dmlc's own
    writer), it is cut at each aligned magic word into parts flagged 1, 2, ..., 3. A payload too
    long for one part and without cut points cannot be framed at all: `ValueError`.
    """
    payload = bytes(payload)
    length = len(payload)
    if length <= max_part and not split_magic:
        return b"".join((_header(0, length), payload, _PAD[padding(length)]))
    cuts = magic_cuts(payload)
    if not cuts:
        if length > max_part:
            raise ValueError(
                f"a RecordIO part holds at most {max_part} bytes; this payload has {length} "
                "and no aligned magic word to cut it at"
            )
        return b"".join((_header(0, length), payload, _PAD[padding(length)]))
    out: list[bytes] = []
    start = 0
    for cut in cuts:
        part = payload[start:cut]
        if len(part) > max_part:
            raise ValueError(f"a RecordIO part holds at most {max_part} bytes; one has {len(part)}")
        out += (_header(1 if start == 0 else 2, len(part)), part)
        start = cut + 4
    last = payload[start:]
    if len(last) > max_part:
        raise ValueError(f"a RecordIO part holds at most {max_part} bytes; one has {len(last)}")
    out += (_header(3, len(last)), last, _PAD[padding(len(last))])
    return b"".join(out)


def write_records(file: BinaryIO, payloads: Iterable[bytes], *, split_magic: bool = False) -> int:
    """Frame and write each payload; returns the number of bytes written."""
    written = 0
    for payload in payloads:
        framed = encode_record(payload, split_magic=split_magic)
        file.write(framed)
        written += len(framed)
    return written


@dataclass(frozen=True)
class Frames:
    """The records framed in one buffer: record i is `data[starts[i]:starts[i] + lengths[i]]`.

    `offsets[i]` is the byte offset of the record's first header in the whole stream and
    `first_index` the stream-wide index of record 0, so decoders can name a broken record.
    """

    data: bytes
    starts: Int64Array
    lengths: Int64Array
    offsets: Int64Array
    first_index: int

    def __len__(self) -> int:
        return len(self.starts)

    def payload(self, i: int) -> bytes:
        start = int(self.starts[i])
        return self.data[start : start + int(self.lengths[i])]

    def payloads(self) -> list[bytes]:
        data = self.data
        return [
            data[s : s + n]
            for s, n in zip(self.starts.tolist(), self.lengths.tolist(), strict=True)
        ]


class _Scanner:
    """Frames consecutive buffers of one stream, carrying a multi-part record across them."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.index = 0  # stream-wide index of the next record
        self.parts: list[bytes] = []  # a multi-part record in progress
        self.parts_offset = 0

    def error(self, message: str, offset: int, index: int | None = None) -> RecordError:
        record = self.index if index is None else index
        return RecordError(message, source=self.source, record=record, offset=offset)

    def scan(self, buf: bytes, base: int, final: bool) -> tuple[Frames, int]:
        """Frame the whole records in `buf` (whose byte 0 is stream offset `base`); returns them
        and how many bytes were consumed. With `final`, leftover bytes are a truncated record."""
        end = len(buf)
        pieces: list[tuple[Int64Array, Int64Array]] = []  # (payload starts, lengths), in order
        singles: tuple[list[int], list[int]] = ([], [])
        extra: list[tuple[int, bytes, int]] = []  # (position in order, payload, header offset)
        done = 0  # records framed so far in this buffer
        pos = 0
        patience = 0  # per-record steps left before trying a vectorised chain again
        unpack = _HEADER.unpack_from
        first_index = self.index
        while pos + HEADER_SIZE <= end:
            if patience <= 0 and not self.parts:
                heads, lengths, after = _chain(buf, pos, end, final)
                if len(heads):
                    if singles[0]:
                        pieces.append(_arrays(singles))
                    pieces.append((heads + HEADER_SIZE, lengths))
                    done += len(heads)
                    self.index += len(heads)
                    pos = after
                    patience = 0 if len(heads) >= _MIN_RUN else 64
                    continue
                patience = 64
            patience -= 1
            magic, lrec = unpack(buf, pos)
            if magic != MAGIC:
                raise self.error(
                    f"bad RecordIO magic 0x{magic:08x} (expected 0x{MAGIC:08x})", base + pos
                )
            cflag, length = lrec >> 29, lrec & MAX_LENGTH
            stride = HEADER_SIZE + length + padding(length)
            if pos + stride > end and not (final and pos + HEADER_SIZE + length <= end):
                break  # incomplete (a missing final pad is forgiven at the very end)
            if cflag > 3:
                raise self.error(f"bad RecordIO continuation flag {cflag}", base + pos)
            if cflag == 0:
                if self.parts:
                    raise self.error(
                        "RecordIO record ends without its last part (flag 3)", self.parts_offset
                    )
                singles[0].append(pos + HEADER_SIZE)
                singles[1].append(length)
                done += 1
                self.index += 1
                pos = min(pos + stride, end)
                continue
            payload = buf[pos + HEADER_SIZE : pos + HEADER_SIZE + length]
            if cflag == 1:
                if self.parts:
                    raise self.error(
                        "RecordIO record starts before the previous one ended", base + pos
                    )
                self.parts, self.parts_offset = [payload], base + pos
            else:
                if not self.parts:
                    raise self.error(
                        f"RecordIO continuation part (flag {cflag}) without a first part",
                        base + pos,
                    )
                self.parts += (MAGIC_BYTES, payload)
                if cflag == 3:
                    extra.append((done, b"".join(self.parts), self.parts_offset))
                    done += 1
                    self.parts = []
                    self.index += 1
            pos = min(pos + stride, end)
        if singles[0]:
            pieces.append(_arrays(singles))
        if final and pos < end:
            remaining = end - pos
            if remaining < HEADER_SIZE:
                message = f"truncated RecordIO header ({remaining} of 8 bytes)"
            else:
                length = unpack(buf, pos)[1] & MAX_LENGTH
                message = (
                    f"truncated RecordIO record: header says {length} bytes, "
                    f"{remaining - HEADER_SIZE} remain"
                )
            raise self.error(message, base + pos)
        if final and self.parts:
            raise self.error(
                "RecordIO record ends without its last part (flag 3)", self.parts_offset
            )
        return _frames(buf, base, pieces, extra, first_index), pos


def _arrays(singles: tuple[list[int], list[int]]) -> tuple[Int64Array, Int64Array]:
    out = (np.array(singles[0], dtype=np.int64), np.array(singles[1], dtype=np.int64))
    singles[0].clear()
    singles[1].clear()
    return out


def _chain(buf: bytes, pos: int, end: int, final: bool) -> tuple[Int64Array, Int64Array, int]:
    """Frame whole records from `pos` without a Python step per record.

    Every record header is an aligned magic word, so the candidates are all aligned magic words;
    a payload may contain more. Following lengths from `pos`, record i+1 must start exactly at the
    next candidate after record i: where it does not (a magic word inside a payload), or at a
    multi-part or incomplete record, the chain stops and the per-record loop takes over.
    Returns header positions, payload lengths, and where the chain ends.
    """
    empty = np.empty(0, dtype=np.int64)
    count = (end - pos) // 4
    if count < 2:
        return empty, empty, pos
    words = np.frombuffer(buf, dtype="<u4", count=count, offset=pos)
    if words[0] != MAGIC:
        return empty, empty, pos
    uniform = _uniform(words, pos, end, final)
    if uniform is not None:
        return uniform
    cand = np.flatnonzero(words == MAGIC)
    cand = cand[cand + 1 < count]
    lrec = words[cand + 1].astype(np.int64)
    length = lrec & MAX_LENGTH
    heads = cand * 4
    nxt = heads + HEADER_SIZE + ((length + 3) & ~3)
    stop = heads + HEADER_SIZE + length if final else nxt
    valid = ((lrec >> 29) == 0) & (stop <= end - pos)
    valid[1:] &= nxt[:-1] == heads[1:]
    n = len(valid) if valid.all() else int(np.argmin(valid))
    if n == 0:
        return empty, empty, pos
    return heads[:n] + pos, length[:n], min(pos + int(nxt[n - 1]), end)


def _uniform(
    words: npt.NDArray[np.uint32], pos: int, end: int, final: bool
) -> tuple[Int64Array, Int64Array, int] | None:
    """Dense data: when every record has the first one's length, checking one header per record
    (not every word) frames them. None when the buffer does not hold at least two such records."""
    lrec = int(words[1])
    length = lrec & MAX_LENGTH
    stride = HEADER_SIZE + length + padding(length)
    if lrec >> 29 or stride % 4:
        return None
    n = (end - pos) // stride
    if n < 2:
        return None
    heads = words[: n * stride // 4].reshape(n, stride // 4)[:, :2]
    same = (heads[:, 0] == MAGIC) & (heads[:, 1] == lrec)
    k = n if same.all() else int(np.argmin(same))
    if k < 2:
        return None
    # Record i+1 starts where record i's length says, so these are the real headers, in order.
    positions = np.arange(k, dtype=np.int64) * stride
    lengths = np.full(k, length, dtype=np.int64)
    return positions + pos, lengths, pos + k * stride


def _frames(
    buf: bytes,
    base: int,
    pieces: list[tuple[Int64Array, Int64Array]],
    extra: list[tuple[int, bytes, int]],
    first_index: int,
) -> Frames:
    if pieces:
        starts = np.concatenate([p[0] for p in pieces])
        lengths = np.concatenate([p[1] for p in pieces])
    else:
        starts = np.empty(0, dtype=np.int64)
        lengths = np.empty(0, dtype=np.int64)
    offsets = starts - HEADER_SIZE + base
    data = buf
    if extra:
        # Reassembled multi-part payloads live after the buffer (rare: copy once).
        data = bytes(buf) + b"".join(p for _, p, _ in extra)
        at = len(buf)
        for position, payload, offset in extra:
            starts = np.insert(starts, position, at)
            lengths = np.insert(lengths, position, len(payload))
            offsets = np.insert(offsets, position, offset)
            at += len(payload)
    return Frames(bytes(data), starts, lengths, offsets, first_index)


def split_frames(data: bytes, *, source: str | None = None) -> Frames:
    """Frame every record of a whole buffer (the fast path: no copies for whole records)."""
    frames, _ = _Scanner(source).scan(bytes(data), 0, final=True)
    return frames


def iter_frames(
    file: BinaryIO, *, source: str | None = None, chunk_size: int = CHUNK_SIZE
) -> Iterator[Frames]:
    """Frame a stream chunk by chunk, in memory bounded by the chunk and the largest record."""
    scanner = _Scanner(source)
    pending = b""
    base = 0
    while True:
        chunk = file.read(chunk_size)
        buf = pending + chunk if pending else bytes(chunk)
        final = not chunk
        frames, used = scanner.scan(buf, base, final)
        if len(frames):
            yield frames
        if final:
            return
        base += used
        pending = buf[used:]
        if len(pending) >= HEADER_SIZE:
            need = HEADER_SIZE + (_HEADER.unpack_from(pending)[1] & MAX_LENGTH)
            if need > len(pending) + chunk_size:  # one record bigger than a chunk: read it whole
                pending += _read_exactly(file, need - len(pending))


def _read_exactly(file: BinaryIO, size: int) -> bytes:
    parts = []
    while size > 0:
        data = file.read(size)
        if not data:
            break
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


def read_records(
    file: BinaryIO, *, source: str | None = None, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """Each record's payload, multi-part records reassembled, streaming in constant memory."""
    for frames in iter_frames(file, source=source, chunk_size=chunk_size):
        yield from frames.payloads()


def read_all_records(data: bytes, *, source: str | None = None) -> list[bytes]:
    """Every record's payload in a whole buffer."""
    return split_frames(data, source=source).payloads()
