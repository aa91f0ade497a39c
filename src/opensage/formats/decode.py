"""Decoding framed RecordIO-protobuf records into numpy / scipy, four ways, fastest first.

1. Template groups: records of equal length whose non-value bytes equal those of the group's first
   record have the same layout, so their values are columns of a 2-D byte array (dense data:
   one numpy slice for the whole group).
2. Sparse layouts: a record the SDK wrote for a sparse row differs from the others of its file
   only in its lengths, values, keys and label bytes, so its head is checked against a table
   and its tail (shape and label entry) as one constant; no field-by-field walk
   (`batchwalk.walk_sparse`).
3. Vectorised walk: the SDK's layout (`features["values"]` tensor, optional `label["values"]`)
   walked for all remaining records at once, one numpy step per protobuf field with a cursor per
   record (sparse rows, int32 varints, ragged lengths).
4. Per record: a hand walker with `np.frombuffer` slices, and the protobuf runtime for anything
   else valid (unpacked fields, other map keys, bytes), which also tells garbage from the unusual.

Every record a faster path rejects goes to the next one, so the result never depends on the path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import scipy.sparse

from opensage.formats.batchwalk import (
    BatchSpans,
    SparseLayout,
    SparseSpans,
    counts_match,
    gather,
    varint_counts,
    walk_batch,
    walk_sparse,
)
from opensage.formats.errors import RecordError
from opensage.formats.protobuf import parse_record
from opensage.formats.recordio import Frames
from opensage.formats.wire import (
    BYTES_KIND,
    F32,
    F64,
    I32,
    KIND_DTYPE,
    KIND_NAME,
    Malformed,
    TensorSpan,
    Unsupported,
    decode_short_at,
    decode_varints,
    decode_varints_at,
    map_entry,
    varint,
    walk_record,
)

Features: TypeAlias = Any
"""A 2-D numpy array, or a `scipy.sparse.csr_matrix` (untyped upstream)."""
Labels: TypeAlias = npt.NDArray[Any] | None
Rows = npt.NDArray[np.int64]
_MIN_GROUP = 8  # records of one length before a template is worth building
_MIN_WALK = 4  # records left before walking them together beats one by one
_INT32_MAX = int(np.iinfo(np.int32).max)
_MAX_LAYOUTS = 3  # sparse layouts tried per batch (a shape or label size change starts a new one)


@dataclass
class _Decoded:
    """Per-record results of one batch, gathered before assembly."""

    n: int
    dense: list[tuple[npt.NDArray[np.int64], npt.NDArray[Any]]] = field(default_factory=list)
    # (rows, non-zeros per row, columns, values, width per row)
    sparse: list[tuple[Rows, Rows, npt.NDArray[np.int64], npt.NDArray[Any], Rows]] = field(
        default_factory=list
    )
    labels: list[tuple[npt.NDArray[np.int64], npt.NDArray[Any]]] = field(default_factory=list)
    unlabelled: list[int] = field(default_factory=list)


class _Context:
    def __init__(self, frames: Frames, source: str | None, fkey: str, lkey: str) -> None:
        self.frames = frames
        self.source = source
        self.fkey = fkey
        self.lkey = lkey

    def error(self, i: int, message: str) -> RecordError:
        return RecordError(
            message,
            source=self.source,
            record=self.frames.first_index + i,
            offset=int(self.frames.offsets[i]),
        )


def decode_frames(
    frames: Frames,
    *,
    source: str | None = None,
    feature_key: str = "values",
    label_key: str = "values",
) -> tuple[Features, Labels]:
    """Features (a 2-D array, or CSR if any record is sparse) and labels (None if no record has
    one; 1-D for scalar labels) of framed records."""
    ctx = _Context(frames, source, feature_key, label_key)
    out = _Decoded(len(frames))
    todo = np.ones(len(frames), dtype=bool)
    if not _sparse_probe(ctx):
        for idx in _groups(frames.lengths):
            _template_group(ctx, idx, out, todo)
    _sparse_layouts(ctx, out, todo)
    remaining = np.flatnonzero(todo)
    if len(remaining) >= _MIN_WALK:
        _walk_rows(ctx, remaining, out, todo)
    for i in np.flatnonzero(todo).tolist():
        _single(ctx, i, out)
    return _assemble(ctx, out)


def _sparse_probe(ctx: _Context) -> bool:
    """Do the records look sparse (judged by the first)? Templates never take sparse rows, and
    sparse rows vary in length: trying a template per length would cost more than the walk."""
    frames = ctx.frames
    if len(frames) < _MIN_GROUP or frames.lengths.min() == frames.lengths.max():
        return False
    start = int(frames.starts[0])
    end = start + int(frames.lengths[0])
    try:
        fspan, _, _ = walk_record(frames.data, start, end, ctx.fkey, ctx.lkey)
    except (Malformed, Unsupported):
        return False
    return fspan is not None and fspan.keys is not None


def _sparse_layouts(ctx: _Context, out: _Decoded, todo: npt.NDArray[np.bool_]) -> None:
    """Decode the records that share the first undecoded one's SDK sparse layout (see
    `batchwalk.walk_sparse`); a few times over, for files whose shape or label size changes."""
    for _ in range(_MAX_LAYOUTS):
        rows = np.flatnonzero(todo)
        if len(rows) < _MIN_GROUP:
            return
        for i in (int(rows[0]), int(rows[len(rows) // 2])):  # the first may be an odd one
            found = _sparse_layout(ctx, i)
            if found is not None and _layout_rows(ctx, rows, *found, out, todo):
                break
        else:
            return


def _sparse_layout(ctx: _Context, i: int) -> tuple[SparseLayout, int, int] | None:
    """The layout of record `i` (and its width and label kind), if it is exactly what the SDK
    writes for a sparse row: rebuilt from its own fields, byte for byte. Any record matching the
    layout then decodes exactly as the per-record path would decode it."""
    frames = ctx.frames
    start = int(frames.starts[i])
    end = start + int(frames.lengths[i])
    data = frames.data
    try:
        fspan, lspan, others = walk_record(data, start, end, ctx.fkey, ctx.lkey)
    except (Malformed, Unsupported):
        return None
    if others or fspan is None or fspan.kind not in (F32, F64):
        return None
    if fspan.values is None or fspan.keys is None or fspan.shape is None:
        return None
    try:
        shape = decode_varints(np.frombuffer(data[slice(*fspan.shape)], np.uint8))
    except Malformed:
        return None
    if len(shape) != 1 or not 0 < int(shape[0]) <= _INT32_MAX:
        return None
    body = b"".join(
        bytes((tag,)) + varint(b - a) + data[a:b]
        for tag, (a, b) in ((0x0A, fspan.values), (0x12, fspan.keys), (0x1A, fspan.shape))
    )
    kind_tag = fspan.kind << 3 | 2
    record = map_entry(0x0A, ctx.fkey, bytes((kind_tag,)) + varint(len(body)) + body)
    label_width = label_kind = 0
    if lspan is not None:
        if lspan.kind not in (F32, F64) or lspan.keys is not None or lspan.shape is not None:
            return None
        if lspan.values is None or lspan.values[1] != end:
            return None
        label_width, label_kind = lspan.values[1] - lspan.values[0], lspan.kind
        lbody = b"\x0a" + varint(label_width) + data[slice(*lspan.values)]
        lvalue = bytes((lspan.kind << 3 | 2,)) + varint(len(lbody)) + lbody
        record += map_entry(0x12, ctx.lkey, lvalue)
    if record != data[start:end]:
        return None
    keys_end = fspan.keys[1]
    layout = SparseLayout(
        key=_key_field(ctx.fkey),
        kind_tag=kind_tag,
        tail=data[keys_end : end - label_width],
        label_width=label_width,
        label_entry=end - fspan.shape[1],
        itemsize=KIND_DTYPE[fspan.kind].itemsize,
    )
    return layout, int(shape[0]), label_kind


def _short_keys(
    buf: npt.NDArray[np.uint8], start: Rows, end: Rows, counts: Rows
) -> npt.NDArray[Any] | None:
    """The keys of rows that hold `counts` keys each, all under 2**14 (every SDK row narrower
    than 16,384 columns), as uint16 (CSR makes them int32); None if any row differs (the
    general path sorts it out)."""
    raw = gather(buf, start, end)
    ends = np.flatnonzero(raw < 0x80)
    lengths = end - start
    if not len(ends) or not counts_match(ends, lengths, np.cumsum(lengths), counts):
        return None
    return decode_short_at(raw, ends)


def _take(spans: SparseSpans, keep: npt.NDArray[np.bool_]) -> SparseSpans:
    return SparseSpans(
        spans.ok[keep],
        spans.values_start[keep],
        spans.values_end[keep],
        spans.keys_start[keep],
        spans.keys_end[keep],
        spans.labels[keep],
    )


def _key_field(key: str) -> bytes:
    raw = key.encode()
    return b"\x0a" + varint(len(raw)) + raw + b"\x12"


def _layout_rows(
    ctx: _Context,
    rows: Rows,
    layout: SparseLayout,
    width: int,
    label_kind: int,
    out: _Decoded,
    todo: npt.NDArray[np.bool_],
) -> bool:
    """Decode `rows` that follow `layout`; False if none did. Rows whose keys are not whole,
    not one per value or outside the width are left to the other paths (which report them)."""
    frames = ctx.frames
    buf = np.frombuffer(frames.data, dtype=np.uint8)
    spans = walk_sparse(buf, frames.starts[rows], frames.lengths[rows], layout)
    keep = spans.ok
    while True:
        if not keep.any():
            return False
        if not keep.all():
            rows, spans = rows[keep], _take(spans, keep)
        vs, ve = spans.values_start, spans.values_end
        counts = (ve - vs) // layout.itemsize
        cols = _short_keys(buf, spans.keys_start, spans.keys_end, counts)
        if cols is not None and (not len(cols) or int(cols.max()) < width):
            break
        # Long, cut or miscounted keys somewhere: find the rows to leave to the other paths.
        try:
            keys, keep = _read_packed(buf, spans.keys_start, spans.keys_end, 0, counts)
        except Malformed:
            return False
        if keys is None:
            continue
        keep = keys.counts == counts
        if keep.all():
            keep = ~_too_big(keys.items, counts, np.full(len(counts), width, dtype=np.int64))
        if keep.all():
            cols = keys.items.view(np.int64)
            break
    values, _ = _read_packed(buf, vs, ve, layout.kind_tag >> 3)
    assert values is not None  # every span is a whole number of items
    out.sparse.append((rows, counts, cols, values.items, np.full(len(rows), width)))
    if label_kind:
        labels = _native(spans.labels.view(KIND_DTYPE[label_kind]))
        out.labels.append((rows, labels))
    else:
        out.unlabelled.append(int(rows[0]))
    todo[rows] = False
    return True


def _groups(lengths: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
    if len(lengths) < _MIN_GROUP:
        return []
    if lengths.min() == lengths.max():
        return [np.arange(len(lengths), dtype=np.int64)]
    _, inverse, counts = np.unique(lengths, return_inverse=True, return_counts=True)
    big = np.flatnonzero(counts >= _MIN_GROUP)
    if not len(big):
        return []
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [order[bounds[g] : bounds[g + 1]].astype(np.int64) for g in big.tolist()]


def _block(data: bytes, starts: npt.NDArray[np.int64], length: int) -> npt.NDArray[np.uint8]:
    """The records at `starts`, `length` bytes each, as rows of a 2-D byte array."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(starts) > 1:
        steps = np.diff(starts)
        if steps.min() == steps.max() and steps[0] >= length:
            return np.lib.stride_tricks.as_strided(
                buf[int(starts[0]) :],
                shape=(len(starts), length),
                strides=(int(steps[0]), 1),
                writeable=False,
            )
    gathered: npt.NDArray[np.uint8] = buf[starts[:, None] + np.arange(length)]
    return gathered


