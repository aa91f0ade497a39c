"""Walk many serialized `Record`s at once, one numpy step per protobuf field.

The SageMaker SDK's records all share one shape: a `features` entry `"values"` holding one tensor
(`values`, then optionally `keys` and `shape`), then optionally a `label` entry `"values"` holding
one tensor. Only the varint lengths differ from record to record. So instead of a Python loop per
record, a cursor per record advances through that shape in lock-step: each step gathers one byte
(or one varint) for every record with numpy. A record that does not follow the shape exactly is
flagged, not guessed at; the caller decodes it another way.
"""

from __future__ import annotations

import functools
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
    of a padded block (one row gather: each row is one `memcpy`), and the rows are then written
    to their places in the result, each over the previous row's padding (`_overlapping_rows`), or
    kept by a row-prefix mask, `itemsize` bytes at a time (range lengths must then be multiples
    of it). Ranges of very unequal length would make that block wasteful: they take the
    index-array way.
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
    if _ordered_scatter():
        return _overlapping_rows(_rows(buf, start, width), lengths, total)
    block = _rows(buf, start, width).view(_ITEM_DTYPES[itemsize])
    kept: npt.NDArray[np.uint8] = block[_prefix_mask(lengths // itemsize, width // itemsize)]
    return kept.view(np.uint8)


def _overlapping_rows(
    block: npt.NDArray[np.uint8], lengths: Ints, total: int
) -> npt.NDArray[np.uint8]:
    """The first `lengths[i]` bytes of each row of `block`, concatenated.

    Each whole row is written at its range's place in the result as one opaque item, in row
    order: a row's padding lands where the next rows go and is overwritten by them (the last
    row's goes past the end). One item scatter instead of a mask over every byte: about three
    times faster. It needs the writes to happen in index order, which numpy does not promise
    for overlapping targets, so `_ordered_scatter` checks it once per process."""
    n, width = block.shape
    out = np.empty(total + width, dtype=np.uint8)
    targets = np.ndarray(
        shape=(total + 1,), dtype=np.dtype((np.void, width)), buffer=out, strides=(1,)
    )
    first = np.cumsum(lengths)
    first -= lengths
    targets[first] = block.view(np.dtype((np.void, width))).reshape(n)
    kept: npt.NDArray[np.uint8] = out[:total]
    return kept


@functools.cache
def _ordered_scatter() -> bool:
    """Does an item scatter onto overlapping targets write in index order (the last write to a
    byte wins)? Checked on a block like the ones gathered, against the row-prefix mask."""
    rng = np.random.default_rng(0)
    for width in (3, 40, 160):
        lengths = rng.integers(0, width + 1, size=4096).astype(np.int64)
        block = rng.integers(0, 256, size=(len(lengths), width), dtype=np.uint8)
        expected = block[_prefix_mask(lengths, width)]
        got = _overlapping_rows(block, lengths, int(lengths.sum()))
        if not np.array_equal(got, expected):
            return False
    return True


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
    """`buf[start[i]:start[i] + width]` as rows, zero-filled past the end of `buf`.

    The windows are read as one opaque `width`-byte item each from an overlapping view of the
    buffer: a 1-D gather of items copies each with one memcpy, about twice as fast as gathering
    rows of a 2-D strided view."""
    buf = np.ascontiguousarray(buf, dtype=np.uint8)
    windows = np.ndarray(
        shape=(len(buf) - width + 1,),
        dtype=np.dtype((np.void, width)),
        buffer=buf,
        strides=(1,),
    )
    first = np.minimum(start, len(buf) - width)
    block: npt.NDArray[np.uint8] = windows[first].view(np.uint8).reshape(len(start), width)
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
    if guess is not None and counts_match(ends, lengths, bounds, guess):
        return guess, whole
    before = np.searchsorted(ends, bounds)
    counts = np.diff(before, prepend=0).astype(np.int64)
    return counts, whole


def counts_match(ends: npt.NDArray[np.intp], lengths: Ints, bounds: Ints, guess: Ints) -> bool:
    """Does each range hold exactly `guess` varints? It does when the varint that the running
    total says is its last ends exactly on its last byte, and empty ranges have none."""
    total = np.cumsum(guess)
    if int(total[-1]) != len(ends) or ((guess == 0) != (lengths == 0)).any():
        return False
    filled = guess > 0
    return bool((ends[total[filled] - 1] == bounds[filled] - 1).all())


@dataclass(frozen=True)
class SparseLayout:
    """The constant parts of one file's SDK-written sparse records (see `walk_sparse`).

    `key`: the feature map key field and the `Value` tag after it (`0a 06 "values" 12`);
    `kind_tag`: the features tensor's tag; `tail`: every byte after the keys but the label's own
    value bytes (the shape field, then the whole label entry up to its values); `label_width`:
    how many label value bytes end each record (0 without labels); `label_entry`: the label
    entry's length (0 without labels); `itemsize`: bytes per feature value."""

    key: bytes
    kind_tag: int
    tail: bytes
    label_width: int
    label_entry: int
    itemsize: int


@dataclass
class SparseSpans:
    """Per record: whether it follows the layout (`ok`), and, where it does, its values and keys
    spans (absolute offsets) and its label value bytes (one row each)."""

    ok: Bools
    values_start: Ints
    values_end: Ints
    keys_start: Ints
    keys_end: Ints
    labels: npt.NDArray[np.uint8]


def _words(pieces: list[tuple[int, int, int]], width: int) -> tuple[npt.NDArray[np.uint64], ...]:
    """Expected bytes and which of their bits are fixed, as little-endian words (one column of
    the result per word): from `(position, value, mask)` byte triples."""
    want = np.zeros(width, dtype=np.uint8)
    mask = np.zeros(width, dtype=np.uint8)
    for at, value, bits in pieces:
        want[at], mask[at] = value, bits
    return want.view(np.uint64), mask.view(np.uint64)


@functools.lru_cache(maxsize=16)
def _head_tables(layout: SparseLayout, width: int) -> tuple[npt.NDArray[np.uint64], ...]:
    """For each of the 16 combinations of 1- or 2-byte head lengths (bit i: length i+1 takes two
    bytes), the head's expected words and fixed bits: the tags, the map key, and each length's
    continuation bits (its last byte must not continue: longer lengths go another way). Word j
    of combination c is `table[j, c]`, so one column's lookups are one small gather."""
    want = np.zeros((width // 8, 16), dtype=np.uint64)
    mask = np.zeros((width // 8, 16), dtype=np.uint64)
    for sig in range(16):
        pieces: list[tuple[int, int, int]] = []
        pos = 0
        for bit, fixed in enumerate((b"\x0a", layout.key, bytes((layout.kind_tag,)), b"\x0a")):
            pieces += [(pos + k, b, 0xFF) for k, b in enumerate(fixed)]
            pos += len(fixed)
            two = sig >> bit & 1
            pieces += [(pos, 0x80 * two, 0x80)] + ([(pos + 1, 0, 0x80)] if two else [])
            pos += 1 + two
        want[:, sig], mask[:, sig] = _words(pieces, width)
    return want, mask


def _matches(words: npt.NDArray[np.uint64], want: Any, mask: Any) -> Bools:
    """Rows of `words` equal to `want` in the bits of `mask`, a column at a time (reductions
    along short rows cost far more than a few whole-column operations)."""
    diff = np.zeros(len(words), dtype=np.uint64)
    for j in range(words.shape[1]):
        if np.any(mask[j]):
            diff |= (words[:, j] ^ want[j]) & mask[j]
    same: Bools = diff == 0
    return same


def walk_sparse(
    buf: npt.NDArray[np.uint8], starts: Ints, lengths: Ints, layout: SparseLayout
) -> SparseSpans:
    """The spans of records written as the SDK writes a sparse row, found without walking them.

    Such a record is `0a L1 <key> L2 <tag> L3 0a L4 <values> 12 L5 <keys> <tail> <label>`, where
    only the lengths (1 or 2 bytes each here), values, keys and label bytes differ between rows
    of one file. So the head (its first few bytes) is read as a small block of rows and checked
    against a table of the 16 head layouts, a word at a time; L1-L3 must agree with the record's
    length; the keys field's header must be the one that fills the gap up to the tail; and the
    tail is compared with the layout's, a word at a time, from a block that also holds the
    label. A record that differs anywhere (other lengths,
    a shape or label of another size, longer varints) is flagged, not guessed at: `walk_batch`
    and the per-record path take it. Offsets in the result are absolute; they mean nothing, and
    the labels hold junk, where `ok` is false."""
    n = len(starts)
    klen = len(layout.key)
    width = -(-(klen + 11) // 8) * 8
    tail = len(layout.tail) + layout.label_width
    tail_width = -(-tail // 8) * 8
    if len(buf) < max(width, tail_width) + 8 or not n:
        bad = np.zeros(n, dtype=np.int64)
        junk = np.zeros((n, layout.label_width), dtype=np.uint8)
        return SparseSpans(np.zeros(n, dtype=bool), bad, bad, bad, bad, junk)
    head = _rows(buf, starts, width)
    flat = head.ravel()
    # Where each of the four lengths starts (an index into `flat`), and whether it takes two
    # bytes; each position follows from the one before.
    at = np.empty((4, n), dtype=np.int64)
    two = np.empty((4, n), dtype=np.int64)
    at[0] = np.arange(1, n * width, width, dtype=np.int64)
    two[0] = head[:, 1] >> 7
    for i, step in enumerate((1 + klen, 2, 2)):
        np.add(at[i], two[i] + step, out=at[i + 1])
        two[i + 1] = flat[at[i + 1]] >> 7
    want, mask = _head_tables(layout, width)
    sig = two[0] | two[1] << 1 | two[2] << 2 | two[3] << 3
    ok = _matches(head.view(np.uint64), [w[sig] for w in want], [m[sig] for m in mask])
    # The lengths' values, and where the fields they measure end (relative to the record).
    value = flat[at].astype(np.int64) & 0x7F
    value += (flat[at + 1].astype(np.int64) << 7) * two
    field_end = at - at[0] + 2 + two + value
    entry_end = lengths - layout.label_entry
    ok &= (field_end[0] == entry_end) & (field_end[1] == entry_end) & (field_end[2] == entry_end)
    values_len = value[3]
    ok &= (values_len & (layout.itemsize - 1)) == 0
    values_end = starts + field_end[3]
    values_start = values_end - values_len
    # The keys field, 0x12 and its length, must fill the gap up to the tail: the length (one or
    # two bytes, as protobuf writes it) follows from the gap, and the three bytes are compared
    # as one word.
    ends = starts + lengths
    tail_start = ends - tail
    gap = tail_start - values_end
    long = (gap >= 3 + 128).astype(np.int64)
    keys_len = gap - 2 - long
    header = 0x12 | ((keys_len & 0x7F) | long << 7) << 8 | (keys_len >> 7 & 0x7F) << 16
    got = _rows(buf, np.clip(values_end, 0, len(buf) - 4), 4).view("<u4")[:, 0]
    ok &= ((got ^ header) & (0xFFFF | long * 0xFF0000)) == 0
    # One byte holds a length below 2**7, two below 2**14.
    ok &= (keys_len >= 0) & ((keys_len >> 7) <= long * 0x7F) & (lengths >= tail)
    keys_start = values_end + 2 + long
    keys_end = tail_start
    # The tail and the label: the last bytes of each record, as one block.
    block = _rows(buf, np.maximum(ends - tail_width, 0), tail_width)
    pad = tail_width - tail
    twant, tmask = _words([(pad + k, b, 0xFF) for k, b in enumerate(layout.tail)], tail_width)
    ok &= _matches(block.view(np.uint64), twant, tmask)
    labels = np.ascontiguousarray(block[:, tail_width - layout.label_width :])
    return SparseSpans(ok, values_start, values_end, keys_start, keys_end, labels)
