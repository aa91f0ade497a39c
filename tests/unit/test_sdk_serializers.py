"""The SDK's serializers and deserializers round-trip what the SageMaker SDK's do."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from opensage.sdk.deserializers import (
    BytesDeserializer,
    CSVDeserializer,
    JSONDeserializer,
    NumpyDeserializer,
    StringDeserializer,
)
from opensage.sdk.serializers import (
    CSVSerializer,
    IdentitySerializer,
    JSONSerializer,
    NumpySerializer,
)

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
matrices = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=finite)


def stream(data: bytes | str) -> io.BytesIO:
    return io.BytesIO(data.encode() if isinstance(data, str) else data)


@given(matrices)
def test_csv_round_trip(matrix: np.ndarray) -> None:
    text = CSVSerializer().serialize(matrix)
    rows = CSVDeserializer().deserialize(stream(text), "text/csv")
    assert np.array(rows, dtype=float).tolist() == matrix.tolist()
    again = NumpyDeserializer().deserialize(stream(text), "text/csv")
    assert np.asarray(again, dtype=float).reshape(matrix.shape).tolist() == matrix.tolist()


@given(matrices)
def test_npy_round_trip(matrix: np.ndarray) -> None:
    body = NumpySerializer().serialize(matrix)
    assert NumpyDeserializer().deserialize(stream(body), "application/x-npy").tolist() == (
        matrix.tolist()
    )


@given(matrices)
def test_json_round_trip(matrix: np.ndarray) -> None:
    text = JSONSerializer().serialize({"instances": matrix})
    assert JSONDeserializer().deserialize(stream(text), "application/json") == {
        "instances": matrix.tolist()
    }
    array = NumpyDeserializer().deserialize(stream(JSONSerializer().serialize(matrix)),
                                            "application/json")  # fmt: skip
    assert array.tolist() == matrix.tolist()


def test_shapes_and_types() -> None:
    assert CSVSerializer().serialize([1, 2.5, 3]) == "1.0,2.5,3.0"
    assert CSVSerializer().serialize("1,2\n3,4") == "1,2\n3,4"
    assert CSVSerializer().content_type == "text/csv"
    assert JSONSerializer().content_type == "application/json"
    assert NumpySerializer().content_type == "application/x-npy"
    assert IdentitySerializer("text/plain").serialize(b"raw") == b"raw"
    assert BytesDeserializer().deserialize(stream(b"x"), None) == b"x"
    assert StringDeserializer().deserialize(stream("é"), None) == "é"
    with pytest.raises(ValueError, match="empty"):
        NumpySerializer().serialize([])
    with pytest.raises(ValueError, match="content type"):
        NumpyDeserializer().deserialize(stream(b"x"), "image/png")
    with pytest.raises(ValueError, match="bytes or str"):
        IdentitySerializer().serialize(3)
