"""Reading a channel's CSV, LIBSVM or RecordIO-protobuf files into an `xgb.DMatrix`.

CSV is parsed by pandas and LIBSVM by scikit-learn (xgboost 3.1 deprecated its own text
loaders); RecordIO-protobuf by `opensage.formats`, dense or sparse as the records are. Gzip
files are recognised by their magic bytes, whatever their name. Any parse failure becomes a
`UserError` that names the channel and the file, since it is the data that must change.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
import xgboost as xgb
from sklearn.datasets import load_svmlight_file

from opensage.algorithms.env import describe_record_error
from opensage.algorithms.xgboost.channels import CSV, RECORDIO, Channel
from opensage.algorithms.xgboost.errors import UserError
from opensage.formats.csv import read_csv
from opensage.formats.errors import RecordError
from opensage.formats.tensors import read_tensors

Floats = npt.NDArray[np.float64]
_GZIP_MAGIC = b"\x1f\x8b"
_READ_ERRORS = (ValueError, OSError, EOFError, zlib.error, pd.errors.ParserError)


@dataclass(frozen=True)
class Dataset:
    """One channel's rows: features (dense or CSR), labels, optional weights and query ids."""

    features: Floats | sp.csr_matrix
    labels: Floats
    weights: Floats | None = None
    qid: npt.NDArray[np.int64] | None = None

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])


def load(channel: Channel, csv_weights: bool) -> Dataset:
    """All the files of `channel`, stacked into one dataset."""
    if channel.format == CSV:
        data = _load_csv(channel, csv_weights)
    elif channel.format == RECORDIO:
        data = _load_recordio(channel)
    else:
        data = _load_libsvm(channel)
    if data.labels.shape[0] == 0:
        raise UserError(f"No rows in channel '{channel.name}': its files hold no data lines.")
    return data


def common_width(train: Dataset, validation: Dataset | None) -> int:
    """The feature count of both sets. LIBSVM rows are sparse and padded; CSV columns must agree."""
    sets = [train] if validation is None else [train, validation]
    width = max(dataset.n_features for dataset in sets)
    dense = [dataset for dataset in sets if not isinstance(dataset.features, sp.csr_matrix)]
    if validation is not None and any(dataset.n_features != width for dataset in dense):
        raise UserError(
            f"The 'validation' channel has {validation.n_features} feature columns but 'train' "
            f"has {train.n_features}; both must hold the same features in the same order."
        )
    return width


def to_dmatrix(data: Dataset, n_features: int) -> xgb.DMatrix:
    """A DMatrix `n_features` wide: LIBSVM files may stop short of the last feature."""
    features = data.features
    if isinstance(features, sp.csr_matrix) and features.shape[1] < n_features:
        features = _widen(features, n_features)
    return xgb.DMatrix(features, label=data.labels, weight=data.weights, qid=data.qid)


def _widen(matrix: sp.csr_matrix, width: int) -> sp.csr_matrix:
    return sp.csr_matrix(
        (matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], width)
    )


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw.startswith(_GZIP_MAGIC) else raw


def _fail(channel: Channel, path: Path, problem: str) -> UserError:
    where = path.relative_to(channel.path)
    return UserError(f"Could not read file '{where}' of channel '{channel.name}': {problem}")


def _load_csv(channel: Channel, csv_weights: bool) -> Dataset:
    tables = [_read_csv(channel, path) for path in channel.files]
    tables = [table for table in tables if table.shape[0] > 0]
    if not tables:
        return Dataset(features=np.empty((0, 1)), labels=np.empty(0))
    widths = {table.shape[1] for table in tables}
    if len(widths) > 1:
        raise UserError(
            f"The CSV files of channel '{channel.name}' have different numbers of columns "
            f"({', '.join(str(w) for w in sorted(widths))}); every row needs the same columns."
        )
    table = np.vstack(tables)
    first_feature = 2 if csv_weights else 1
    if table.shape[1] <= first_feature:
        raise UserError(
            f"The CSV rows of channel '{channel.name}' have {table.shape[1]} column(s): XGBoost "
            f"needs the label, {'the weight, ' if csv_weights else ''}then at least one feature."
        )
    _check_finite(channel, table[:, :first_feature], "label or weight")
    weights = table[:, 1] if csv_weights else None
    return Dataset(features=table[:, first_feature:], labels=table[:, 0], weights=weights)


def _read_csv(channel: Channel, path: Path) -> Floats:
    """One headerless numeric CSV file; the delimiter is sniffed from its first line."""
    hint = "CSV data must be numeric, with no header row and the label in the first column"
    try:
        text = _read_bytes(path).decode("utf-8")
    except _READ_ERRORS as exc:
        raise _fail(channel, path, f"{exc}. {hint}.") from None
    try:
        frame = pd.read_csv(io.StringIO(text), header=None, sep=_delimiter(text), dtype=np.float64)
    except pd.errors.EmptyDataError:
        return np.empty((0, 0))
    except _READ_ERRORS as exc:
        raise _fail(channel, path, f"{_locate_csv_problem(text) or exc}. {hint}.") from None
    table: Floats = frame.to_numpy(dtype=np.float64)
    return table


def _locate_csv_problem(text: str) -> str | None:
    """Which record is broken, and where: pandas reads fast but says only what went wrong, so
    on failure the strict reader of `formats` re-reads the file to name the record and byte."""
    if _delimiter(text) != ",":
        return None
    try:
        read_csv(text.encode("utf-8"), label_size=0, dtype=np.float64)
    except RecordError as exc:
        return describe_record_error(exc)
    return None


