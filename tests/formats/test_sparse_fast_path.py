"""The vectorised sparse path (batch walk, padded gathers, short-varint decoding, guessed counts)
gives exactly what the per-record path gives, and leaves malformed records to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opensage.formats import batchwalk, decode, recordio, wire
from opensage.formats.errors import RecordError
from opensage.formats.tensors import encode_dense, encode_sparse, read_batches, read_tensors


@contextmanager
def per_record() -> Iterator[None]:
    """Turn off templates and the batch walk: every record is decoded on its own."""
    old = decode._MIN_GROUP, decode._MIN_WALK
    decode._MIN_GROUP, decode._MIN_WALK = 10**9, 10**9
    try:
        yield
    finally:
        decode._MIN_GROUP, decode._MIN_WALK = old


def assert_same(fast: tuple[Any, Any], slow: tuple[Any, Any]) -> None:
    """Equal down to dtypes and the CSR arrays themselves."""
    (f, fl), (s, sl) = fast, slow
    assert scipy.sparse.issparse(f) == scipy.sparse.issparse(s)
    assert f.shape == s.shape
    assert f.dtype == s.dtype
    if scipy.sparse.issparse(f):
        for name in ("indptr", "indices", "data"):
            a, b = getattr(f, name), getattr(s, name)
            assert a.dtype == b.dtype, name
            np.testing.assert_array_equal(a, b, err_msg=name)
    else:
        np.testing.assert_array_equal(f, s)
    assert (fl is None) == (sl is None)
    if fl is not None:
        assert fl.dtype == sl.dtype
        assert fl.shape == sl.shape
        np.testing.assert_array_equal(fl, sl)


def both_ways(data: bytes, chunk_size: int = recordio.CHUNK_SIZE) -> tuple[Any, Any]:
    fast = read_tensors(data, chunk_size=chunk_size)
    with per_record():
        slow = read_tensors(data, chunk_size=chunk_size)
    assert_same(fast, slow)
    return fast


def error_both_ways(data: bytes) -> RecordError:
    with pytest.raises(RecordError) as fast:
        read_tensors(data)
    with per_record(), pytest.raises(RecordError) as slow:
        read_tensors(data)
    assert (fast.value.record, fast.value.offset) == (slow.value.record, slow.value.offset)
    assert fast.value.message == slow.value.message
    return fast.value


@st.composite
def sparse_files(draw: st.DrawFn) -> bytes:
    """Sparse rows (some empty) with keys of every varint length, values of every kind, with or
    without labels, sometimes mixed with dense rows of the same width."""
    width = draw(st.sampled_from([3, 130, 1000, 2**14 + 5, 2**21 + 7, 2**30]))
    n = draw(st.integers(1, 40))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32]))
    density = draw(st.sampled_from([0.0, 0.01, 0.3]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    nnz = rng.binomial(min(width, 60), density, size=n)
    rows = np.repeat(np.arange(n), nnz)
    cols = np.concatenate(
        [np.sort(rng.choice(width, k, replace=False)) for k in nnz] or [np.empty(0, np.int64)]
    )
    if dtype is np.int32:
        vals = rng.integers(-(2**31), 2**31, size=len(rows)).astype(np.int32)
    else:
        vals = rng.normal(size=len(rows)).astype(dtype)
    vals[vals == 0] = 1
    matrix = scipy.sparse.csr_matrix((vals, (rows, cols.astype(np.int64))), shape=(n, width))
    labels = None
    if draw(st.booleans()):
        labels = rng.integers(-5, 5, size=n).astype(draw(st.sampled_from([np.float32, np.int64])))
    data = encode_sparse(matrix, labels)
    if width <= 1000 and draw(st.booleans()):
        dense = rng.normal(size=(draw(st.integers(1, 5)), width)).astype(np.float32)
        extra = None if labels is None else np.zeros(len(dense), labels.dtype)
        at = draw(st.sampled_from(["before", "after"]))
        data = (
            encode_dense(dense, extra) + data
            if at == "before"
            else data + encode_dense(dense, extra)
        )
    return data


@settings(max_examples=120, deadline=None)
@given(sparse_files(), st.sampled_from([recordio.CHUNK_SIZE, 256, 4096]))
def test_fast_path_equals_per_record_path(data: bytes, chunk_size: int) -> None:
    both_ways(data, chunk_size)


def test_streaming_batches_equal_whole_read() -> None:
    rng = np.random.default_rng(3)
    matrix = scipy.sparse.random(600, 2**15, density=0.001, format="csr", dtype=np.float32, rng=rng)
    data = encode_sparse(matrix, np.arange(600, dtype=np.float32))
    whole = both_ways(data)
    parts = list(read_batches(__import__("io").BytesIO(data), chunk_size=4096))
    assert len(parts) > 1
    stacked = scipy.sparse.vstack([scipy.sparse.csr_matrix(p[0]) for p in parts], format="csr")
    np.testing.assert_array_equal(stacked.toarray(), whole[0].toarray())
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), whole[1])


def test_empty_sparse_rows_only() -> None:
    matrix = scipy.sparse.csr_matrix((20, 50), dtype=np.float32)
    features, _ = both_ways(encode_sparse(matrix, np.ones(20, np.float32)))
    assert features.shape == (20, 50)
    assert features.nnz == 0


def _sparse_records(n: int = 12, width: int = 300) -> tuple[list[bytes], Any]:
    rng = np.random.default_rng(5)
    matrix = scipy.sparse.random(n, width, density=0.1, format="csr", dtype=np.float32, rng=rng)
    labels = np.arange(n, dtype=np.float32)
    payloads = recordio.read_all_records(encode_sparse(matrix, labels))
    return payloads, matrix


def _record(values: bytes, keys: bytes, shape: int, label: float = 1.0) -> bytes:
    body = wire._len_field(0x0A, values) + wire._len_field(0x12, keys)
    body += wire._len_field(0x1A, wire.varint(shape))
    features = wire.map_entry(0x0A, "values", wire._len_field(0x12, body))
    label_value = wire.encode_tensor(wire.F32, np.array([label], np.float32))
    return features + wire.map_entry(0x12, "values", label_value)


def _file(payloads: list[bytes]) -> bytes:
    return b"".join(recordio.encode_record(p) for p in payloads)


def _floats(*values: float) -> bytes:
    return np.array(values, np.float32).tobytes()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (b"\x01\x82", "malformed"),  # the last key is cut: protobuf rejects the record
        (b"\x01" + b"\xff" * 10 + b"\x01", "malformed"),  # an 11-byte varint
        (b"\x01\xac\x02", "outside shape"),  # key 300 in a row of width 300
        (b"\x01", "keys for"),  # fewer keys than values
    ],
)
def test_malformed_row_is_reported_like_the_per_record_path(keys: bytes, message: str) -> None:
    payloads, _ = _sparse_records()
    payloads[7] = _record(_floats(1.0, 2.0), keys, 300)
    error = error_both_ways(_file(payloads))
    assert error.record == 7
    assert error.offset == sum(8 + len(p) + recordio.padding(len(p)) for p in payloads[:7])
    if message != "malformed":
        assert message in error.message


def test_odd_rows_fall_back_and_the_rest_stay_fast() -> None:
    """Rows the walk cannot take (a 3-byte key, a wide value span) decode the same per record."""
    payloads, _ = _sparse_records(40, 2**20)
    payloads[3] = _record(_floats(1.0), wire.varint(2**20 - 1), 2**20)
    payloads[9] = _record(_floats(*range(1, 400)), wire.encode_varints(np.arange(399)), 2**20)
    payloads[10] = _record(b"", b"", 2**20)
    both_ways(_file(payloads))


def test_gather_paths_agree() -> None:
    rng = np.random.default_rng(1)
    buf = rng.integers(0, 256, size=997, dtype=np.uint8)
    for lengths in ([4] * 30, list(rng.integers(0, 40, 30)), [0] * 5, [3] * 7, [1, 900, 2]):
        lengths_ = np.array(lengths, dtype=np.int64)
        start = rng.integers(0, len(buf) - lengths_ + 1)
        start[-1] = len(buf) - lengths_[-1]  # a range at the very end of the buffer
        end = start + lengths_
        expected = b"".join(buf[s:e].tobytes() for s, e in zip(start, end, strict=True))
        assert batchwalk.gather(buf, start, end).tobytes() == expected
        if not (lengths_ % 4).any():
            assert batchwalk.gather(buf, start, end, 4).tobytes() == expected


def test_varint_counts_with_right_and_wrong_guesses() -> None:
    values = np.array([1, 300, 5, 2**14, 7, 0, 2**40], dtype=np.uint64)
    pieces = [wire.encode_varints(values[:2]), b"", wire.encode_varints(values[2:5]),
              wire.encode_varints(values[5:])]  # fmt: skip
    raw = np.frombuffer(b"".join(pieces), np.uint8)
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    ends = np.flatnonzero(raw < 0x80)
    truth = np.array([2, 0, 3, 2])
    for guess in (None, truth, np.array([1, 1, 3, 2]), np.array([2, 0, 2, 3])):
        counts, whole = batchwalk.varint_counts(raw, ends, lengths, guess)
        np.testing.assert_array_equal(counts, truth)
        assert whole.all()
    np.testing.assert_array_equal(wire.decode_varints_at(raw, ends), values)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 2**14 - 1), min_size=1, max_size=50))
def test_decode_varints_short_and_long(values: list[int]) -> None:
    array = np.array(values, dtype=np.uint64)
    raw = np.frombuffer(wire.encode_varints(array), np.uint8)
    np.testing.assert_array_equal(wire.decode_varints(raw), array)


# ---------------------------------------------------------------------------------------------
# The SDK sparse layout path (`batchwalk.walk_sparse`): records matched as a whole template.


def _outcome(data: bytes, chunk_size: int) -> tuple[Any, Any] | tuple[str, int | None, Any, str]:
    try:
        return read_tensors(data, chunk_size=chunk_size)
    except RecordError as error:
        return ("error", error.record, error.offset, error.message)


def same_outcome(data: bytes, chunk_size: int = recordio.CHUNK_SIZE) -> None:
    """The fast paths give what the per-record path gives: the same result or the same error."""
    fast = _outcome(data, chunk_size)
    with per_record():
        slow = _outcome(data, chunk_size)
    if isinstance(fast[0], str) or isinstance(slow[0], str):
        assert fast == slow
    else:
        assert_same(fast, slow)  # type: ignore[arg-type]


STYLES = ["sdk", "sdk", "sdk", "sdk", "wide", "narrow", "f64", "i32", "no_label", "vector_label",
          "f64_label", "i32_label", "dense", "empty", "long_key", "corrupt"]  # fmt: skip


def _styled_record(style: str, rng: np.random.Generator, width: int) -> bytes:
    """One record: mostly what the SDK writes for a sparse row of `width` columns, else a
    variation that the layout must not take (or, for `corrupt`, a broken one)."""
    kind, lkind, label = wire.F32, wire.F32, np.array([rng.integers(0, 5)], np.float32)
    if style == "wide":
        width = width * 7 + 3
    elif style == "narrow":
        width = 3
    nnz = int(rng.integers(1, min(width, 40) + 1))
    keys = np.sort(rng.choice(width, nnz, replace=False)).astype(np.uint64)
    values: Any = rng.normal(size=nnz).astype(np.float32)
    if style == "f64":
        kind, values = wire.F64, values.astype(np.float64)
    elif style == "i32":
        kind, values = wire.I32, rng.integers(-1000, 1000, size=nnz).astype(np.int32)
    elif style == "dense":
        keys, values = np.empty(0, np.uint64), rng.normal(size=width).astype(np.float32)
    elif style == "empty":
        keys, values = np.empty(0, np.uint64), np.empty(0, np.float32)
    elif style == "long_key":
        keys[-1] = width - 1 if width > 2**14 else keys[-1]
    features = wire.map_entry(0x0A, "values", wire.encode_tensor(kind, values, keys, [width]))
    if style == "no_label":
        return features
    if style == "vector_label":
        label = np.array([1.5, 2.5], np.float32)
    elif style == "f64_label":
        lkind, label = wire.F64, label.astype(np.float64)
    elif style == "i32_label":
        lkind, label = wire.I32, label.astype(np.int32)
    record = features + wire.map_entry(0x12, "values", wire.encode_tensor(lkind, label))
    if style == "corrupt":
        at = int(rng.integers(0, len(record)))
        record = record[:at] + bytes([int(rng.integers(0, 256))]) + record[at + 1 :]
    return record


@st.composite
def styled_files(draw: st.DrawFn) -> bytes:
    width = draw(st.sampled_from([5, 130, 1000, 2**14 + 1]))
    styles = draw(st.lists(st.sampled_from(STYLES), min_size=1, max_size=40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return _file([_styled_record(style, rng, width) for style in styles])


@settings(max_examples=150, deadline=None)
@given(styled_files(), st.sampled_from([recordio.CHUNK_SIZE, 512, 4096]))
def test_layout_path_equals_per_record_path(data: bytes, chunk_size: int) -> None:
    same_outcome(data, chunk_size)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([None, np.float32, np.float64]))
def test_sdk_files_take_the_layout_path(seed: int, label_dtype: Any) -> None:
    """Rows as the SDK writes them decode by layout (and as per record), as long as they are
    under 16 kB (lengths of 3 bytes go the walk's way) and not empty."""
    rng = np.random.default_rng(seed)
    n, width = int(rng.integers(8, 60)), int(rng.choice([20, 300, 2**14]))
    density = min(0.2, 100 / width)
    matrix = scipy.sparse.random(n, width, density=density, format="csr", dtype=np.float32, rng=rng)
    labels = None if label_dtype is None else rng.normal(size=n).astype(label_dtype)
    data = encode_sparse(matrix, labels)
    frames = recordio.split_frames(data)
    ctx = decode._Context(frames, None, "values", "values")
    filled = np.flatnonzero(np.diff(matrix.indptr) > 0)
    assume(len(filled) > 0)
    found = decode._sparse_layout(ctx, int(filled[0]))  # an empty row has no layout to give
    assert found is not None
    buf = np.frombuffer(frames.data, np.uint8)
    spans = batchwalk.walk_sparse(buf, frames.starts, frames.lengths, found[0])
    # Empty rows (no values or keys field) are left to the walk.
    np.testing.assert_array_equal(spans.ok, np.diff(matrix.indptr) > 0)
    features, got_labels = both_ways(data)
    np.testing.assert_array_equal(features.toarray(), matrix.toarray())
    if labels is not None:
        np.testing.assert_array_equal(got_labels, labels)


def test_two_shapes_in_one_file() -> None:
    """A shape change mid-file starts a second layout; rows of either decode the same."""
    rng = np.random.default_rng(2)
    first = scipy.sparse.random(30, 100, density=0.1, format="csr", dtype=np.float32, rng=rng)
    second = scipy.sparse.random(30, 200, density=0.1, format="csr", dtype=np.float32, rng=rng)
    labels = np.ones(30, np.float32)
    features, _ = both_ways(encode_sparse(first, labels) + encode_sparse(second, labels))
    assert features.shape == (60, 200)


def test_layout_rows_with_bad_keys_are_reported_like_the_per_record_path() -> None:
    payloads, _ = _sparse_records(40, 300)
    good = payloads[5]
    # A key per value, but one outside the width; then a row with a key too few.
    payloads[20] = _record(_floats(1.0, 2.0), wire.encode_varints(np.array([1, 300])), 300)
    payloads[30] = _record(_floats(1.0, 2.0), wire.encode_varints(np.array([1])), 300)
    error = error_both_ways(_file(payloads))
    assert error.record == 20
    payloads[20] = good
    error = error_both_ways(_file(payloads))
    assert error.record == 30


def test_gather_without_ordered_scatter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The row-prefix mask gives what the overlapping scatter gives."""
    assert batchwalk._ordered_scatter()
    rng = np.random.default_rng(4)
    buf = rng.integers(0, 256, size=5000, dtype=np.uint8)
    lengths = rng.integers(0, 50, size=200).astype(np.int64) * 4
    start = rng.integers(0, len(buf) - 200, size=200).astype(np.int64)
    fast = batchwalk.gather(buf, start, start + lengths, 4)
    monkeypatch.setattr(batchwalk, "_ordered_scatter", lambda: False)
    slow = batchwalk.gather(buf, start, start + lengths, 4)
    np.testing.assert_array_equal(fast, slow)
    expected = b"".join(buf[s : s + k].tobytes() for s, k in zip(start, lengths, strict=True))
    assert fast.tobytes() == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**14 - 1), max_size=60) | st.lists(st.integers(0, 2**20)))
def test_decode_short_at(values: list[int]) -> None:
    array = np.array(values, dtype=np.uint64)
    raw = np.frombuffer(wire.encode_varints(array), np.uint8)
    got = wire.decode_short_at(raw, np.flatnonzero(raw < 0x80))
    if len(array) and int(array.max()) >= 2**14:
        assert got is None
    else:
        assert got is not None
        np.testing.assert_array_equal(got, array)