def _template_group(
    ctx: _Context, idx: npt.NDArray[np.int64], out: _Decoded, todo: npt.NDArray[np.bool_]
) -> None:
    frames = ctx.frames
    t = int(idx[0])
    start, length = int(frames.starts[t]), int(frames.lengths[t])
    try:
        fspan, lspan, _ = walk_record(frames.data, start, start + length, ctx.fkey, ctx.lkey)
    except (Malformed, Unsupported):
        return
    spans: list[tuple[int, int, TensorSpan]] = []
    for span in (fspan, lspan):
        if span is not None:
            if span.kind not in KIND_DTYPE or span.keys is not None:
                return
            if span.values is not None:
                spans.append((span.values[0] - start, span.values[1] - start, span))
    if fspan is None or (fspan.values is None and fspan.shape is not None):
        return  # no values but a shape: an all-zero sparse row, decoded per record
    block = _block(frames.data, frames.starts[idx], length)
    ok = _same_structure(block, spans, length)
    rows = idx[ok]
    good = block[ok] if not ok.all() else block
    results: dict[int, npt.NDArray[Any]] = {}
    for a, b, span in spans:
        values = _block_values(good[:, a:b], span.kind)
        if values is None:
            return  # varints that do not line up: leave the group to the per-record path
        results[id(span)] = values
    fvalues = results.get(id(fspan), np.empty((len(rows), 0), KIND_DTYPE[fspan.kind]))
    out.dense.append((rows, _native(fvalues)))
    if lspan is not None:
        lvalues = results.get(id(lspan), np.empty((len(rows), 0), KIND_DTYPE[lspan.kind]))
        out.labels.append((rows, _native(lvalues)))
    else:
        out.unlabelled.append(int(rows[0]))
    todo[rows] = False


