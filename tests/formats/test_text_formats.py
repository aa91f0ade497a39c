"""CSV, LIBSVM, JSON Lines and manifests: round trips, gzip, chunking, and broken input."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from opensage.formats import manifest
from opensage.formats.csv import encode_csv, read_csv, read_csv_batches, read_numbers, write_csv
from opensage.formats.errors import RecordError
from opensage.formats.jsonlines import encode_jsonlines, read_jsonlines, write_jsonlines
from opensage.formats.libsvm import encode_libsvm, read_libsvm, write_libsvm
from opensage.formats.recordio import read_all_records
from tests.formats.conftest import trickle

floats32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=80, deadline=None)
@given(
    hnp.arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 6)), elements=floats32),
    st.integers(0, 2),
    st.integers(1, 200),
    st.booleans(),
)
def test_csv_round_trip(rows: np.ndarray, label_size: int, chunk: int, gz: bool) -> None:
    label_size = min(label_size, rows.shape[1])
    labels = rows[:, :label_size] if label_size else None
    data = encode_csv(rows[:, label_size:], labels)
    if gz:
        data = gzip.compress(data)
    features, got = read_csv(data, label_size=label_size)
    np.testing.assert_array_equal(features, rows[:, label_size:])
    if label_size == 0:
        assert got is None
    elif label_size == 1:
        assert got is not None
        assert got.shape == (len(rows),)
        np.testing.assert_array_equal(got, rows[:, 0])
    else:
        np.testing.assert_array_equal(got, rows[:, :label_size])
    batches = list(
        read_csv_batches(
            trickle(data, 5), label_size=label_size, chunk_size=chunk, dtype=np.float32
        )
    )
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), features)


cells = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**53), 2**53).map(str),
)
loose = st.sampled_from(["", "NA", "nan", "True", '"1"', "0x10", "one"])


@settings(max_examples=150, deadline=None)
@given(
    table=st.tuples(st.integers(1, 5), st.integers(1, 5)).flatmap(
        lambda shape: st.lists(
            st.lists(cells, min_size=shape[1], max_size=shape[1]),
            min_size=shape[0],
            max_size=shape[0],
        )
    ),
    spoil=st.one_of(st.none(), st.tuples(st.integers(0, 4), st.integers(0, 4), loose)),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_read_numbers_is_exact_or_declines(
    table: list[list[str]], spoil: tuple[int, int, str] | None, dtype: type
) -> None:
    """Numbers come back exactly as float() reads them; anything loose makes it decline (None)
    so the strict reader can name the problem, never a NaN or a boolean read as a number."""
    if spoil is not None:
        row, column, token = spoil
        if token == "" and len(table[0]) == 1:
            return  # an empty one-column row is a blank line, which CSV readers skip
        table[row % len(table)][column % len(table[0])] = token
    text = "".join(",".join(row) + "\n" for row in table).encode()
    got = read_numbers(io.BytesIO(text), dtype)
    if spoil is not None:
        assert got is None
        return
    with np.errstate(over="ignore"):  # beyond float32's range: infinity, as numpy casts
        expected = np.array([[float(cell) for cell in row] for row in table]).astype(dtype)
    assert got is not None
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == dtype


def test_csv_forms() -> None:
    text = b"1,2.5,-3\r\n\r\n0,1e3,nan\r\n4, 5 ,6"
    features, labels = read_csv(text)
    assert labels is not None
    assert labels.tolist() == [1, 0, 4]
    assert features[0].tolist() == [2.5, -3]
    assert features[2].tolist() == [5, 6]
    assert np.isnan(features[1, 1])
    features, labels = read_csv(b"1,2\n3,4\n", label_size=0, dtype=np.float64)
    assert labels is None
    assert features.dtype == np.float64
    assert features.shape == (2, 2)
    assert read_csv(b"", label_size=0)[0].shape == (0, 0)
    buffer = io.BytesIO()
    write_csv(buffer, np.array([[1.5, 2]]), np.array([7]))
    assert buffer.getvalue() == b"7,1.5,2.0\n"


@pytest.mark.parametrize(
    ("data", "record", "offset", "message"),
    [
        (b"1,2,3\n4,5,6\n7,8\n", 2, 12, "expected 3 columns, found 2 (line 3)"),
        (b"1,2,3\n4,x,6\n", 1, 6, "column 2 is not a number: 'x' (line 2)"),
        (b"1,2,3\n4,,6\n", 1, 6, "column 2 is not a number: ''"),
        (b"label,a,b\n1,2,3\n", 0, 0, "column 1 is not a number: 'label'"),
    ],
)
def test_csv_errors(data: bytes, record: int, offset: int, message: str) -> None:
    for source in (data, gzip.compress(data)):
        with pytest.raises(RecordError) as info:
            read_csv(source, source="train/data.csv")
        err = info.value
        assert (err.source, err.record, err.offset) == ("train/data.csv", record, offset)
        assert message in str(err)
        assert str(err).startswith(f"train/data.csv: record {record} at byte {offset}: ")


def test_csv_error_in_a_later_chunk_counts_from_the_start() -> None:
    good = b"1,2\n" * 1000
    with pytest.raises(RecordError) as info:
        list(read_csv_batches(io.BytesIO(good + b"1,oops\n"), chunk_size=64))
    assert (info.value.record, info.value.offset) == (1000, len(good))


def test_csv_label_size_larger_than_row() -> None:
    with pytest.raises(RecordError, match="fewer than label_size=3"):
        read_csv(b"1,2\n", label_size=3)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 30)), elements=floats32),
    st.booleans(),
    st.booleans(),
)
def test_libsvm_round_trip(dense: np.ndarray, weights: bool, qids: bool) -> None:
    dense = dense.copy()
    dense[::2, ::3] = 0
    matrix = scipy.sparse.csr_matrix(dense)
    labels = np.arange(len(dense), dtype=np.float32)
    w = np.full(len(dense), 0.5, np.float32) if weights else None
    q = np.arange(len(dense)) // 3 if qids else None
    data = encode_libsvm(matrix, labels, weights=w, qids=q)
    got = read_libsvm(gzip.compress(data), n_features=dense.shape[1])
    np.testing.assert_array_equal(got.features.toarray(), dense)
    np.testing.assert_array_equal(got.labels, labels)
    assert (got.weights is None) == (w is None)
    assert (got.qids is None) == (q is None)
    if q is not None:
        assert got.qids is not None
        assert got.qids.tolist() == q.tolist()


def test_libsvm_forms_and_errors() -> None:
    got = read_libsvm(b"1 1:2 3:4.5 # comment\n\n0:2 qid:3 0:1\n")
    assert got.features.toarray().tolist() == [[0, 2, 0, 4.5], [1, 0, 0, 0]]
    assert got.labels.tolist() == [1, 0]
    assert got.weights is not None
    assert got.weights.tolist() == [1, 2]
    assert got.qids is not None
    assert got.qids.tolist() == [0, 3]
    with pytest.raises(RecordError) as info:
        read_libsvm(b"1 1:2\n1 3\n", source="t.libsvm")
    assert (info.value.record, info.value.offset) == (1, 6)
    assert "bad index:value pair '3'" in str(info.value)
    with pytest.raises(RecordError, match="bad label"):
        read_libsvm(b"x 1:2\n")
    with pytest.raises(RecordError, match="bad qid"):
        read_libsvm(b"1 qid:x 1:2\n")
    buffer = io.BytesIO()
    write_libsvm(buffer, np.array([[0, 1.5]]), [1])
    assert buffer.getvalue() == b"1 1:1.5\n"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(json_values, max_size=10), st.booleans())
def test_jsonlines_round_trip(values: list[object], gz: bool) -> None:
    data = encode_jsonlines(values)
    assert list(read_jsonlines(gzip.compress(data) if gz else data)) == values
    buffer = io.BytesIO()
    write_jsonlines(buffer, values)
    assert buffer.getvalue() == data


def test_jsonlines_errors() -> None:
    data = b'{"a": 1}\n\n{"a": \n'
    with pytest.raises(RecordError) as info:
        list(read_jsonlines(data, source="x.jsonl"))
    assert (info.value.record, info.value.offset) == (2, 10)
    assert "(line 3)" in str(info.value)


def test_sdk_manifest() -> None:
    body = manifest.encode_manifest("s3://b/p/", ["matrix_0.pbr", "matrix_1.pbr"])
    assert body == b'[{"prefix": "s3://b/p/"}, "matrix_0.pbr", "matrix_1.pbr"]'
    assert manifest.parse_manifest(body) == ("s3://b/p/", ["matrix_0.pbr", "matrix_1.pbr"])
    assert manifest.manifest_uris('[{"prefix":"s3://b/p/"},"a","d/b"]') == [
        "s3://b/p/a",
        "s3://b/p/d/b",
    ]
    for bad in (b"{}", b"[]", b'["a"]', b'[{"prefix": "s3://b/"}, 3]', b"nope"):
        with pytest.raises(RecordError):
            manifest.parse_manifest(bad, source="m")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(min_size=1), max_size=5))
def test_sdk_manifest_round_trip(keys: list[str]) -> None:
    assert manifest.parse_manifest(manifest.encode_manifest("s3://b/x/", keys)) == (
        "s3://b/x/",
        keys,
    )


def test_augmented_manifest() -> None:
    lines = [
        {"source-ref": "s3://b/img1.jpg", "class": 1, "meta": {"k": [1, 2]}},
        {"source-ref": "s3://b/img2.jpg", "class": "0", "meta": None},
    ]
    data = encode_jsonlines(lines)
    rows = list(manifest.read_augmented_manifest(data, ["source-ref", "class"]))
    assert [[(a.name, a.value, a.is_ref) for a in row] for row in rows] == [
        [("source-ref", "s3://b/img1.jpg", True), ("class", 1, False)],
        [("source-ref", "s3://b/img2.jpg", True), ("class", "0", False)],
    ]
    blobs = {"s3://b/img1.jpg": b"JPEG1", "s3://b/img2.jpg": b"JPEG2"}
    raw = list(manifest.augmented_manifest_stream(data, ["source-ref", "class"], blobs.__getitem__))
    assert raw == [b"JPEG1", b"1", b"JPEG2", b"0"]
    framed = b"".join(
        manifest.augmented_manifest_stream(data, ["meta"], blobs.__getitem__, record_io=True)
    )
    assert read_all_records(framed) == [b'{"k":[1,2]}', b"null"]
    with pytest.raises(RecordError, match="attribute 'label' missing") as info:
        list(manifest.read_augmented_manifest(data, ["label"], source="m.jsonl"))
    assert (info.value.record, info.value.offset) == (0, 0)
    with pytest.raises(RecordError, match="must be an s3:// URI"):
        list(manifest.read_augmented_manifest(b'{"x-ref": 3}\n', ["x-ref"]))
    with pytest.raises(RecordError, match="JSON object"):
        list(manifest.read_augmented_manifest(b"[1]\n", ["x"]))
    assert json.loads(b'{"k":[1,2]}') == {"k": [1, 2]}


@settings(deadline=None, max_examples=50)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.integers(2, 6)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=64),
    )
)
def test_csv_from_a_file_path_reads_like_bytes(matrix: np.ndarray) -> None:
    """The plain-file fast path (pandas on the path) gives exactly the strict reader's values."""
    import tempfile

    data = encode_csv(matrix[:, 1:], matrix[:, 0])
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        handle.write(data)
        handle.flush()
        with open(handle.name, "rb") as f:
            from_file = read_csv(f, dtype=np.float64)
    from_bytes = read_csv(data, dtype=np.float64)
    assert from_file[0].tobytes() == from_bytes[0].tobytes()
    assert from_file[1] is not None
    assert from_bytes[1] is not None
    assert from_file[1].tobytes() == from_bytes[1].tobytes()


def test_csv_file_path_falls_back_to_name_the_broken_record(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"1,2,3\n" * 70000 + b"1,x,3\n")
    with open(path, "rb") as f, pytest.raises(RecordError) as exc:
        read_csv(f, source="train/data.csv")
    assert exc.value.record == 70000
    assert exc.value.offset == 6 * 70000
    path.write_bytes(b"1,2,3\n4,,6\n")  # a gap pandas would fill with NaN
    with open(path, "rb") as f, pytest.raises(RecordError):
        read_csv(f)
