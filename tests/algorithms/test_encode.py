"""Property tests: answers written from whole columns are the bytes a per-row `json.dumps` gives."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from opensage.algorithms.base import CSV, JSON, JSONLINES
from opensage.algorithms.inference import Columns, encode

dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_])


@st.composite
def columns(draw: st.DrawFn) -> Columns:
    rows = draw(st.integers(1, 8))
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3, unique=True))
    fields: dict[str, np.ndarray[Any, Any]] = {}
    for name in names:
        shape = (rows,) if draw(st.booleans()) else (rows, draw(st.integers(1, 3)))
        fields[name] = draw(hnp.arrays(draw(dtypes), shape))  # NaN and infinities included
    return Columns(fields)


def per_row(rows: list[dict[str, Any]], accept: str) -> bytes:
    if accept == JSON:
        return json.dumps({"predictions": rows}).encode()
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@settings(max_examples=200, deadline=None)
@given(results=columns(), accept=st.sampled_from([JSON, JSONLINES]))
def test_columns_encode_as_rows_do(results: Columns, accept: str) -> None:
    rows = results.rows()
    assert encode(results, accept) == per_row(rows, accept)
    assert encode(results, accept) == encode(rows, accept)


def test_columns_rows_are_plain_python_values() -> None:
    results = Columns({"score": np.array([0.25, 0.5]), "predicted_label": np.array([0, 1])})
    assert results.rows() == [
        {"score": 0.25, "predicted_label": 0},
        {"score": 0.5, "predicted_label": 1},
    ]
    assert encode(results, CSV) == b"0.25,0.0\n0.5,1.0\n"
    assert encode(results, JSONLINES) == (
        b'{"score": 0.25, "predicted_label": 0}\n{"score": 0.5, "predicted_label": 1}\n'
    )
