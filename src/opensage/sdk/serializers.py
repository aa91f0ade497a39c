"""Request serializers, as the SageMaker Python SDK's `sagemaker.serializers` define them."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np


class BaseSerializer:
    CONTENT_TYPE = "application/octet-stream"

    def __init__(self, content_type: str | None = None) -> None:
        self.content_type = content_type or self.CONTENT_TYPE

    def serialize(self, data: Any) -> bytes | str:
        raise NotImplementedError


class IdentitySerializer(BaseSerializer):
    """Bytes (or text) sent as they are."""

    def serialize(self, data: Any) -> bytes | str:
        if isinstance(data, bytes | str):
            return data
        raise ValueError(f"IdentitySerializer sends bytes or str, not {type(data).__name__}")


class CSVSerializer(BaseSerializer):
    """One CSV line per row: a 1-D sequence is one row, a 2-D one many, a string goes as is."""

    CONTENT_TYPE = "text/csv"

    def serialize(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        if hasattr(data, "read"):
            return str(data.read())
        array = np.asarray(data)
        if array.ndim == 0:
            return str(array.item())
        rows = array.reshape(1, -1) if array.ndim == 1 else array
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in rows.tolist():
            writer.writerow(row)
        return out.getvalue().rstrip("\n")


class JSONSerializer(BaseSerializer):
    """`json.dumps`, with NumPy arrays as lists."""

    CONTENT_TYPE = "application/json"

    def serialize(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        return json.dumps(data, default=_jsonable)


class NumpySerializer(BaseSerializer):
    """The `.npy` format (`application/x-npy`)."""

    CONTENT_TYPE = "application/x-npy"

    def __init__(self, dtype: str | None = None, content_type: str | None = None) -> None:
        super().__init__(content_type)
        self.dtype = dtype

    def serialize(self, data: Any) -> bytes:
        array = np.asarray(data, dtype=self.dtype)
        if array.size == 0:
            raise ValueError("Cannot serialize an empty array.")
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class RecordSerializer(BaseSerializer):
    """RecordIO-protobuf records (`application/x-recordio-protobuf`), as the SageMaker SDK's
    `sagemaker.amazon.common.RecordSerializer` writes them: one record per row, sparse rows
    (a scipy matrix) with keys and shape; a 1-D array is one row."""

    CONTENT_TYPE = "application/x-recordio-protobuf"

    def serialize(self, data: Any) -> bytes:
        import scipy.sparse

        from opensage.formats.tensors import encode_dense, encode_sparse

        if scipy.sparse.issparse(data):
            return encode_sparse(data)
        array = np.asarray(data)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise ValueError("RecordSerializer sends a vector or a matrix")
        return encode_dense(array)
