"""RecordIO-protobuf tensors: numpy matrices in and out, fast and byte-exact.

Writing follows the SageMaker SDK's `write_numpy_to_dense_tensor` and
`write_spmatrix_to_sparse_tensor` exactly (one record per row, `features["values"]`, a scalar
`label["values"]`, sparse rows with `keys` and `shape=[n_cols]`). Dense float rows all share
one layout, so the whole file is built with numpy from a template record instead of one protobuf
message per row.

Reading frames a buffer (`recordio`), then decodes all its records at once (`decode`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import scipy.sparse

from opensage.formats import recordio
from opensage.formats.compression import decompress_bytes, decompressed
from opensage.formats.decode import Features, Labels, decode_frames
from opensage.formats.errors import RecordError
from opensage.formats.protobuf import parse_record
from opensage.formats.recordio import Frames
from opensage.formats.wire import (
    F32,
    F64,
    I32,
    KIND_DTYPE,
    encode_tensor,
    map_entry,
)

# ---------------------------------------------------------------------------------------------
# Writing


def encode_label_records(rows: Sequence[Mapping[str, float | Sequence[float]]]) -> bytes:
    """The built-ins' RecordIO-protobuf responses: one record per prediction, each key (`score`,
    `predicted_label`, `closest_cluster`, ...) a Float32 tensor in the record's `label` map,
    in the key order given, and no features."""
    out = []
    for row in rows:
        label = {
            key: encode_tensor(F32, np.atleast_1d(np.asarray(value, dtype=np.float32)))
            for key, value in row.items()
        }
        out.append(_frame(b"".join(map_entry(0x12, key, value) for key, value in label.items())))
    return b"".join(out)


def resolve_kind(dtype: npt.DTypeLike, *, strict: bool = False) -> int:
    """The tensor kind for a numpy dtype.

    `strict` is the SDK's `_resolve_type`: only `np.dtype(int)`, float64 and float32. Otherwise
    any integer dtype goes to Int32Tensor as well.
    """
    dt = np.dtype(dtype)
    if dt == np.dtype(int):
        return I32
    if dt == np.dtype(float):
        return F64
    if dt == np.dtype("float32"):
        return F32
    if not strict and dt.kind in "iub":
        return I32
    raise ValueError(f"Unsupported dtype {dt} on array")


def _check_labels(shape: tuple[int, ...], labels: npt.NDArray[Any] | None) -> None:
    """The SDK's checks, with its messages; plus: one label per row."""
    if len(shape) != 2:
        raise ValueError("Array must be a Matrix")
    if labels is None:
        return
    if len(labels.shape) != 1:
        raise ValueError("Labels must be a Vector")
    if labels.shape[0] not in shape:
        raise ValueError(f"Label shape {labels.shape} not compatible with array shape {shape}")
    if labels.shape[0] < shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {shape[0]} rows")


def _frame(record: bytes) -> bytes:
    return recordio.encode_record(record)


def encode_dense(
    array: npt.ArrayLike, labels: npt.ArrayLike | None = None, *, strict: bool = False
) -> bytes:
    """The RecordIO-protobuf bytes the SDK's `write_numpy_to_dense_tensor` writes."""
    arr = np.asarray(array)
    lab = None if labels is None else np.asarray(labels)
    _check_labels(arr.shape, lab)
    lkind = None if lab is None else resolve_kind(lab.dtype, strict=strict)
    kind = resolve_kind(arr.dtype, strict=strict)
    n, d = arr.shape
    if n == 0:
        return b""
    if kind != I32 and lkind != I32 and d > 0:
        return _dense_template(arr, kind, lab, lkind)
    out = []
    for i in range(n):
        features = map_entry(0x0A, "values", encode_tensor(kind, arr[i]))
        label = b""
        if lab is not None and lkind is not None:
            label = map_entry(0x12, "values", encode_tensor(lkind, lab[i : i + 1]))
        out.append(_frame(features + label))
    return b"".join(out)


