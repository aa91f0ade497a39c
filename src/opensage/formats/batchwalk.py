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


class _Cursor:
    def __init__(self, buf: npt.NDArray[np.uint8], starts: Ints) -> None:
        self.buf = buf
        self.last = len(buf) - 1
        self.cur = starts.astype(np.int64, copy=True)
        self.ok = np.ones(len(starts), dtype=bool)

    def byte(self) -> npt.NDArray[np.uint8]:
        got: npt.NDArray[np.uint8] = self.buf[np.minimum(self.cur, self.last)]
        return got

    def expect(self, value: int, mask: Bools) -> None:
        self.ok &= ~mask | (self.byte() == value)
        self.cur += mask

    def expect_bytes(self, expected: bytes, mask: Bools) -> None:
        want = np.frombuffer(expected, dtype=np.uint8)
        sel = np.flatnonzero(mask)
        got = self.buf[np.minimum(self.cur[sel, None] + np.arange(len(want)), self.last)]
        self.ok[sel] &= (got == want).all(axis=1)
        self.cur[sel] += len(want)

    def varint(self, mask: Bools) -> Ints:
        """Read a varint (up to 5 bytes) at each masked cursor; 0 elsewhere."""
        out = np.zeros(len(self.cur), dtype=np.int64)
        sel = np.flatnonzero(mask)
        if not len(sel):
            return out
        got = self.buf[np.minimum(self.cur[sel, None] + _K, self.last)]
        more = got >= 0x80
        nbytes = np.argmin(more, axis=1) + 1
        self.ok[sel] &= ~more.all(axis=1)
        used = _K[None, :] < nbytes[:, None]
        out[sel] = (((got & 0x7F).astype(np.int64) << _SHIFTS) * used).sum(axis=1)
        self.cur[sel] += nbytes
        return out

    def field(self, tag: int, end: Ints, mask: Bools) -> Spans:
        """An optional length-delimited field with `tag` at the cursor, before `end`."""
        present = mask & self.ok & (self.cur < end) & (self.byte() == tag)
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
    every = np.ones(len(starts), dtype=bool)
    c.expect(0x0A, every)  # features map entry
    entry_end = c.varint(every) + c.cur
    c.expect_bytes(_key(feature_key), every)
    c.expect(0x12, every)  # its Value
    value_end = c.varint(every) + c.cur
    tag = c.byte()
    c.ok &= np.isin(tag, TENSOR_TAGS)
    kind = (tag >> 3).astype(np.int64)
    c.cur += 1
    tensor_end = c.varint(every) + c.cur
    values = c.field(0x0A, tensor_end, every)
    keys = c.field(0x12, tensor_end, every)
    shape = c.field(0x1A, tensor_end, every)
    c.ok &= (c.cur == tensor_end) & (c.cur == value_end) & (c.cur == entry_end)

    has_label = c.ok & (c.cur < ends) & (c.byte() == 0x12)
    c.cur += has_label
    lentry_end = c.varint(has_label) + c.cur
    c.expect_bytes(_key(label_key), has_label)
    c.expect(0x12, has_label)
    lvalue_end = c.varint(has_label) + c.cur
    ltag = c.byte()
    c.ok &= ~has_label | np.isin(ltag, TENSOR_TAGS)
    label_kind = (ltag >> 3).astype(np.int64)
    c.cur += has_label
    ltensor_end = c.varint(has_label) + c.cur
    label_values = c.field(0x0A, ltensor_end, has_label)
    c.ok &= ~has_label | ((c.cur == ltensor_end) & (c.cur == lvalue_end) & (c.cur == lentry_end))
    c.ok &= c.cur == ends
    return BatchSpans(c.ok, kind, values, keys, shape, has_label, label_kind, label_values)


def gather(buf: npt.NDArray[np.uint8], start: Ints, end: Ints) -> npt.NDArray[np.uint8]:
    """The bytes of each `start:end` range, concatenated in order."""
    lengths = end - start
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.uint8)
    first = np.cumsum(lengths) - lengths
    index = np.repeat(start - first, lengths) + np.arange(total)
    got: npt.NDArray[np.uint8] = buf[index]
    return got


def varint_counts(raw: npt.NDArray[np.uint8], lengths: Ints) -> tuple[Ints, Bools]:
    """How many varints each consecutive range of `raw` (lengths given) holds, and whether each
    range ends on a varint's last byte (else it is cut)."""
    if not len(raw):
        return np.zeros(len(lengths), dtype=np.int64), lengths == 0
    last = raw < 0x80
    csum = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(last, out=csum[1:])
    ends = np.cumsum(lengths)
    counts = csum[ends] - csum[ends - lengths]
    whole = (lengths == 0) | last[np.maximum(ends - 1, 0)]
    return counts, whole