@dataclass
class _Packed:
    """One packed field of the walked rows, gathered once: all its items and how many per row."""

    items: npt.NDArray[Any]
    counts: Rows


@dataclass
class _Fields:
    """The tensor fields of the walked rows; labels by kind: (positions among the rows, field)."""

    values: _Packed
    keys: _Packed
    shape: _Packed
    labels: dict[int, tuple[Rows, _Packed]]


def _read_packed(
    buf: npt.NDArray[np.uint8], start: Rows, end: Rows, kind: int, guess: Rows | None = None
) -> tuple[_Packed | None, npt.NDArray[np.bool_]]:
    """One packed field per row (kind 0: keys or shape, uint64 varints), and per row whether
    its bytes are whole items. The items are only returned when every row is whole, since only
    then do concatenated varints line up with rows. `guess`: the likely varint count per row.
    `Malformed` for an over-long varint."""
    lengths = end - start
    if kind not in (0, I32):
        dtype = KIND_DTYPE[kind]
        whole: npt.NDArray[np.bool_] = lengths % dtype.itemsize == 0
        if not whole.all():
            return None, whole
        raw = gather(buf, start, end, dtype.itemsize)
        values = raw.view(dtype) if len(raw) else np.empty(0, dtype)
        return _Packed(_native(values), lengths // dtype.itemsize), whole
    raw = gather(buf, start, end)
    ends = np.flatnonzero(raw < 0x80)
    counts, whole = varint_counts(raw, ends, lengths, guess)
    if not whole.all():
        return None, whole
    items = decode_varints_at(raw, ends) if len(raw) else np.empty(0, np.uint64)
    if kind == I32:
        return _Packed(items.view(np.int64).astype(np.int32), counts), whole
    return _Packed(items, counts), whole


def _read_fields(
    buf: npt.NDArray[np.uint8], spans: BatchSpans, idx: Rows, kind: int
) -> tuple[_Fields | None, npt.NDArray[np.bool_]]:
    """Every field of rows `idx` (positions in the walk), and which rows are whole throughout;
    None unless all are."""
    v, k, sh, lv = spans.values, spans.keys, spans.shape, spans.label_values
    whole = np.ones(len(idx), dtype=bool)
    values, ok = _read_packed(buf, v.start[idx], v.end[idx], kind)
    whole &= ok
    # Likely counts: a key per value, a one-number shape.
    keys, ok = _read_packed(buf, k.start[idx], k.end[idx], 0, values.counts if values else None)
    whole &= ok
    start, end = sh.start[idx], sh.end[idx]
    shape, ok = _read_packed(buf, start, end, 0, (end > start).astype(np.int64))
    whole &= ok
    labels: dict[int, tuple[Rows, _Packed]] = {}
    has = spans.has_label[idx]
    label_kind = spans.label_kind[idx]
    for lkind in _distinct(label_kind[has]):
        at = np.flatnonzero(has & (label_kind == lkind))
        got, ok = _read_packed(buf, lv.start[idx[at]], lv.end[idx[at]], int(lkind))
        whole[at] &= ok
        if got is not None:
            labels[int(lkind)] = (at, got)
    if values is None or keys is None or shape is None or not whole.all():
        return None, whole
    return _Fields(values, keys, shape, labels), whole


def _walk_rows(ctx: _Context, rows: Rows, out: _Decoded, todo: npt.NDArray[np.bool_]) -> None:
    """Decode the rows that follow the SDK's layout all together (see `batchwalk`)."""
    frames = ctx.frames
    buf = np.frombuffer(frames.data, dtype=np.uint8)
    starts = frames.starts[rows]
    try:
        spans = walk_batch(buf, starts, starts + frames.lengths[rows], ctx.fkey, ctx.lkey)
    except ValueError:
        return
    for kind in _distinct(spans.kind[spans.ok]):
        _walk_kind(buf, rows, spans, spans.ok & (spans.kind == kind), int(kind), out, todo)


def _walk_kind(
    buf: npt.NDArray[np.uint8],
    rows: Rows,
    spans: BatchSpans,
    sel: npt.NDArray[np.bool_],
    kind: int,
    out: _Decoded,
    todo: npt.NDArray[np.bool_],
) -> None:
    """Decode the walked rows `sel` whose features are of `kind`. Rows whose fields are not
    whole items are left to the per-record path; so is every row if a varint is malformed."""
    idx = np.flatnonzero(sel)
    try:
        fields, whole = _read_fields(buf, spans, idx, kind)
        if fields is None:
            idx = idx[whole]  # wholeness is per row: the rest now line up
            fields, _ = _read_fields(buf, spans, idx, kind)
    except Malformed:
        return
    if fields is None or not len(idx):
        return
    good, sparse, widths = _classify(spans, idx, fields)
    _emit_features(rows[idx], fields, good, sparse, widths, out)
    _emit_labels(rows[idx], spans.has_label[idx], fields, good, out)
    todo[rows[idx[good]]] = False


def _classify(
    spans: BatchSpans, idx: Rows, fields: _Fields
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], Rows]:
    """Per row: decodable here (`good`), sparse, and its width (from a one-number shape; other
    shapes, matrices, go the per-record way)."""
    counts, kcounts, scounts = fields.values.counts, fields.keys.counts, fields.shape.counts
    keyed = spans.keys.present[idx]
    widths = np.zeros(len(idx), dtype=np.int64)
    one = scounts == 1
    widths[one] = fields.shape.items[np.cumsum(scounts)[one] - 1].astype(np.int64)
    empty_sparse = ~keyed & (counts == 0) & one & (widths > 0)
    sparse = keyed | empty_sparse
    good = ~keyed | ((kcounts == counts) & one)
    if keyed.any():
        good &= ~_too_big(fields.keys.items, kcounts, widths)
    return good, sparse, widths


