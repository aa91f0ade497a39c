"""Property tests: any float matrix written as CSV or LIBSVM parses back to itself exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from opensage.algorithms.xgboost.serve import parse_csv, parse_libsvm
from opensage.serving.errors import InferenceError

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
matrices = st.tuples(st.integers(1, 6), st.integers(1, 6)).flatmap(
    lambda shape: hnp.arrays(np.float64, shape, elements=finite)
)


def render(matrix: np.ndarray[Any, Any], delimiter: str, line_end: str) -> str:
    return "".join(delimiter.join(repr(float(v)) for v in row) + line_end for row in matrix)


@settings(max_examples=150, deadline=None)
@given(
    matrix=matrices,
    delimiter=st.sampled_from([",", "\t", ";", "|"]),
    line_end=st.sampled_from(["\n", "\r\n"]),
    trailing=st.booleans(),
)
def test_csv_round_trip(
    matrix: np.ndarray[Any, Any], delimiter: str, line_end: str, trailing: bool
) -> None:
    text = render(matrix, delimiter, line_end)
    parsed = parse_csv(text if trailing else text.rstrip())
    np.testing.assert_array_equal(parsed, matrix)


@settings(max_examples=100, deadline=None)
@given(matrix=matrices, holes=st.data())
def test_csv_empty_fields_are_missing(matrix: np.ndarray[Any, Any], holes: st.DataObject) -> None:
    mask = holes.draw(hnp.arrays(np.bool_, matrix.shape))
    text = "".join(
        ",".join("" if hole else repr(float(v)) for v, hole in zip(row, holes_row, strict=True))
        + "\n"
        for row, holes_row in zip(matrix, mask, strict=True)
    )
    if matrix.shape[1] == 1 and mask.any():
        return  # an empty single-column row is a blank line, which is skipped
    expected = np.where(mask, np.nan, matrix)
    np.testing.assert_array_equal(parse_csv(text), expected)


@settings(max_examples=150, deadline=None)
@given(matrix=matrices, labelled=st.booleans(), data=st.data())
def test_libsvm_round_trip(
    matrix: np.ndarray[Any, Any], labelled: bool, data: st.DataObject
) -> None:
    present = data.draw(hnp.arrays(np.bool_, matrix.shape))
    lines = []
    for i, row in enumerate(matrix):
        pairs = [f"{j}:{float(v)!r}" for j, v in enumerate(row) if present[i, j]]
        lines.append(" ".join(([f"{i % 2}"] if labelled else []) + pairs))
    kept = [i for i, line in enumerate(lines) if line]  # a line with no label and no pair is blank
    parsed = parse_libsvm("\n".join(lines) + "\n")
    columns = np.nonzero(present[kept].any(axis=0))[0]
    width = int(columns.max()) + 1 if columns.size else 0
    assert parsed.shape == (len(kept), width)
    expected = np.where(present, matrix, 0.0)[kept][:, :width]
    np.testing.assert_array_equal(parsed.toarray(), expected)
    np.testing.assert_array_equal(parsed.getnnz(axis=1), present[kept].sum(axis=1))


@pytest.mark.parametrize("text", ["", "  \n\n ", "\r\n"])
def test_blank_bodies_have_no_rows(text: str) -> None:
    assert parse_csv(text).shape[0] == 0
    assert parse_libsvm(text).shape[0] == 0


def test_libsvm_ignores_qid_and_comments() -> None:
    parsed = parse_libsvm("1 qid:3 0:1.5 2:2.5 # a comment\n0 qid:3 1:4\n")
    np.testing.assert_array_equal(parsed.toarray(), [[1.5, 0.0, 2.5], [0.0, 4.0, 0.0]])


def test_csv_rejects_ragged_rows() -> None:
    with pytest.raises(InferenceError, match="row 2 has 1 columns but row 1 has 2"):
        parse_csv("1,2\n3\n")
