"""RecordIO-protobuf tensors: the spec's byte-exact examples, the SDK's golden files, hypothesis
round trips of every tensor type, and malformed records."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from opensage.formats import recordio, wire
from opensage.formats.errors import RecordError
from opensage.formats.protobuf import Record, file_descriptor
from opensage.formats.tensors import (
    decode_payloads,
    encode_dense,
    encode_sparse,
    read_batches,
    read_dense,
    read_record_messages,
    read_sparse,
    read_tensors,
    write_dense,
    write_sparse,
)
from tests.formats.conftest import trickle

GOLDEN = Path(__file__).parent / "golden"

# Spec training-and-data 2.7, the full files.
EXAMPLE_1 = bytes.fromhex(
    "0a23d7ce2c000000"
    "0a16 0a0676616c756573 120c 120a 0a08 0000803f00000040"
    "1212 0a0676616c756573 1208 1206 0a04 0000803f".replace(" ", "")
)
EXAMPLE_2 = bytes.fromhex(
    "0a 23 d7 ce 1c 00 00 00 0a 1a 0a 06 76 61 6c 75 65 73 12 10 12 0e 0a 0c 00 00 c0 3f 00 00 00 "
    "c0 00 00 40 40"
)
EXAMPLE_3 = bytes.fromhex(
    "0a 23 d7 ce 38 00 00 00 0a 1e 0a 06 76 61 6c 75 65 73 12 14 1a 12 0a 10 00 00 00 00 00 00 e0 "
    "3f 00 00 00 00 00 00 00 40 12 16 0a 06 76 61 6c 75 65 73 12 0c 1a 0a 0a 08 00 00 00 00 00 00 "
    "00 00"
)
EXAMPLE_4 = bytes.fromhex(
    "0a 23 d7 ce 33 00 00 00 0a 1d 0a 06 76 61 6c 75 65 73 12 13 12 11 0a 08 00 00 a0 40 00 00 e0 "
    "40 12 02 01 03 1a 01 05 12 12 0a 06 76 61 6c 75 65 73 12 08 12 06 0a 04 00 00 00 40 00"
)


def test_spec_examples_encode_exactly() -> None:
    assert len(EXAMPLE_1) == 52
    assert len(EXAMPLE_4) == 60
    f32 = np.float32
    assert encode_dense(np.array([[1.0, 2.0]], f32), np.array([1.0], f32)) == EXAMPLE_1
    assert encode_dense(np.array([[1.5, -2.0, 3.0]], f32)) == EXAMPLE_2
    assert encode_dense(np.array([[0.5, 2.0]]), np.array([0.0])) == EXAMPLE_3
    sparse = scipy.sparse.csr_matrix(np.array([[0, 5.0, 0, 7.0, 0]], f32))
    assert encode_sparse(sparse, np.array([2.0], f32)) == EXAMPLE_4


def test_spec_examples_decode() -> None:
    features, labels = read_dense(EXAMPLE_1)
    assert features.tolist() == [[1.0, 2.0]]
    assert features.dtype == np.float32
    assert labels is not None
    assert labels.tolist() == [1.0]
    features, labels = read_dense(EXAMPLE_2)
    assert features.tolist() == [[1.5, -2.0, 3.0]]
    assert labels is None
    features, labels = read_dense(EXAMPLE_3)
    assert features.dtype == np.float64
    assert features.tolist() == [[0.5, 2.0]]
    assert labels is not None
    assert labels.tolist() == [0.0]
    matrix, labels = read_sparse(EXAMPLE_4)
    assert matrix.shape == (1, 5)
    assert matrix.toarray().tolist() == [[0, 5.0, 0, 7.0, 0]]
    assert labels is not None
    assert labels.tolist() == [2.0]
    (record,) = read_record_messages(EXAMPLE_4)
    assert list(record.features["values"].float32_tensor.keys) == [1, 3]
    assert list(record.features["values"].float32_tensor.shape) == [5]


def test_message_classes_serialize_like_the_spec() -> None:
    record = Record()
    record.features["values"].float32_tensor.values.extend([1.0, 2.0])
    record.label["values"].float32_tensor.values.extend([1.0])
    assert recordio.encode_record(record.SerializeToString()) == EXAMPLE_1


def test_descriptor_matches_record_proto() -> None:
    fd = file_descriptor()
    assert fd.package == "aialgs.data"
    assert fd.syntax == "proto2"
    names = [m.name for m in fd.message_type]
    assert names == [
        "Float32Tensor",
        "Float64Tensor",
        "Int32Tensor",
        "Bytes",
        "Value",
        "Record",
        "RecordCollection",
    ]
    value = fd.message_type[4]
    assert {f.name: f.number for f in value.field} == {
        "float32_tensor": 2,
        "float64_tensor": 3,
        "int32_tensor": 7,
        "bytes": 9,
    }
    assert all(f.options.packed for f in fd.message_type[0].field)


# ------------------------------------------------------------------------------------------
# Golden files written by the real SageMaker SDK (see golden/make_golden.py).


def _golden_cases() -> dict[str, Any]:
    return dict(json.loads((GOLDEN / "cases.json").read_text())["cases"])


def _array(desc: dict[str, Any] | None) -> Any:
    if desc is None:
        return None
    if desc["sparse"]:
        return scipy.sparse.csr_matrix(np.array(desc["dense"], dtype=desc["dtype"]))
    return np.array(desc["values"], dtype=desc["dtype"])


@pytest.mark.parametrize("name", sorted(_golden_cases()))
def test_golden_sdk_files(name: str) -> None:
    case = _golden_cases()[name]
    golden = (GOLDEN / f"{name}.pbr").read_bytes()
    features, labels = _array(case["features"]), _array(case["labels"])
    sparse = case["features"]["sparse"]
    # Our writer reproduces the SDK's bytes...
    ours = encode_sparse(features, labels) if sparse else encode_dense(features, labels)
    assert ours == golden
    from opensage.sdk import amazon

    buffer = io.BytesIO()
    if sparse:
        amazon.write_spmatrix_to_sparse_tensor(buffer, features, labels)
    else:
        amazon.write_numpy_to_dense_tensor(buffer, features, labels)
    assert buffer.getvalue() == golden
    # ...and our readers read the SDK's file back to the inputs.
    got, got_labels = read_tensors(golden)
    want = features.toarray() if sparse else features
    dense = got.toarray() if scipy.sparse.issparse(got) else got
    assert scipy.sparse.issparse(got) == sparse
    np.testing.assert_array_equal(dense, want.astype(dense.dtype))
    assert dense.dtype == {"int64": np.int32}.get(str(want.dtype), want.dtype)
    if labels is None:
        assert got_labels is None
    else:
        np.testing.assert_array_equal(got_labels, labels)
    records = amazon.read_records(io.BytesIO(golden))
    assert len(records) == want.shape[0]
    assert all(r.SerializeToString() for r in records)


# ------------------------------------------------------------------------------------------
# Round trips.

KINDS = {np.float32: wire.F32, np.float64: wire.F64, np.int64: wire.I32, np.int32: wire.I32}
dtypes = st.sampled_from([np.float32, np.float64, np.int64])


def _elements(dtype: Any) -> st.SearchStrategy[Any]:
    if np.dtype(dtype).kind == "i":
        return st.integers(-(2**31), 2**31 - 1)
    return st.floats(allow_nan=False, width=32 if dtype == np.float32 else 64)


@st.composite
def dense_cases(draw: st.DrawFn) -> tuple[Any, Any]:
    dtype = draw(dtypes)
    rows = draw(st.integers(0, 30))
    cols = draw(st.integers(0, 6))
    array = draw(hnp.arrays(dtype, (rows, cols), elements=_elements(dtype)))
    labels = None
    if draw(st.booleans()):
        ldtype = draw(dtypes)
        labels = draw(hnp.arrays(ldtype, (rows,), elements=_elements(ldtype)))
    return array, labels


def _sdk_like(array: Any, labels: Any, sparse: bool) -> bytes:
    """What the SDK's algorithm writes, built with protobuf messages row by row."""
    out = []
    kind = wire.KIND_NAME[KINDS[array.dtype.type]]
    csr = scipy.sparse.csr_matrix(array) if sparse else None
    for i in range(array.shape[0]):
        record = Record()
        tensor = getattr(record.features["values"], kind)
        if csr is not None:
            row = csr.getrow(i)
            tensor.values.extend(row.data.tolist())
            tensor.keys.extend(row.indices.astype(np.uint64).tolist())
        else:
            tensor.values.extend(array[i].tolist())
        if labels is not None:
            lkind = wire.KIND_NAME[KINDS[labels.dtype.type]]
            getattr(record.label["values"], lkind).values.extend([labels[i].item()])
        if csr is not None:
            tensor.shape.extend([array.shape[1]])
        out.append(recordio.encode_record(record.SerializeToString()))
    return b"".join(out)