def _dense_template(
    arr: npt.NDArray[Any], kind: int, lab: npt.NDArray[Any] | None, lkind: int | None
) -> bytes:
    """Every row has the same layout: write one template, then fill value columns with numpy."""
    n, d = arr.shape
    vdtype = KIND_DTYPE[kind]
    vwidth = d * vdtype.itemsize
    fentry = map_entry(0x0A, "values", encode_tensor(kind, np.zeros(d, vdtype)))
    fprefix = fentry[:-vwidth]  # the values are the entry's last bytes
    lprefix, lwidth = b"", 0
    if lab is not None and lkind is not None:
        ldtype = KIND_DTYPE[lkind]
        lwidth = ldtype.itemsize
        lprefix = map_entry(0x12, "values", encode_tensor(lkind, np.zeros(1, ldtype)))[:-lwidth]
    length = len(fprefix) + vwidth + len(lprefix) + lwidth
    header = recordio.encode_record(b"\x00" * length)[: recordio.HEADER_SIZE]
    stride = recordio.HEADER_SIZE + length + recordio.padding(length)
    out = np.zeros((n, stride), dtype=np.uint8)
    col = 0
    for piece in (header, fprefix):
        out[:, col : col + len(piece)] = np.frombuffer(piece, np.uint8)
        col += len(piece)
    out[:, col : col + vwidth] = np.ascontiguousarray(arr, dtype=vdtype).view(np.uint8)
    col += vwidth
    if lab is not None and lkind is not None:
        out[:, col : col + len(lprefix)] = np.frombuffer(lprefix, np.uint8)
        col += len(lprefix)
        values = np.ascontiguousarray(lab[:n], dtype=KIND_DTYPE[lkind])
        out[:, col : col + lwidth] = values.view(np.uint8).reshape(n, lwidth)
    return out.tobytes()


def encode_sparse(
    matrix: Any, labels: npt.ArrayLike | None = None, *, strict: bool = False
) -> bytes:
    """The RecordIO-protobuf bytes the SDK's `write_spmatrix_to_sparse_tensor` writes."""
    if not scipy.sparse.issparse(matrix):
        raise TypeError("Array must be sparse")
    lab = None if labels is None else np.asarray(labels)
    _check_labels(matrix.shape, lab)
    lkind = None if lab is None else resolve_kind(lab.dtype, strict=strict)
    kind = resolve_kind(matrix.dtype, strict=strict)
    csr = scipy.sparse.csr_matrix(matrix)
    n_rows, n_cols = csr.shape
    indptr = csr.indptr.tolist()
    data, indices = csr.data, csr.indices.astype(np.uint64)
    shape = [n_cols]
    out = []
    for i in range(n_rows):
        a, b = indptr[i], indptr[i + 1]
        features = map_entry(0x0A, "values", encode_tensor(kind, data[a:b], indices[a:b], shape))
        label = b""
        if lab is not None and lkind is not None:
            label = map_entry(0x12, "values", encode_tensor(lkind, lab[i : i + 1]))
        out.append(_frame(features + label))
    return b"".join(out)