def _too_big(keys: npt.NDArray[np.uint64], counts: Rows, widths: Rows) -> npt.NDArray[np.bool_]:
    """Per row: is a key outside its width? One comparison when none is (the usual case), else
    each row's largest key."""
    too_big = np.zeros(len(counts), dtype=bool)
    has = np.flatnonzero(counts > 0)
    if not len(has):
        return too_big
    limits = widths[has].astype(np.uint64)
    if keys.max() < limits.min():
        return too_big
    first = np.cumsum(counts)[has] - counts[has]
    too_big[has] = np.maximum.reduceat(keys, first) >= limits
    return too_big


def _emit_features(
    rows: Rows,
    fields: _Fields,
    good: npt.NDArray[np.bool_],
    sparse: npt.NDArray[np.bool_],
    widths: Rows,
    out: _Decoded,
) -> None:
    values, counts = fields.values.items, fields.values.counts
    keys, kcounts = fields.keys.items, fields.keys.counts
    sp = sparse & good
    if sp.all():
        out.sparse.append((rows, counts, keys.view(np.int64), values, widths))
        return
    if sp.any():
        out.sparse.append(
            (
                rows[sp],
                counts[sp],
                keys[np.repeat(good, kcounts)].astype(np.int64),
                values[np.repeat(sp, counts)],
                widths[sp],
            )
        )
    dense = ~sparse & good
    for width in _distinct(counts[dense]):
        these = dense & (counts == width)
        block = values[np.repeat(these, counts)].reshape(int(these.sum()), width)
        out.dense.append((rows[these], block))