@settings(max_examples=120, deadline=None)
@given(dense_cases(), st.integers(1, 300))
def test_dense_round_trip(case: tuple[Any, Any], chunk: int) -> None:
    array, labels = case
    data = encode_dense(array, labels)
    assert data == _sdk_like(array, labels, sparse=False)
    if array.shape[0] == 0:
        assert data == b""
        return
    features, got_labels = read_dense(data)
    np.testing.assert_array_equal(features, array.astype(features.dtype))
    assert features.shape == array.shape
    if labels is None:
        assert got_labels is None
    else:
        np.testing.assert_array_equal(got_labels, labels.astype(got_labels.dtype))
    # Streaming through a pipe-like stream in small chunks gives the same rows.
    batches = list(read_batches(trickle(data, 13), chunk_size=chunk))
    streamed = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(streamed, features)


@st.composite
def sparse_cases(draw: st.DrawFn) -> tuple[Any, Any]:
    dtype = draw(dtypes)
    rows = draw(st.integers(1, 25))
    cols = draw(st.integers(1, 200))
    dense = draw(hnp.arrays(dtype, (rows, cols), elements=_elements(dtype)))
    mask = draw(hnp.arrays(np.bool_, (rows, cols)))
    dense[mask] = 0
    labels = None
    if draw(st.booleans()):
        ldtype = draw(dtypes)
        labels = draw(hnp.arrays(ldtype, (rows,), elements=_elements(ldtype)))
    return scipy.sparse.csr_matrix(dense), labels