def write_dense(file: BinaryIO, array: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> None:
    """Write a 2-D array (and one label per row) as RecordIO-protobuf, as the SDK does."""
    arr = np.asarray(array)
    lab = None if labels is None else np.asarray(labels)
    step = max(1, (1 << 24) // max(1, arr.itemsize * (arr.shape[1] if arr.ndim == 2 else 1)))
    if arr.ndim != 2 or arr.shape[0] <= step:
        file.write(encode_dense(arr, lab))
        return
    _check_labels(arr.shape, lab)
    for start in range(0, arr.shape[0], step):  # bounded memory for big arrays
        chunk_labels = None if lab is None else lab[start : start + step]
        file.write(encode_dense(arr[start : start + step], chunk_labels))


def write_sparse(file: BinaryIO, matrix: Any, labels: npt.ArrayLike | None = None) -> None:
    """Write a scipy sparse matrix (and one label per row) as RecordIO-protobuf, as the SDK does."""
    file.write(encode_sparse(matrix, labels))


def _frames_of(payloads: list[bytes]) -> Frames:
    lengths = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=len(payloads))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return Frames(b"".join(payloads), starts, lengths, starts.copy(), 0)


def decode_payloads(
    payloads: list[bytes], *, source: str | None = None, feature_key: str = "values",
    label_key: str = "values",
) -> tuple[Features, Labels]:  # fmt: skip
    """Decode unframed `Record` payloads (e.g. what `read_records` yielded)."""
    return decode_frames(
        _frames_of(payloads), source=source, feature_key=feature_key, label_key=label_key
    )


def read_batches(
    file: BinaryIO,
    *,
    source: str | None = None,
    feature_key: str = "values",
    label_key: str = "values",
    chunk_size: int = recordio.CHUNK_SIZE,
) -> Iterator[tuple[Features, Labels]]:
    """Stream a RecordIO-protobuf file (gzip or not) as batches of (features, labels), one per
    chunk of about `chunk_size` bytes, in constant memory."""
    stream = decompressed(file)
    for frames in recordio.iter_frames(stream, source=source, chunk_size=chunk_size):
        yield decode_frames(frames, source=source, feature_key=feature_key, label_key=label_key)


def read_tensors(
    data: bytes | BinaryIO,
    *,
    source: str | None = None,
    feature_key: str = "values",
    label_key: str = "values",
    chunk_size: int = recordio.CHUNK_SIZE,
) -> tuple[Features, Labels]:
    """All records of a buffer or file at once (features dense, or CSR if any is sparse).

    Decoded chunk by chunk like `read_batches` (a few MB at a time stay in the CPU cache, which
    is faster than one pass over a whole big file). Dense chunks are copied into one array sized
    from the stream's length as they come (`_DenseRows`), so a chunk's memory is reused for the
    next and only the result is new memory; anything else is kept and joined at the end.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        raw = decompress_bytes(bytes(data))
        stream: BinaryIO = io.BytesIO(raw)
        size: int | None = len(raw)
    else:
        stream = decompressed(data)
        size = _remaining(stream) if stream is data else None
    dense = _DenseRows(size)
    batches: list[tuple[int, Features, Labels]] = []
    for frames in recordio.iter_frames(stream, source=source, chunk_size=chunk_size):
        features, labels = decode_frames(
            frames, source=source, feature_key=feature_key, label_key=label_key
        )
        if batches or not dense.add(frames, features, labels):
            if not batches and dense.rows:
                batches.append(dense.batch())
            batches.append((frames.first_index, features, labels))
    if not batches and dense.rows:
        return dense.result()
    return _join(batches, source)


def _remaining(stream: BinaryIO) -> int | None:
    """Bytes left in a regular file (its size from its position), else None."""
    try:
        return max(os.fstat(stream.fileno()).st_size - stream.tell(), 0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


class _DenseRows:
    """Dense chunks of one width, dtype and label shape, copied into arrays sized for the whole
    stream from the first chunk's bytes per record (grown by half when the guess falls short)."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self.rows = 0
        self.features: npt.NDArray[Any] | None = None
        self.labels: npt.NDArray[Any] | None = None
        self.labelled = False

    def add(self, frames: Frames, features: Features, labels: Labels) -> bool:
        """Take the chunk, or say no (sparse, another width, dtype or label shape)."""
        if self.size is None or scipy.sparse.issparse(features) or not len(frames):
            return False
        n = int(features.shape[0])
        if self.features is None:
            spanned = int(frames.offsets[-1] - frames.offsets[0]) + int(frames.lengths[-1]) + 8
            capacity = max(n, int(self.size / max(spanned, 1) * n * 1.01) + 1)
            self.features = np.empty((capacity, *features.shape[1:]), features.dtype)
            self.labelled = labels is not None
            if labels is not None:
                self.labels = np.empty((capacity, *labels.shape[1:]), labels.dtype)
        elif not self._fits(features, labels):
            return False
        if self.rows + n > len(self.features):
            self._grow(self.rows + n)
        self.features[self.rows : self.rows + n] = features
        if self.labels is not None and labels is not None:
            self.labels[self.rows : self.rows + n] = labels
        self.rows += n
        return True

    def _fits(self, features: Features, labels: Labels) -> bool:
        assert self.features is not None
        if features.shape[1:] != self.features.shape[1:] or features.dtype != self.features.dtype:
            return False
        if (labels is not None) != self.labelled:
            return False
        return labels is None or (
            self.labels is not None
            and labels.shape[1:] == self.labels.shape[1:]
            and labels.dtype == self.labels.dtype
        )

    def _grow(self, needed: int) -> None:
        assert self.features is not None
        capacity = max(needed, len(self.features) * 3 // 2)
        self.features = _resized(self.features, capacity, self.rows)
        if self.labels is not None:
            self.labels = _resized(self.labels, capacity, self.rows)

    def result(self) -> tuple[Features, Labels]:
        assert self.features is not None
        labels = None if self.labels is None else self.labels[: self.rows]
        return self.features[: self.rows], labels

    def batch(self) -> tuple[int, Features, Labels]:
        features, labels = self.result()
        return 0, features, labels


def _resized(array: npt.NDArray[Any], capacity: int, used: int) -> npt.NDArray[Any]:
    out = np.empty((capacity, *array.shape[1:]), array.dtype)
    out[:used] = array[:used]
    return out


def _join(
    batches: list[tuple[int, Features, Labels]], source: str | None
) -> tuple[Features, Labels]:
    """One (features, labels) from consecutive batches, checked as one batch would be."""
    if not batches:
        return np.empty((0, 0), np.float32), None
    if len(batches) == 1:
        return batches[0][1], batches[0][2]
    with_labels = [b[2] is not None for b in batches]
    if any(with_labels) and not all(with_labels):
        first = batches[with_labels.index(not with_labels[0])][0]
        raise RecordError(
            "record has no label while others have one"
            if with_labels[0]
            else "record has a label while earlier ones have none",
            source=source,
            record=first,
        )
    labels = None
    if all(with_labels):
        parts = [b[2] for b in batches if b[2] is not None]
        if len({p.shape[1:] for p in parts}) > 1:
            bad = next(
                b[0] for b in batches if b[2] is not None and b[2].shape[1:] != parts[0].shape[1:]
            )
            raise RecordError(
                "labels width differs from earlier records", source=source, record=bad
            )
        labels = np.concatenate(parts)
    if any(scipy.sparse.issparse(b[1]) for b in batches):
        width = max(b[1].shape[1] for b in batches)
        matrices: list[Any] = [scipy.sparse.csr_matrix(b[1]) for b in batches]
        matrices = [
            m
            if m.shape[1] == width
            else scipy.sparse.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))
            for m in matrices
        ]
        return scipy.sparse.vstack(matrices, format="csr"), labels
    width = batches[0][1].shape[1]
    for first, features, _ in batches:
        if features.shape[1] != width:
            raise RecordError(
                f"features width differs from earlier records ({width})",
                source=source,
                record=first,
            )
    return np.concatenate([b[1] for b in batches]), labels