def _emit_labels(
    rows: Rows,
    has_label: npt.NDArray[np.bool_],
    fields: _Fields,
    good: npt.NDArray[np.bool_],
    out: _Decoded,
) -> None:
    for at, packed in fields.labels.values():
        keep = good[at]
        lvalues = packed.items if keep.all() else packed.items[np.repeat(keep, packed.counts)]
        lcounts = packed.counts[keep]
        lrows = rows[at[keep]]
        for width in _distinct(lcounts):
            sub = lcounts == width
            block = lvalues if sub.all() else lvalues[np.repeat(sub, lcounts)]
            out.labels.append((lrows[sub], block.reshape(int(sub.sum()), width)))
    unlabelled = good & ~has_label
    if unlabelled.any():
        out.unlabelled.append(int(rows[unlabelled].min()))


def _same_structure(
    block: npt.NDArray[np.uint8], spans: list[tuple[int, int, TensorSpan]], length: int
) -> npt.NDArray[np.bool_]:
    """Per row: are all bytes outside the value spans equal to row 0's? The structure columns are
    gathered once and compared as one opaque item per row (a memcmp, not a byte-wise loop)."""
    keep = np.ones(length, dtype=bool)
    for a, b, _ in spans:
        keep[a:b] = False
    columns = np.flatnonzero(keep)
    if not len(columns):
        return np.ones(len(block), dtype=bool)
    if len(columns) == columns[-1] - columns[0] + 1:
        structure = np.ascontiguousarray(block[:, columns[0] : columns[-1] + 1])
    else:
        structure = np.ascontiguousarray(block[:, columns])
    rows = structure.view(np.dtype((np.void, structure.shape[1])))[:, 0]
    same: npt.NDArray[np.bool_] = rows == rows[0]
    return same