@settings(max_examples=80, deadline=None)
@given(sparse_cases())
def test_sparse_round_trip(case: tuple[Any, Any]) -> None:
    matrix, labels = case
    data = encode_sparse(matrix, labels)
    assert data == _sdk_like(matrix.toarray(), labels, sparse=True)
    got, got_labels = read_sparse(data)
    assert got.shape == matrix.shape
    np.testing.assert_array_equal(got.toarray(), matrix.toarray().astype(got.dtype))
    if labels is not None:
        np.testing.assert_array_equal(got_labels, labels.astype(got_labels.dtype))
    gz = gzip.compress(data)
    again, _ = read_sparse(io.BytesIO(gz))
    assert (again != got).nnz == 0


def test_write_functions_and_gzip(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = tmp_path / "a.pbr"
    with path.open("wb") as f:
        write_dense(f, array, np.ones(4, np.float32))
    (tmp_path / "a.pbr.gz").write_bytes(gzip.compress(path.read_bytes()))
    with (tmp_path / "a.pbr.gz").open("rb") as f:
        features, _labels = read_dense(f)
    np.testing.assert_array_equal(features, array)
    buffer = io.BytesIO()
    write_sparse(buffer, scipy.sparse.csr_matrix(array))
    np.testing.assert_array_equal(read_sparse(buffer.getvalue())[0].toarray(), array)


def test_big_dense_file_written_in_pieces() -> None:
    array = np.random.default_rng(0).normal(size=(70000, 64)).astype(np.float32)
    buffer = io.BytesIO()
    write_dense(buffer, array, np.arange(70000, dtype=np.float32))
    assert buffer.getvalue() == encode_dense(array, np.arange(70000, dtype=np.float32))
    features, _labels = read_dense(buffer.getvalue())
    np.testing.assert_array_equal(features, array)
    batches = list(read_batches(io.BytesIO(buffer.getvalue()), chunk_size=1 << 20))
    assert len(batches) > 1
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), array)


