"""The vectorised sparse path (batch walk, padded gathers, short-varint decoding, guessed counts)
gives exactly what the per-record path gives, and leaves malformed records to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
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
    cols = np.concatenate([np.sort(rng.choice(width, k, replace=False)) for k in nnz] or [[]])
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