def _delimiter(text: str) -> str:
    first_line = text.lstrip().split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(first_line, delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def _check_finite(channel: Channel, columns: Floats, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(columns).all(axis=1))
    if bad.size:
        raise UserError(
            f"Row {bad[0] + 1} of channel '{channel.name}' has a missing or non-finite {what}; "
            "every row needs a numeric label (and weight, with csv_weights=1)."
        )


def _load_libsvm(channel: Channel) -> Dataset:
    parts = [_read_libsvm(channel, path) for path in channel.files]
    width = max(part.n_features for part in parts)
    features = sp.vstack([_widen(part.features, width) for part in parts], format="csr")
    labels = np.concatenate([part.labels for part in parts])
    weighted = any(part.weights is not None for part in parts)
    weights = np.concatenate([_weights_of(part) for part in parts]) if weighted else None
    ranked = any(part.qid is not None for part in parts)
    qid = np.concatenate([_qid_of(part) for part in parts]) if ranked else None
    return Dataset(features=features, labels=labels, weights=weights, qid=qid)


def _weights_of(part: Dataset) -> Floats:
    return part.weights if part.weights is not None else np.ones(part.labels.shape[0])


def _qid_of(part: Dataset) -> npt.NDArray[np.int64]:
    return part.qid if part.qid is not None else np.zeros(part.labels.shape[0], dtype=np.int64)


def _read_libsvm(channel: Channel, path: Path) -> Dataset:
    """One LIBSVM file: `label[:weight] [qid:q] index:value ...`, indices as written."""
    try:
        raw = _read_bytes(path)
        body, weights = _split_weights(raw)
        has_qid = b"qid:" in body
        loaded = load_svmlight_file(
            io.BytesIO(body), zero_based=True, dtype=np.float64, query_id=has_qid
        )
    except _READ_ERRORS as exc:
        hint = "LIBSVM lines look like '<label>[:<weight>] <index>:<value> ...'"
        raise _fail(channel, path, f"{exc}. {hint}.") from None
    qid = np.asarray(loaded[2], dtype=np.int64) if has_qid else None
    features = sp.csr_matrix(loaded[0])
    return Dataset(features=features, labels=np.asarray(loaded[1]), weights=weights, qid=qid)


def _split_weights(raw: bytes) -> tuple[bytes, Floats | None]:
    """Take `label:weight` apart, which scikit-learn's reader does not know; 1.0 if absent."""
    lines = [line.split(b"#", 1)[0].strip() for line in raw.splitlines()]
    lines = [line for line in lines if line]
    heads = [line.split(None, 1) for line in lines]
    if not any(b":" in head[0] for head in heads):
        return raw, None
    labels, weights = [], []
    for head in heads:
        label, colon, weight = head[0].partition(b":")
        labels.append(b" ".join([label, *head[1:]]))
        weights.append(float(weight) if colon else 1.0)
    return b"\n".join(labels) + b"\n", np.asarray(weights, dtype=np.float64)


def _load_recordio(channel: Channel) -> Dataset:
    """RecordIO-protobuf files: features (dense, or CSR where records are sparse) and one scalar
    label per record, as the SDK's `record_set` writes them."""
    parts = [_read_recordio(channel, path) for path in channel.files]
    width = max(part.n_features for part in parts)
    if any(isinstance(part.features, sp.csr_matrix) for part in parts):
        features: Floats | sp.csr_matrix = sp.vstack(
            [_widen(sp.csr_matrix(part.features), width) for part in parts], format="csr"
        )
    else:
        widths = sorted({part.n_features for part in parts})
        if len(widths) > 1:
            raise UserError(
                f"The RecordIO-protobuf files of channel '{channel.name}' hold dense features "
                f"of different widths ({', '.join(map(str, widths))}); every record needs the "
                "same number of features."
            )
        features = np.vstack([part.features for part in parts])
    labels = np.concatenate([part.labels for part in parts])
    return Dataset(features=features, labels=labels)


def _read_recordio(channel: Channel, path: Path) -> Dataset:
    where = path.relative_to(channel.path)
    try:
        with path.open("rb") as file:
            features, labels = read_tensors(file, source=f"{channel.name}/{where}")
    except RecordError as exc:
        raise UserError(
            f"Could not read file '{where}' of channel '{channel.name}': "
            f"{describe_record_error(exc)}. RecordIO-protobuf data must be records as the "
            "SageMaker SDK's write_numpy_to_dense_tensor / write_spmatrix_to_sparse_tensor "
            "write them."
        ) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise _fail(channel, path, str(exc)) from None
    n_rows = int(features.shape[0])
    if labels is None:
        raise UserError(
            f"The records of file '{where}' in channel '{channel.name}' have no label: XGBoost "
            "trains on labelled records (write them with labels=...)."
        )
    if labels.ndim > 1 and labels.shape[1] != 1:
        raise UserError(
            f"The records of file '{where}' in channel '{channel.name}' have labels of "
            f"{labels.shape[1]} values: XGBoost needs one label per record."
        )
    flat = np.asarray(labels, dtype=np.float64).reshape(n_rows)
    dense = features if isinstance(features, sp.csr_matrix) else np.asarray(features, np.float64)
    return Dataset(features=dense, labels=flat)