def _distinct(values: Rows) -> list[int]:
    """The distinct values, ascending; usually there is just one, which min == max tells
    without sorting or hashing."""
    if not len(values):
        return []
    low = int(values.min())
    if low == int(values.max()):
        return [low]
    return [int(v) for v in np.unique(values).tolist()]


def _native(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return values.astype(values.dtype.newbyteorder("="), copy=False)


def _block_values(cols: npt.NDArray[np.uint8], kind: int) -> npt.NDArray[Any] | None:
    """Decode a value column block (one row per record); None if varints do not line up."""
    if kind != I32:
        if cols.shape[1] % KIND_DTYPE[kind].itemsize:
            return None
        return np.ascontiguousarray(cols).view(KIND_DTYPE[kind])
    if cols.shape[1] == 0:
        return np.empty((cols.shape[0], 0), np.int32)
    ends = cols < 0x80
    counts = ends.sum(axis=1)
    if not ends[:, -1].all() or counts.min() != counts.max():
        return None
    try:
        flat = decode_varints(np.ascontiguousarray(cols).ravel())
    except Malformed:
        return None
    return flat.view(np.int64).astype(np.int32).reshape(cols.shape[0], int(counts[0]))


_Tensor = tuple[int, npt.NDArray[Any], npt.NDArray[np.uint64] | None, tuple[int, ...]]


def _span_tensor(data: bytes, span: TensorSpan) -> _Tensor:
    dtype = KIND_DTYPE[span.kind]
    values: npt.NDArray[Any]
    if span.values is None:
        values = np.empty(0, dtype)
    elif span.kind == I32:
        raw = np.frombuffer(data, np.uint8, span.values[1] - span.values[0], span.values[0])
        values = decode_varints(raw).view(np.int64).astype(np.int32)
    else:
        size = span.values[1] - span.values[0]
        if size % dtype.itemsize:
            raise Malformed("packed values are not a whole number of items")
        values = np.frombuffer(data, dtype, size // dtype.itemsize, span.values[0])
    keys = None
    if span.keys is not None:
        raw = np.frombuffer(data, np.uint8, span.keys[1] - span.keys[0], span.keys[0])
        keys = decode_varints(raw)
    shape: tuple[int, ...] = ()
    if span.shape is not None:
        raw = np.frombuffer(data, np.uint8, span.shape[1] - span.shape[0], span.shape[0])
        shape = tuple(int(s) for s in decode_varints(raw).tolist())
    return span.kind, _native(values), keys, shape


def _message_tensor(value: Any) -> _Tensor | None:
    kind_name = value.WhichOneof("value")
    if kind_name is None:
        return None
    kind = {v: k for k, v in KIND_NAME.items()}[kind_name]
    if kind == BYTES_KIND:
        return kind, np.empty(0), None, ()
    tensor = getattr(value, kind_name)
    values = np.array(list(tensor.values), dtype=KIND_DTYPE[kind]).astype(
        KIND_DTYPE[kind].newbyteorder("=")
    )
    keys = np.array(list(tensor.keys), dtype=np.uint64) if len(tensor.keys) else None
    return kind, values, keys, tuple(int(s) for s in tensor.shape)


def _record_tensors(ctx: _Context, i: int) -> tuple[_Tensor | None, _Tensor | None]:
    frames = ctx.frames
    start = int(frames.starts[i])
    end = start + int(frames.lengths[i])
    try:
        fspan, lspan, _ = walk_record(frames.data, start, end, ctx.fkey, ctx.lkey)
        features = None if fspan is None else _span_tensor(frames.data, fspan)
        if features is not None and features[0] == BYTES_KIND:
            raise Unsupported("bytes")
        label = None if lspan is None else _span_tensor(frames.data, lspan)
        return features, label
    except (Malformed, Unsupported):
        pass  # the protobuf runtime decides: valid but unusual, or really broken
    record = parse_record(
        frames.data[start:end],
        source=ctx.source,
        index=frames.first_index + i,
        offset=int(frames.offsets[i]),
    )
    features = _message_tensor(record.features[ctx.fkey]) if ctx.fkey in record.features else None
    label = _message_tensor(record.label[ctx.lkey]) if ctx.lkey in record.label else None
    return features, label


def _single(ctx: _Context, i: int, out: _Decoded) -> None:
    features, label = _record_tensors(ctx, i)
    if features is None:
        raise ctx.error(i, f"record has no tensor in features[{ctx.fkey!r}]")
    kind, values, keys, shape = features
    if kind == BYTES_KIND:
        raise ctx.error(i, f"features[{ctx.fkey!r}] holds bytes, not a tensor")
    row = np.array([i], dtype=np.int64)
    if keys is None and not len(values) and shape and int(np.prod(shape)) > 0:
        keys = np.empty(0, np.uint64)  # a sparse row with no non-zeros: no keys, no values
    if keys is not None:
        if len(keys) != len(values):
            raise ctx.error(i, f"sparse tensor has {len(keys)} keys for {len(values)} values")
        if not shape:
            raise ctx.error(i, "sparse tensor without a shape")
        width = int(np.prod(shape))
        if len(keys) and int(keys.max()) >= width:
            raise ctx.error(i, f"sparse key {int(keys.max())} outside shape {list(shape)}")
        count = np.array([len(keys)], dtype=np.int64)
        out.sparse.append((row, count, keys.astype(np.int64), values, np.array([width])))
    else:
        out.dense.append((row, values.reshape(1, -1)))
    if label is None:
        out.unlabelled.append(i)
    elif label[0] == BYTES_KIND or label[2] is not None:
        raise ctx.error(i, f"label[{ctx.lkey!r}] is not a dense tensor")
    else:
        out.labels.append((row, label[1].reshape(1, -1)))


def _assemble(ctx: _Context, out: _Decoded) -> tuple[Features, Labels]:
    n = out.n
    features: Features
    if out.sparse:
        features = _assemble_sparse(out)
    elif out.dense:
        features = _assemble_rows(ctx, out.dense, n, "features")
    else:
        features = np.empty((0, 0), np.float32)
    labels: Labels = None
    if out.labels:
        if out.unlabelled:
            raise ctx.error(min(out.unlabelled), "record has no label while others have one")
        labels = _assemble_rows(ctx, out.labels, n, "labels")
        if labels.shape[1] == 1:
            labels = labels[:, 0]
    return features, labels


def _assemble_rows(
    ctx: _Context,
    parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[Any]]],
    n: int,
    what: str,
) -> npt.NDArray[Any]:
    widths = {p.shape[1] for _, p in parts}
    if len(widths) > 1:
        first = min(parts, key=lambda p: int(p[0].min()))
        width = first[1].shape[1]
        bad = min(int(r.min()) for r, p in parts if p.shape[1] != width)
        raise ctx.error(bad, f"{what} width differs from earlier records ({width})")
    dtype = np.result_type(*(p.dtype for _, p in parts))
    if len(parts) == 1 and len(parts[0][0]) == n and dtype == parts[0][1].dtype:
        rows, values = parts[0]
        if np.array_equal(rows, np.arange(n)):
            return values
    result = np.empty((n, widths.pop()), dtype=dtype)
    for rows, values in parts:
        result[rows] = values
    return result


