"""Protobuf wire format for the `Record` tensors by hand, vectorised with numpy.

Why not just the protobuf runtime: it parses fast, but turning a repeated field into a numpy
array costs a Python object per value. Here packed values are sliced straight out of the buffer
(`np.frombuffer`) and varints are decoded for a whole array at once.

- `encode_varints` / `decode_varints`: packed varint arrays.
- `encode_value` / `record_bytes`: the bytes protobuf writes for a `Record` of tensors, in field
  order, identical to `Record.SerializeToString()`.
- `walk_record`: where the tensors of one serialized `Record` sit (byte spans), for decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32, F64, I32 = 2, 3, 7
"""`Value` field numbers of the tensor kinds, used as the kind codes."""
BYTES_KIND = 9
KIND_DTYPE: dict[int, np.dtype[np.generic]] = {
    F32: np.dtype("<f4"),
    F64: np.dtype("<f8"),
    I32: np.dtype("<i4"),
}
KIND_NAME = {F32: "float32_tensor", F64: "float64_tensor", I32: "int32_tensor", BYTES_KIND: "bytes"}

U8Array = npt.NDArray[np.uint8]
U64Array = npt.NDArray[np.uint64]

_SHIFTS = (7 * np.arange(10, dtype=np.uint64)).astype(np.uint64)
_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


class Malformed(Exception):
    """The bytes are not what the fast path expects; the caller falls back or reports."""


class Unsupported(Exception):
    """Valid protobuf the fast path does not handle (unpacked fields, merges): use the runtime."""


def varint(value: int) -> bytes:
    """One unsigned varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_varints(values: npt.NDArray[np.integer]) -> bytes:
    """Packed varints of `values` (uint64 bit patterns: int32 negatives must be sign-extended)."""
    x = np.ascontiguousarray(values).astype(np.uint64, copy=False)
    if x.size == 0:
        return b""
    if int(x.max()) < 0x80:
        return bytes(x.astype(np.uint8).tobytes())
    nbytes = 1 + (x[:, None] >= _LIMITS[None, :]).sum(axis=1)
    k = np.arange(10)
    groups = ((x[:, None] >> _SHIFTS[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    groups |= np.where(k[None, :] < (nbytes[:, None] - 1), 0x80, 0).astype(np.uint8)
    return bytes(groups[k[None, :] < nbytes[:, None]].tobytes())


def decode_varints(data: U8Array) -> U64Array:
    """The values of packed varints; `Malformed` if the last one is cut or one is too long."""
    b = np.asarray(data, dtype=np.uint8)
    if b.size == 0:
        return np.empty(0, dtype=np.uint64)
    last = b < 0x80
    if last.all():
        return b.astype(np.uint64)
    if not last[-1]:
        raise Malformed("truncated varint")
    return decode_varints_at(b, np.flatnonzero(last))


def decode_varints_at(b: U8Array, ends: npt.NDArray[np.intp]) -> U64Array:
    """The varints of `b` whose last bytes are `ends` (all of them, the last at `b[-1]`).

    Callers that also need the ends (to count varints per record) find them once. Each varint is
    assembled from one gather per byte position of the longest, so the work is a few passes over
    the varints, not index arrays over every byte: keys and shapes are mostly 1-2 bytes long.
    """
    cont = b >= 0x80
    if not (cont[1:] & cont[:-1]).any():
        return _decode_short(b, cont, ends)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    longest = int(lengths.max(initial=0)) + 1
    if longest > 10:
        raise Malformed("varint longer than 10 bytes")
    out = (b[starts] & 0x7F).astype(np.uint64)
    for k in range(1, longest):
        part = (b[np.minimum(starts + k, ends)] & 0x7F).astype(np.uint64) << _SHIFTS[k]
        out |= part * (lengths >= k)
    return out


def _decode_short(b: U8Array, cont: npt.NDArray[np.bool_], ends: npt.NDArray[np.intp]) -> U64Array:
    """Varints of 1 or 2 bytes (no two continuation bytes in a row), in 16-bit arithmetic over
    the bytes: each last byte, joined to the byte before when that one continues into it."""
    wide = b.astype(np.uint16)
    step = cont[:-1].view(np.uint8)
    wide[1:] = (wide[1:] << (step * np.uint8(7))) | ((wide[:-1] & 0x7F) * step)
    return wide[ends].astype(np.uint64)


def decode_short_at(b: U8Array, ends: npt.NDArray[np.intp]) -> npt.NDArray[np.uint16] | None:
    """Like `decode_varints_at`, for varints of at most 2 bytes (sparse keys below 2**14), as
    uint16; None if one is longer or the last is cut.

    Every byte is read as if it ended a varint, in 16-bit arithmetic over the bytes, then the
    real ends are picked: `b + two * (127 * b + before - 128)` is `b`, or `(b << 7) | (before &
    0x7F)` where the byte before continues into this one (`two`). A few passes over the bytes
    and one gather, no 64-bit temporaries."""
    if not len(b):
        return np.empty(0, dtype=np.uint16)
    cont = b >= 0x80
    if cont[-1] or (cont[1:] & cont[:-1]).any():
        return None
    wide = b.astype(np.uint16)
    value = wide * np.uint16(127)
    value[1:] += wide[:-1]
    value -= np.uint16(0x80)  # wraps where there is no continuation: multiplied by 0 next
    value[1:] *= cont[:-1]
    value[0] = 0
    value += wide
    got: npt.NDArray[np.uint16] = value[ends]
    return got


def _key(key: str) -> bytes:
    raw = key.encode()
    return b"\x0a" + varint(len(raw)) + raw


def _len_field(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + varint(len(body)) + body


def values_bytes(kind: int, values: npt.NDArray[np.generic]) -> bytes:
    """The packed bytes of a tensor's `values`, as protobuf writes them."""
    if kind == I32:
        ints = np.asarray(values)
        if ints.size and (int(ints.min()) < -(2**31) or int(ints.max()) >= 2**31):
            raise ValueError("Int32Tensor values must fit in 32 bits")
        return encode_varints(ints.astype(np.int64).view(np.uint64))
    return np.ascontiguousarray(values, dtype=KIND_DTYPE[kind]).tobytes()


def encode_tensor(
    kind: int,
    values: npt.NDArray[np.generic],
    keys: npt.NDArray[np.integer] | None = None,
    shape: tuple[int, ...] | list[int] | None = None,
) -> bytes:
    """A `Value` message holding one tensor: `kind` field, then values, keys, shape, each
    omitted when empty (protobuf never writes an empty packed field)."""
    body = b""
    if len(values):
        body += _len_field(0x0A, values_bytes(kind, values))
    if keys is not None and len(keys):
        body += _len_field(0x12, encode_varints(np.asarray(keys).astype(np.uint64)))
    if shape:
        body += _len_field(0x1A, encode_varints(np.asarray(shape, dtype=np.uint64)))
    return _len_field(kind << 3 | 2, body)


def map_entry(tag: int, key: str, value: bytes) -> bytes:
    """One `features` (tag 0x0A) or `label` (0x12) map entry: key, then the `Value` bytes."""
    return _len_field(tag, _key(key) + _len_field(0x12, value))


def record_bytes(features: dict[str, bytes], label: dict[str, bytes] | None = None) -> bytes:
    """A serialized `Record` from already-encoded `Value`s, keyed by map key."""
    out = [map_entry(0x0A, k, v) for k, v in features.items()]
    out += [map_entry(0x12, k, v) for k, v in (label or {}).items()]
    return b"".join(out)


@dataclass(slots=True)
class TensorSpan:
    """Where one tensor's fields sit in a serialized record (absolute `(start, end)` spans)."""

    kind: int
    values: tuple[int, int] | None = None
    keys: tuple[int, int] | None = None
    shape: tuple[int, int] | None = None


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise Malformed("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise Malformed("varint longer than 10 bytes")


def _skip(buf: bytes, pos: int, end: int, wire_type: int) -> int:
    if wire_type == 0:
        return _read_varint(buf, pos, end)[1]
    if wire_type == 1:
        pos += 8
    elif wire_type == 5:
        pos += 4
    elif wire_type == 2:
        n, pos = _read_varint(buf, pos, end)
        pos += n
    else:
        raise Unsupported(f"wire type {wire_type}")
    if pos > end:
        raise Malformed("field runs past its message")
    return pos


def _len(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    n, pos = _read_varint(buf, pos, end)
    if pos + n > end:
        raise Malformed("length-delimited field runs past its message")
    return pos, pos + n


def _tensor(buf: bytes, start: int, end: int, kind: int) -> TensorSpan:
    span = TensorSpan(kind)
    pos = start
    while pos < end:
        tag, pos = _read_varint(buf, pos, end)
        field, wire_type = tag >> 3, tag & 7
        if field in (1, 2, 3):
            if wire_type != 2:
                raise Unsupported("unpacked repeated field")
            s, pos = _len(buf, pos, end)
            if field == 1:
                if span.values is not None:
                    raise Unsupported("repeated packed field split in two")
                span.values = (s, pos)
            elif field == 2:
                if span.keys is not None:
                    raise Unsupported("repeated packed field split in two")
                span.keys = (s, pos)
            else:
                if span.shape is not None:
                    raise Unsupported("repeated packed field split in two")
                span.shape = (s, pos)
        else:
            pos = _skip(buf, pos, end, wire_type)
    return span


def _value(buf: bytes, start: int, end: int) -> TensorSpan | None:
    found: TensorSpan | None = None
    pos = start
    while pos < end:
        tag, pos = _read_varint(buf, pos, end)
        field, wire_type = tag >> 3, tag & 7
        if field in KIND_DTYPE or field == BYTES_KIND:
            if wire_type != 2:
                raise Malformed(f"Value field {field} is not length-delimited")
            s, pos = _len(buf, pos, end)
            if found is not None and found.kind == field:
                raise Unsupported("the same tensor field twice (merged by protobuf)")
            found = _tensor(buf, s, pos, field) if field != BYTES_KIND else TensorSpan(BYTES_KIND)
        else:
            pos = _skip(buf, pos, end, wire_type)
    return found


def walk_record(
    buf: bytes, start: int, end: int, feature_key: str, label_key: str
) -> tuple[TensorSpan | None, TensorSpan | None, bool]:
    """The spans of `features[feature_key]` and `label[label_key]` in the record at
    `buf[start:end]`, and whether the record has other map entries (later entries win, as in
    protobuf maps). `Malformed` for broken bytes, `Unsupported` for what the runtime must do."""
    fkey = feature_key.encode()
    lkey = label_key.encode()
    features: TensorSpan | None = None
    label: TensorSpan | None = None
    others = False
    pos = start
    while pos < end:
        tag, pos = _read_varint(buf, pos, end)
        field, wire_type = tag >> 3, tag & 7
        if field in (1, 2):
            if wire_type != 2:
                raise Malformed("map entry is not length-delimited")
            s, pos = _len(buf, pos, end)
            key = b""
            value: TensorSpan | None = None
            p = s
            while p < pos:
                etag, p = _read_varint(buf, p, pos)
                if etag == 0x0A:
                    ks, p = _len(buf, p, pos)
                    key = buf[ks:p]
                elif etag == 0x12:
                    vs, p = _len(buf, p, pos)
                    value = _value(buf, vs, p)
                else:
                    p = _skip(buf, p, pos, etag & 7)
            if field == 1 and key == fkey:
                features = value
            elif field == 2 and key == lkey:
                label = value
            else:
                others = True
        elif field in (3, 4, 5):
            if wire_type != 2:
                raise Malformed(f"Record field {field} is not length-delimited")
            pos = _len(buf, pos, end)[1]
        else:
            pos = _skip(buf, pos, end, wire_type)
    return features, label, others