def test_sdk_dtype_rules() -> None:
    from opensage.sdk.amazon import write_numpy_to_dense_tensor

    with pytest.raises(ValueError, match="Unsupported dtype int32"):
        write_numpy_to_dense_tensor(io.BytesIO(), np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="Array must be a Matrix"):
        write_numpy_to_dense_tensor(io.BytesIO(), np.zeros(3))
    with pytest.raises(ValueError, match="Labels must be a Vector"):
        write_numpy_to_dense_tensor(io.BytesIO(), np.zeros((2, 2)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="not compatible"):
        write_numpy_to_dense_tensor(io.BytesIO(), np.zeros((2, 2)), np.zeros(3))
    # Lenient outside the SDK shim: int32 goes to Int32Tensor.
    assert read_dense(encode_dense(np.ones((2, 2), np.int32)))[0].dtype == np.int32
    with pytest.raises(TypeError, match="Array must be sparse"):
        encode_sparse(np.zeros((2, 2)))


# ------------------------------------------------------------------------------------------
# Records the fast paths do not cover still decode, through the protobuf runtime.


def _payloads(records: list[Any]) -> list[bytes]:
    return [r.SerializeToString() for r in records]


def test_unusual_but_valid_records() -> None:
    records = []
    for i in range(10):
        r = Record(uid=f"id-{i}")
        r.features["values"].float32_tensor.values.extend([float(i), 1.0])
        r.features["other"].bytes.value.append(b"blob")
        r.label["values"].float64_tensor.values.extend([i * 0.5])
        records.append(r)
    features, labels = decode_payloads(_payloads(records))
    assert features[:, 0].tolist() == list(range(10))
    assert labels is not None
    assert labels.dtype == np.float64
    # Unpacked repeated floats (valid protobuf) and map entries with value before key.
    tensor = b"\x0d" + np.float32(3.5).tobytes() + b"\x0d" + np.float32(4.5).tobytes()
    value = b"\x12" + bytes([len(tensor)]) + tensor
    entry = b"\x12" + bytes([len(value)]) + value + b"\x0a\x06values"
    payload = b"\x0a" + bytes([len(entry)]) + entry
    assert Record.FromString(payload).features["values"].float32_tensor.values == [3.5, 4.5]
    features, labels = decode_payloads([payload])
    assert features.tolist() == [[3.5, 4.5]]
    assert labels is None


def test_template_group_with_differing_records() -> None:
    """Same length, different layout: those rows leave the template path and still decode."""
    rows = [encode_dense(np.array([[float(i), 2.0]], np.float32)) for i in range(20)]
    odd = Record()
    odd.features["values"].float32_tensor.values.extend([7.0])
    odd.features["values"].float32_tensor.shape.extend([1])
    odd_bytes = recordio.encode_record(odd.SerializeToString())
    data = b"".join(rows[:10]) + odd_bytes + b"".join(rows[10:])
    with pytest.raises(RecordError, match="features width differs") as info:
        read_dense(data, source="x.pbr")
    assert info.value.record == 10
    ints = [encode_dense(np.array([[v, 1]]), np.array([v])) for v in (1, 5, 127, 128, 3)] * 4
    features, labels = read_dense(b"".join(ints))
    assert features[:, 0].tolist() == [1, 5, 127, 128, 3] * 4
    assert labels is not None
    assert labels.tolist() == [1, 5, 127, 128, 3] * 4


def test_mixed_dense_and_sparse_give_csr() -> None:
    dense = encode_dense(np.array([[1.0, 0.0, 2.0]], np.float32))
    sparse = encode_sparse(scipy.sparse.csr_matrix(np.array([[0, 3.0, 0]], np.float32)))
    matrix, _ = read_sparse(dense + sparse)
    assert matrix.toarray().tolist() == [[1, 0, 2], [0, 3, 0]]


def test_garbage_protobuf_names_the_record() -> None:
    good = encode_dense(np.ones((3, 2), np.float32))
    bad = recordio.encode_record(b"\x0a\xff\xff\xff\x0f garbage")
    with pytest.raises(RecordError) as info:
        read_dense(good + bad, source="train/part-0.pbr")
    err = info.value
    assert (err.source, err.record, err.offset) == ("train/part-0.pbr", 3, len(good))
    assert "not a protobuf Record" in str(err)
    with pytest.raises(RecordError, match="record 0"):
        read_record_messages(bad)


def test_missing_features_and_labels() -> None:
    r = Record()
    r.label["values"].float32_tensor.values.append(1.0)
    with pytest.raises(RecordError, match="no tensor in features"):
        decode_payloads([r.SerializeToString()])
    labelled = encode_dense(np.ones((2, 2), np.float32), np.ones(2, np.float32))
    plain = encode_dense(np.ones((1, 2), np.float32))
    with pytest.raises(RecordError, match="no label") as info:
        read_dense(labelled + plain)
    assert info.value.record == 2


def test_other_feature_keys() -> None:
    r = Record()
    r.features["source"].int32_tensor.values.extend([4, 5, 6])
    r.features["target"].int32_tensor.values.extend([7, 8, 9])
    data = recordio.encode_record(r.SerializeToString())
    features, _ = read_dense(data, feature_key="target")
    assert features.tolist() == [[7, 8, 9]]


def test_varints() -> None:
    values = np.array([0, 1, 127, 128, 300, 2**32, 2**64 - 1], dtype=np.uint64)
    encoded = wire.encode_varints(values)
    assert encoded == b"".join(wire.varint(int(v)) for v in values)
    np.testing.assert_array_equal(wire.decode_varints(np.frombuffer(encoded, np.uint8)), values)
    with pytest.raises(wire.Malformed):
        wire.decode_varints(np.frombuffer(b"\x80", np.uint8))


@st.composite
def mixed_records(draw: st.DrawFn) -> bytes:
    """Records of every kind in one file: dense rows of equal width, sparse rows, int rows."""
    width = draw(st.integers(1, 5))
    labelled = draw(st.booleans())
    out = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["f32", "f64", "i64", "sparse"]))
        label = np.array([draw(st.integers(-300, 300))]) if labelled else None
        if kind == "sparse":
            row = draw(hnp.arrays(np.float32, (1, width), elements=_elements(np.float32)))
            row[draw(hnp.arrays(np.bool_, (1, width)))] = 0
            out.append(encode_sparse(scipy.sparse.csr_matrix(row), label))
        else:
            dtype = {"f32": np.float32, "f64": np.float64, "i64": np.int64}[kind]
            row = draw(hnp.arrays(dtype, (1, width), elements=_elements(dtype)))
            out.append(encode_dense(row, label))
    return b"".join(out)