def read_dense(
    data: bytes | BinaryIO, *, source: str | None = None, feature_key: str = "values",
    label_key: str = "values",
) -> tuple[npt.NDArray[Any], Labels]:  # fmt: skip
    """All records as a dense 2-D array (sparse records densified) and labels."""
    features, labels = read_tensors(
        data, source=source, feature_key=feature_key, label_key=label_key
    )
    if scipy.sparse.issparse(features):
        return np.asarray(features.toarray()), labels
    return np.asarray(features), labels


def read_sparse(
    data: bytes | BinaryIO, *, source: str | None = None, feature_key: str = "values",
    label_key: str = "values",
) -> tuple[scipy.sparse.csr_matrix, Labels]:  # fmt: skip
    """All records as a CSR matrix and labels."""
    features, labels = read_tensors(
        data, source=source, feature_key=feature_key, label_key=label_key
    )
    return scipy.sparse.csr_matrix(features), labels


def read_record_messages(file: BinaryIO | bytes, *, source: str | None = None) -> list[Any]:
    """Every record as a protobuf `Record` message, like the SDK's `read_records`."""
    stream: BinaryIO = io.BytesIO(file) if isinstance(file, bytes | bytearray) else file
    out = []
    for frames in recordio.iter_frames(decompressed(stream), source=source):
        for i, payload in enumerate(frames.payloads()):
            out.append(
                parse_record(
                    payload,
                    source=source,
                    index=frames.first_index + i,
                    offset=int(frames.offsets[i]),
                )
            )
    return out