def _assemble_sparse(out: _Decoded) -> scipy.sparse.csr_matrix:
    """One CSR matrix from dense and sparse blocks, rows in record order, without a Python step
    per row: each block's entries are scattered to their rows' places in one go."""
    n = out.n
    if len(out.sparse) == 1 and not out.dense:
        rows, counts, cols, vals, widths = out.sparse[0]
        if len(rows) == n and np.array_equal(rows, np.arange(n)):
            return _csr(vals, cols, counts, widths)
    parts = list(out.sparse)
    for rows, values in out.dense:
        k, d = values.shape
        parts.append(
            (
                rows,
                np.full(k, d, dtype=np.int64),
                np.tile(np.arange(d, dtype=np.int64), k),
                values.ravel(),
                np.full(k, d, dtype=np.int64),
            )
        )
    counts = np.zeros(n, dtype=np.int64)
    width = 0
    for rows, c, _, _, widths in parts:
        counts[rows] = c
        if len(widths):
            width = max(width, int(widths.max()))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    dtype = np.result_type(*(p[3].dtype for p in parts))
    cols = np.empty(int(indptr[-1]), dtype=np.int64)
    vals = np.empty(int(indptr[-1]), dtype=dtype)
    for rows, c, pcols, pvals, _ in parts:
        if not len(pcols):
            continue
        first = np.cumsum(c) - c  # each row's first entry within the block
        dest = np.repeat(indptr[rows] - first, c) + np.arange(len(pcols))
        cols[dest] = pcols
        vals[dest] = pvals
    return scipy.sparse.csr_matrix((vals, cols, indptr), shape=(n, width))


def _csr(
    vals: npt.NDArray[Any], cols: npt.NDArray[np.int64], counts: Rows, widths: Rows
) -> scipy.sparse.csr_matrix:
    """One block holding every row in order is already in CSR order: no scattering."""
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    width = int(widths.max()) if len(widths) else 0
    if max(len(counts), width, int(indptr[-1])) <= _INT32_MAX:
        # scipy would check every index and pick int32 itself; every key is below `width`.
        indptr, cols = indptr.astype(np.int32), cols.astype(np.int32, copy=False)
    else:
        cols = cols.astype(np.int64, copy=False)
    return scipy.sparse.csr_matrix((vals, cols, indptr), shape=(len(counts), width))