@settings(max_examples=80, deadline=None)
@given(mixed_records())
def test_every_decode_path_agrees(data: bytes) -> None:
    """Template groups, the vectorised walk and the per-record path give the same result."""
    from opensage.formats import decode

    results = []
    for min_group, min_walk in ((decode._MIN_GROUP, decode._MIN_WALK), (10**9, 1), (10**9, 10**9)):
        old = decode._MIN_GROUP, decode._MIN_WALK
        decode._MIN_GROUP, decode._MIN_WALK = min_group, min_walk
        try:
            features, labels = read_tensors(data)
        finally:
            decode._MIN_GROUP, decode._MIN_WALK = old
        dense = features.toarray() if scipy.sparse.issparse(features) else features
        results.append((scipy.sparse.issparse(features), dense, dense.dtype, labels))
    for sparse, dense, dtype, labels in results[1:]:
        assert sparse == results[0][0]
        assert dtype == results[0][2]
        np.testing.assert_array_equal(dense, results[0][1])
        np.testing.assert_array_equal(labels, results[0][3])


def test_joining_chunks() -> None:
    """`read_tensors` decodes chunk by chunk; the joined result and its errors are the same."""
    rng = np.random.default_rng(1)
    matrix = scipy.sparse.random(60, 30, density=0.2, format="csr", dtype=np.float32, rng=rng)
    data = encode_sparse(matrix, np.arange(60, dtype=np.float32))
    got, labels = read_tensors(data, chunk_size=64)
    assert (got != matrix).nnz == 0
    assert labels is not None
    assert labels.tolist() == list(range(60))
    narrow = encode_sparse(scipy.sparse.csr_matrix(np.ones((1, 2), np.float32)))
    dense = encode_dense(np.ones((3, 30), np.float32))
    got, _ = read_tensors(dense + narrow + encode_sparse(matrix), chunk_size=64)
    assert got.shape == (64, 30)
    labelled = encode_dense(np.ones((20, 3), np.float32), np.ones(20, np.float32))
    plain = encode_dense(np.ones((20, 3), np.float32))
    for data, record in ((labelled + plain, 20), (plain + labelled, 20)):
        with pytest.raises(RecordError, match="label") as info:
            read_tensors(data, chunk_size=64, source="f")
        assert info.value.record is not None
        assert info.value.record <= record
    wide = encode_dense(np.ones((20, 4), np.float32))
    with pytest.raises(RecordError, match="width differs") as info:
        read_tensors(plain + wide, chunk_size=64)
    assert info.value.record == 20


