"""Walk many serialized `Record`s at once, one numpy step per protobuf field.

The SageMaker SDK's records all share one shape: a `features` entry `"values"` holding one tensor
(`values`, then optionally `keys` and `shape`), then optionally a `label` entry `"values"` holding
one tensor. Only the varint lengths differ from record to record. So instead of a Python loop per
record, a cursor per record advances through that shape in lock-step: each step gathers one byte
(or one varint) for every record with numpy. A record that does not follow the shape exactly is
flagged, not guessed at; the caller decodes it another way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

TENSOR_TAGS = np.array([0x12, 0x1A, 0x3A], dtype=np.uint8)
"""`Value` field tags of float32/float64/int32 tensors (their field numbers are the kinds)."""
_K = np.arange(5)
_SHIFTS = 7 * _K


@dataclass
class Spans:
    """One optional field per record: `start:end` byte range, empty where absent."""

    present: Bools
    start: Ints
    end: Ints


@dataclass
class BatchSpans:
    """Where each record's tensors are; only rows with `ok` follow the SDK's shape."""

    ok: Bools
    kind: Ints  # feature tensor kind (2, 3, 7)
    values: Spans
    keys: Spans
    shape: Spans
    has_label: Bools
    label_kind: Ints
    label_values: Spans


Mask = Bools | None
"""Which cursors a step applies to; None for all (the common case: no masking work)."""


class _Cursor:
    """One read position per record. Reads past the buffer's end are clamped or refused: a
    record whose cursor gets there is already broken (it ends inside the buffer), and the final
    `cur == end` check rejects it whatever was read."""

    def __init__(self, buf: npt.NDArray[np.uint8], starts: Ints) -> None:
        self.buf = np.ascontiguousarray(buf, dtype=np.uint8)
        self.last = len(buf) - 1
        self.cur = starts.astype(np.int64, copy=True)
        self.ok = np.ones(len(starts), dtype=bool)
        # Every 8 bytes from each offset as one little-endian word (an overlapping view).
        self.words = np.ndarray(
            shape=(max(len(buf) - 7, 0),), dtype="<u8", buffer=self.buf, strides=(1,)
        )

    def byte(self) -> npt.NDArray[np.uint8]:
        got: npt.NDArray[np.uint8] = self.buf[np.minimum(self.cur, self.last)]
        return got

    def advance(self, step: Ints | Bools | int, mask: Mask) -> None:
        if mask is None:
            self.cur += step
        else:
            self.cur += np.where(mask, step, 0)

    def check(self, good: Bools, mask: Mask) -> None:
        self.ok &= good if mask is None else good | ~mask

    def expect(self, value: int, mask: Mask) -> None:
        self.check(self.byte() == value, mask)
        self.advance(1, mask)

    def expect_bytes(self, expected: bytes, mask: Mask) -> None:
        """Compare `expected` at the masked cursors, 8 bytes per gather."""
        if len(self.words) == 0:
            for value in expected:
                self.expect(value, mask)
            return
        for at in range(0, len(expected), 8):
            chunk = expected[at : at + 8]
            want = np.uint64(int.from_bytes(chunk, "little"))
            keep = np.uint64((1 << (8 * len(chunk))) - 1)
            pos = self.cur + at
            got = self.words[np.minimum(pos, len(self.words) - 1)] & keep
            self.check((got == want) & (pos <= len(self.buf) - len(chunk)), mask)
        self.advance(len(expected), mask)

    def varint(self, mask: Mask) -> Ints:
        """Read a varint (up to 5 bytes) at each masked cursor; 0 elsewhere.

        Lengths in these records almost always take 1 or 2 bytes, so those are read with two
        byte gathers for every cursor at once, in 16-bit arithmetic; only cursors at a longer
        varint go through the 5-byte block."""
        b0 = self.buf[np.minimum(self.cur, self.last)]
        b1 = self.buf[np.minimum(self.cur, self.last - 1) + 1]
        two = b0 >= 0x80
        # A 2-byte varint is (b0 & 0x7F) | b1 << 7 == b0 + (b1 << 7) - 0x80; a 1-byte one b0.
        high = b1.astype(np.uint16)
        high <<= 7
        high -= 0x80
        high *= two.view(np.uint8)
        high += b0
        value: Ints = high.astype(np.int64)
        if mask is not None:
            two &= mask
            value *= mask
        self.advance(1, mask)
        self.cur += two
        longer = two & (b1 >= 0x80)
        if longer.any():
            sel = np.flatnonzero(longer)
            self.cur[sel] -= 2
            value[sel], nbytes = self._long_varint(sel)
            self.cur[sel] += nbytes
        return value

    def _long_varint(self, sel: Ints) -> tuple[Ints, Ints]:
        """Values and byte counts of the varints at cursors `sel`; flags those over 5 bytes."""
        got = self.buf[np.minimum(self.cur[sel, None] + _K, self.last)]
        more = got >= 0x80
        nbytes = np.argmin(more, axis=1) + 1
        self.ok[sel] &= ~more.all(axis=1)
        used = _K[None, :] < nbytes[:, None]
        value = (((got & 0x7F).astype(np.int64) << _SHIFTS) * used).sum(axis=1)
        return value, nbytes.astype(np.int64)

    def field(self, tag: int, end: Ints, mask: Mask) -> Spans:
        """An optional length-delimited field with `tag` at the cursor, before `end`."""
        present = self.ok & (self.cur < end) & (self.byte() == tag)
        if mask is not None:
            present &= mask
        self.cur += present
        length = self.varint(present)
        start = self.cur.copy()
        self.cur += length
        return Spans(present, start, self.cur.copy())


def _key(key: str) -> bytes:
    raw = key.encode()
    if len(raw) > 127:
        raise ValueError("map keys longer than 127 bytes are not walked in batch")
    return bytes((0x0A, len(raw))) + raw


def walk_batch(
    buf: npt.NDArray[np.uint8], starts: Ints, ends: Ints, feature_key: str, label_key: str
) -> BatchSpans:
    """The tensor spans of the records at `buf[starts[i]:ends[i]]`, all walked together."""
    c = _Cursor(buf, starts)
    c.expect(0x0A, None)  # features map entry
    entry_end = c.varint(None) + c.cur
    c.expect_bytes(_key(feature_key), None)
    c.expect(0x12, None)  # its Value
    value_end = c.varint(None) + c.cur
    tag = c.byte()
    c.ok &= np.isin(tag, TENSOR_TAGS)
    kind = (tag >> 3).astype(np.int64)
    c.cur += 1
    tensor_end = c.varint(None) + c.cur
    values = c.field(0x0A, tensor_end, None)
    keys = c.field(0x12, tensor_end, None)
    shape = c.field(0x1A, tensor_end, None)
    c.ok &= (c.cur == tensor_end) & (c.cur == value_end) & (c.cur == entry_end)

    has_label = c.ok & (c.cur < ends) & (c.byte() == 0x12)
    mask: Mask = None if has_label.all() else has_label
    c.advance(1, mask)
    lentry_end = c.varint(mask) + c.cur
    c.expect_bytes(_key(label_key), mask)
    c.expect(0x12, mask)
    lvalue_end = c.varint(mask) + c.cur
    ltag = c.byte()
    c.check(np.isin(ltag, TENSOR_TAGS), mask)
    label_kind = (ltag >> 3).astype(np.int64)
    c.advance(1, mask)
    ltensor_end = c.varint(mask) + c.cur
    label_values = c.field(0x0A, ltensor_end, has_label)
    c.check((c.cur == ltensor_end) & (c.cur == lvalue_end) & (c.cur == lentry_end), mask)
    c.ok &= c.cur == ends
    return BatchSpans(c.ok, kind, values, keys, shape, has_label, label_kind, label_values)


_ITEM_DTYPES: dict[int, np.dtype[np.unsignedinteger[Any]]] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.uint16),
    4: np.dtype(np.uint32),
    8: np.dtype(np.uint64),
}
_SLACK = 4  # a padded block may hold this many times the bytes it gathers (plus a little)
_TABLE_WIDTH = 512


def gather(
    buf: npt.NDArray[np.uint8], start: Ints, end: Ints, itemsize: int = 1
) -> npt.NDArray[np.uint8]:
    """The bytes of each `start:end` range, concatenated in order.

    Index arrays over every byte cost more than the copy itself, so the ranges are copied as rows
    of a padded block (one row gather: each row is one `memcpy`) and then kept by a row-prefix
    mask, `itemsize` bytes at a time (range lengths must then be multiples of it). Ranges of very
    unequal length would make that block wasteful: they take the index-array way.
    """
    lengths = end - start
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.uint8)
    width = -(-int(lengths.max()) // itemsize) * itemsize
    if int(lengths.min()) == width and width in _ITEM_DTYPES and width <= len(buf):
        return _gather_words(buf, start, width)
    if width > len(buf) or width * len(start) > _SLACK * total + 4096:
        return _gather_indexed(buf, start, lengths, total)
    block = _rows(buf, start, width).view(_ITEM_DTYPES[itemsize])
    kept: npt.NDArray[np.uint8] = block[_prefix_mask(lengths // itemsize, width // itemsize)]
    return kept.view(np.uint8)


def _prefix_mask(counts: Ints, width: int) -> Bools:
    """Row i: the first `counts[i]` of `width` columns. Rows of a small table (one row copy each)
    beat an elementwise comparison; the table grows with width squared, so only when narrow."""
    if width <= _TABLE_WIDTH:
        table = np.arange(width) < np.arange(width + 1)[:, None]
        picked: Bools = table[counts]
        return picked
    compared: Bools = np.arange(width) < counts[:, None]
    return compared


def _gather_words(buf: npt.NDArray[np.uint8], start: Ints, width: int) -> npt.NDArray[np.uint8]:
    """Ranges of one small width (a scalar label, a one-number shape) as one word each, read
    from an overlapping view of the buffer."""
    words = np.ndarray(
        shape=(len(buf) - width + 1,),
        dtype=_ITEM_DTYPES[width],
        buffer=np.ascontiguousarray(buf),
        strides=(1,),
    )
    got: npt.NDArray[np.uint8] = words[start].view(np.uint8)
    return got


def _rows(buf: npt.NDArray[np.uint8], start: Ints, width: int) -> npt.NDArray[np.uint8]:
    """`buf[start[i]:start[i] + width]` as rows, zero-filled past the end of `buf`."""
    windows = np.lib.stride_tricks.as_strided(
        buf, shape=(len(buf) - width + 1, width), strides=(1, 1), writeable=False
    )
    first = np.minimum(start, len(buf) - width)
    block: npt.NDArray[np.uint8] = windows[first]
    for row in np.flatnonzero(first != start).tolist():
        tail = buf[int(start[row]) :]
        block[row, : len(tail)] = tail
        block[row, len(tail) :] = 0
    return block


def _gather_indexed(
    buf: npt.NDArray[np.uint8], start: Ints, lengths: Ints, total: int
) -> npt.NDArray[np.uint8]:
    first = np.cumsum(lengths) - lengths
    index = np.repeat(start - first, lengths) + np.arange(total)
    got: npt.NDArray[np.uint8] = buf[index]
    return got


def varint_counts(
    raw: npt.NDArray[np.uint8],
    ends: npt.NDArray[np.intp],
    lengths: Ints,
    guess: Ints | None = None,
) -> tuple[Ints, Bools]:
    """How many varints each consecutive range of `raw` (lengths given) holds, and whether each
    range ends on a varint's last byte (else it is cut). `ends` are the positions of all last
    bytes (`raw < 0x80`), found once by the caller, who decodes with them too.

    A `guess` of the counts (a sparse row has as many keys as values) is checked with one gather
    per range; a wrong guess costs a binary search per range instead."""
    if not len(raw):
        return np.zeros(len(lengths), dtype=np.int64), lengths == 0
    bounds = np.cumsum(lengths)
    whole = (lengths == 0) | (raw[np.maximum(bounds - 1, 0)] < 0x80)
    if guess is not None and _counts_match(ends, lengths, bounds, guess):
        return guess, whole
    before = np.searchsorted(ends, bounds)
    counts = np.diff(before, prepend=0).astype(np.int64)
    return counts, whole


def _counts_match(ends: npt.NDArray[np.intp], lengths: Ints, bounds: Ints, guess: Ints) -> bool:
    """Does each range hold exactly `guess` varints? It does when the varint that the running
    total says is its last ends exactly on its last byte, and empty ranges have none."""
    total = np.cumsum(guess)
    if int(total[-1]) != len(ends) or ((guess == 0) != (lengths == 0)).any():
        return False
    filled = guess > 0
    return bool((ends[total[filled] - 1] == bounds[filled] - 1).all())
