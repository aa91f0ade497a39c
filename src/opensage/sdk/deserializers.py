"""Response deserializers, as the SageMaker Python SDK's `sagemaker.deserializers` define them.

Each takes the response body stream and its content type, and says which Accept it asks for.
"""

from __future__ import annotations

import csv
import io
import json
from typing import IO, Any

import numpy as np


class BaseDeserializer:
    ACCEPT: tuple[str, ...] = ("*/*",)

    def __init__(self, accept: str | tuple[str, ...] | None = None) -> None:
        self.accept = accept or self.ACCEPT

    def deserialize(self, stream: IO[bytes], content_type: str | None) -> Any:
        raise NotImplementedError


class BytesDeserializer(BaseDeserializer):
    def deserialize(self, stream: IO[bytes], content_type: str | None) -> bytes:
        return stream.read()


class StringDeserializer(BaseDeserializer):
    ACCEPT = ("application/json",)

    def __init__(self, encoding: str = "UTF-8", accept: str | None = None) -> None:
        super().__init__(accept)
        self.encoding = encoding

    def deserialize(self, stream: IO[bytes], content_type: str | None) -> str:
        return stream.read().decode(self.encoding)


class CSVDeserializer(BaseDeserializer):
    """Rows of strings, as `csv.reader` gives them."""

    ACCEPT = ("text/csv",)

    def __init__(self, encoding: str = "utf-8", accept: str | None = None) -> None:
        super().__init__(accept)
        self.encoding = encoding

    def deserialize(self, stream: IO[bytes], content_type: str | None) -> list[list[str]]:
        text = stream.read().decode(self.encoding)
        return list(csv.reader(io.StringIO(text)))


class JSONDeserializer(BaseDeserializer):
    ACCEPT = ("application/json",)

    def deserialize(self, stream: IO[bytes], content_type: str | None) -> Any:
        return json.loads(stream.read())


class NumpyDeserializer(BaseDeserializer):
    """An array from `.npy`, CSV or JSON, whichever the response's content type says."""

    ACCEPT = ("application/x-npy",)

    def __init__(
        self, dtype: str | None = None, accept: str | None = None, allow_pickle: bool = False
    ) -> None:
        super().__init__(accept)
        self.dtype = dtype
        self.allow_pickle = allow_pickle

    def deserialize(self, stream: IO[bytes], content_type: str | None) -> np.ndarray[Any, Any]:
        body = stream.read()
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media == "text/csv":
            return np.genfromtxt(io.StringIO(body.decode()), delimiter=",", dtype=self.dtype)
        if media == "application/json":
            return np.array(json.loads(body), dtype=self.dtype)
        if media == "application/x-npy":
            array: np.ndarray[Any, Any] = np.load(io.BytesIO(body), allow_pickle=self.allow_pickle)
            return array
        raise ValueError(f"NumpyDeserializer cannot read content type {content_type!r}")


class RecordDeserializer(BaseDeserializer):
    """RecordIO-protobuf responses as a list of `Record` messages (`record.label["score"]
    .float32_tensor.values`), as the SageMaker SDK's `RecordDeserializer` returns them."""

    ACCEPT = ("application/x-recordio-protobuf",)

    def deserialize(self, stream: IO[bytes], content_type: str | None) -> list[Any]:
        from opensage.formats.tensors import read_record_messages

        return read_record_messages(stream.read())