@st.composite
def dense_segments(draw: st.DrawFn) -> bytes:
    """Dense records in runs that share or change width, dtype and labels; int32 values of
    very different magnitudes make later records shorter than the first (a short size guess)."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        rows = draw(st.integers(1, 40))
        cols = draw(st.sampled_from([3, 3, 3, 5]))
        dtype = draw(st.sampled_from([np.float32, np.float32, np.int32]))
        if dtype is np.int32:
            scale = draw(st.sampled_from([1, 2**30]))
            array = np.full((rows, cols), scale - 1, dtype=np.int32)
        else:
            array = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
        labels = np.arange(rows, dtype=np.float32) if draw(st.booleans()) else None
        out.append(encode_dense(array, labels))
    return b"".join(out)


def _outcome(call: Any) -> Any:
    try:
        features, labels = call()
    except RecordError as exc:
        return ("error", exc.message, exc.record)
    return ("ok", features.dtype, features.tolist(), None if labels is None else labels.tolist())


@settings(max_examples=80, deadline=None)
@given(dense_segments(), st.integers(24, 400))
def test_read_tensors_of_a_file_equals_the_chunk_join(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk: int
) -> None:
    """A regular file is read into arrays sized from its length; a stream of unknown length
    keeps the chunks and joins them. Both give the same rows, or the same error."""
    path = tmp_path_factory.mktemp("dense") / "data.pbr"
    path.write_bytes(data)
    with path.open("rb") as file:
        sized = _outcome(lambda: read_tensors(file, chunk_size=chunk))
    joined = _outcome(lambda: read_tensors(trickle(data, 7), chunk_size=chunk))
    assert sized == joined
    assert _outcome(lambda: read_tensors(data, chunk_size=chunk)) == joined
