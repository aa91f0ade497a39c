"""Regenerate the golden RecordIO-protobuf files with the real SageMaker SDK (v2).

Run it with a Python that has `sagemaker<3` and scipy installed, outside the project's venv:

    python3 -m venv /tmp/sm-sdk-venv && /tmp/sm-sdk-venv/bin/pip install "sagemaker<3" scipy
    SAGEMAKER_SUPPRESS_V2_WARNING=1 /tmp/sm-sdk-venv/bin/python tests/formats/golden/make_golden.py

It writes `<case>.pbr` (the SDK's bytes) and `cases.json` (the inputs, exactly, and the SDK
version) next to itself. The tests read both; they never import the SDK.

With `--check-ours` it also reads, with the SDK's `read_records`, files written by
`opensage.formats` (imported from ../../../src) and reports whether every record matches.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

HERE = Path(__file__).resolve().parent


def cases() -> dict[str, dict[str, Any]]:
    """Small deterministic inputs covering each tensor type, labels or not, dense and sparse."""
    rng = np.random.default_rng(20240601)
    f32 = rng.normal(size=(6, 4)).astype(np.float32)
    f32[0, 0] = -0.0
    f64 = rng.normal(size=(5, 3))
    ints = rng.integers(-(2**31), 2**31 - 1, size=(4, 3))
    ints[0] = [0, -1, 300]
    sparse = rng.normal(size=(6, 7)).astype(np.float32)
    sparse[rng.random(size=sparse.shape) < 0.6] = 0
    sparse[2] = 0  # an empty row
    sparse_ints = rng.integers(-5, 1000, size=(4, 9))
    sparse_ints[rng.random(size=sparse_ints.shape) < 0.5] = 0
    return {
        "dense_f32_labels": {
            "features": f32,
            "labels": rng.integers(0, 2, size=6).astype(np.float32),
        },
        "dense_f32_nolabels": {"features": f32[:3], "labels": None},
        "dense_f64_labels": {"features": f64, "labels": rng.normal(size=5)},
        "dense_int_labels": {"features": ints, "labels": np.array([0, 1, -7, 1000])},
        "dense_f32_int_labels": {"features": f32, "labels": np.arange(6) * 40},
        "sparse_f32_labels": {
            "features": scipy.sparse.csr_matrix(sparse),
            "labels": np.arange(6, dtype=np.float32),
        },
        "sparse_f64_nolabels": {
            "features": scipy.sparse.csr_matrix(sparse.astype(np.float64)),
            "labels": None,
        },
        "sparse_int_labels": {
            "features": scipy.sparse.csr_matrix(sparse_ints),
            "labels": np.array([3, 2, 1, 0]),
        },
    }


def _describe(value: Any) -> Any:
    if value is None:
        return None
    if scipy.sparse.issparse(value):
        return {
            "sparse": True,
            "dtype": str(value.dtype),
            "shape": list(value.shape),
            "dense": value.toarray().tolist(),
        }
    return {"sparse": False, "dtype": str(value.dtype), "values": value.tolist()}


def make() -> None:
    import sagemaker
    from sagemaker.amazon.common import (
        write_numpy_to_dense_tensor,
        write_spmatrix_to_sparse_tensor,
    )

    described = {}
    for name, case in cases().items():
        buffer = io.BytesIO()
        if scipy.sparse.issparse(case["features"]):
            write_spmatrix_to_sparse_tensor(buffer, case["features"], case["labels"])
        else:
            write_numpy_to_dense_tensor(buffer, case["features"], case["labels"])
        (HERE / f"{name}.pbr").write_bytes(buffer.getvalue())
        described[name] = {
            "features": _describe(case["features"]),
            "labels": _describe(case["labels"]),
        }
    import google.protobuf

    meta = {"sagemaker": sagemaker.__version__, "protobuf": google.protobuf.__version__}
    (HERE / "cases.json").write_text(json.dumps({"generator": meta, "cases": described}, indent=1))
    print("wrote", len(described), "cases with", meta)


def check_ours() -> bool:
    """The SDK's `read_records` on files written by opensage.formats: same values?"""
    sys.path.insert(0, str(HERE.parents[2] / "src"))
    from sagemaker.amazon.common import read_records

    from opensage.formats.tensors import encode_dense, encode_sparse

    ok = True
    for name, case in cases().items():
        features, labels = case["features"], case["labels"]
        sparse = scipy.sparse.issparse(features)
        data = encode_sparse(features, labels) if sparse else encode_dense(features, labels)
        records = read_records(io.BytesIO(data))
        dense = features.toarray() if sparse else features
        for i, record in enumerate(records):
            value = record.features["values"]
            tensor = getattr(value, value.WhichOneof("value"))
            row = np.zeros(dense.shape[1], dtype=dense.dtype)
            if sparse:
                row[np.array(tensor.keys, dtype=np.int64)] = np.array(tensor.values)
                ok &= list(tensor.shape) == [dense.shape[1]]
            else:
                row[:] = np.array(tensor.values)
            ok &= bool(np.array_equal(row, dense[i]))
            if labels is not None:
                lv = record.label["values"]
                ok &= list(getattr(lv, lv.WhichOneof("value")).values) == [labels[i]]
        ok &= len(records) == dense.shape[0]
        print(name, "read by the SDK:", "ok" if ok else "MISMATCH")
    return ok


if __name__ == "__main__":
    if "--check-ours" in sys.argv:
        sys.exit(0 if check_ours() else 1)
    make()
