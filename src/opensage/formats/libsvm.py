"""LIBSVM text (`text/libsvm`, `text/x-libsvm`; spec training-and-data 2.2), as XGBoost reads it.

    <label>[:<weight>] [qid:<q>] <index>:<value> <index>:<value> ...

Indices are kept as written (no 0/1-based shift): the matrix has `max(index) + 1` columns.
Text after `#` is a comment; blank lines are skipped.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import scipy.sparse

from opensage.formats.compression import decompressed
from opensage.formats.errors import RecordError


@dataclass
class LibSVMData:
    """What a LIBSVM file holds: features, labels, and weights / query ids when any line has one
    (lines without get weight 1 and qid 0)."""

    features: scipy.sparse.csr_matrix
    labels: npt.NDArray[np.float32]
    weights: npt.NDArray[np.float32] | None = None
    qids: npt.NDArray[np.int64] | None = None


def read_libsvm(
    data: bytes | BinaryIO, *, source: str | None = None, n_features: int | None = None
) -> LibSVMData:
    """Parse a whole LIBSVM file (gzip detected); `RecordError` names the broken line."""
    stream: BinaryIO = io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray) else data
    labels: list[float] = []
    weights: list[float] = []
    qids: list[int] = []
    has_weight = has_qid = False
    indptr = [0]
    cols: list[int] = []
    vals: list[float] = []
    offset = 0
    for number, raw in enumerate(decompressed(stream)):
        start = offset
        offset += len(raw)
        line = raw.split(b"#", 1)[0].split()
        if not line:
            continue

        def fail(message: str, number: int = number, start: int = start) -> RecordError:
            return RecordError(
                f"{message} (line {number + 1})", source=source, record=number, offset=start
            )

        head, *rest = line
        label, _, weight = head.partition(b":")
        try:
            labels.append(float(label))
            weights.append(float(weight) if weight else 1.0)
        except ValueError:
            raise fail(f"bad label {head.decode(errors='replace')!r}") from None
        has_weight |= bool(weight)
        qid = 0
        if rest and rest[0].startswith(b"qid:"):
            try:
                qid = int(rest[0][4:])
            except ValueError:
                raise fail(f"bad qid {rest[0].decode(errors='replace')!r}") from None
            has_qid = True
            rest = rest[1:]
        qids.append(qid)
        for token in rest:
            index, sep, value = token.partition(b":")
            try:
                if not sep:
                    raise ValueError
                column = int(index)
                if column < 0:
                    raise ValueError
                cols.append(column)
                vals.append(float(value))
            except ValueError:
                raise fail(f"bad index:value pair {token.decode(errors='replace')!r}") from None
        indptr.append(len(cols))
    width = max(cols) + 1 if cols else 0
    if n_features is not None:
        if width > n_features:
            raise RecordError(f"index {width - 1} beyond n_features={n_features}", source=source)
        width = n_features
    matrix = scipy.sparse.csr_matrix(
        (np.array(vals, np.float32), np.array(cols, np.int64), np.array(indptr, np.int64)),
        shape=(len(labels), width),
    )
    return LibSVMData(
        matrix,
        np.array(labels, np.float32),
        np.array(weights, np.float32) if has_weight else None,
        np.array(qids, np.int64) if has_qid else None,
    )


def _num(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else f"{value:.9g}"


def encode_libsvm(
    features: Any,
    labels: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    qids: npt.ArrayLike | None = None,
) -> bytes:
    """LIBSVM lines for a (sparse or dense) matrix; column indices written as they are."""
    csr = scipy.sparse.csr_matrix(features)
    lab = np.asarray(labels).tolist()
    if len(lab) != csr.shape[0]:
        raise ValueError(f"{len(lab)} labels for {csr.shape[0]} rows")
    wts = None if weights is None else np.asarray(weights).tolist()
    qs = None if qids is None else np.asarray(qids).tolist()
    indptr, indices, data = csr.indptr.tolist(), csr.indices.tolist(), csr.data.tolist()
    lines = []
    for i, label in enumerate(lab):
        head = _num(label) if wts is None else f"{_num(label)}:{_num(wts[i])}"
        parts = [head] if qs is None else [head, f"qid:{int(qs[i])}"]
        a, b = indptr[i], indptr[i + 1]
        parts += [f"{c}:{_num(v)}" for c, v in zip(indices[a:b], data[a:b], strict=True)]
        lines.append(" ".join(parts) + "\n")
    return "".join(lines).encode()


def write_libsvm(
    file: BinaryIO,
    features: Any,
    labels: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    qids: npt.ArrayLike | None = None,
) -> None:
    """Write LIBSVM lines."""
    file.write(encode_libsvm(features, labels, weights=weights, qids=qids))
