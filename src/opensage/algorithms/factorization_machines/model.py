"""The factorization machine (Rendle 2010) and its gradients, on sparse rows, in O(nnz * k).

    y(x) = w0 + sum_i w_i x_i + 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]

which equals the pairwise sum_{i<j} <v_i, v_j> x_i x_j without forming any pair. A mini-batch
touches only the columns its rows use: `localise` renumbers them 0..m-1 so that every product
below is a CSR matrix times an (m, k) block of V, and nothing is ever densified to feature_dim.

Stored as `model_algo-1` (`artifacts.save_model`: an npz zip) under SageMaker's parameter names
`w0_weight` (bias), `w1_weight` (linear, feature_dim x 1) and `v` (feature_dim x num_factors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from opensage.algorithms.artifacts import load_model, save_model
from opensage.algorithms.factorization_machines.spec import BINARY, PREDICTOR_TYPES

Array = npt.NDArray[Any]
FORMAT_VERSION: Final = 1


@dataclass(frozen=True)
class Local:
    """A batch's rows over only the columns they use: `x` (rows, m) CSR, `x2` its elementwise
    square, and `columns` (m,) the original feature indices."""

    x: Any
    x2: Any
    columns: Array


def localise(features: Any) -> Local:
    """`features` (dense or CSR, rows x feature_dim) over its used columns only."""
    csr = sp.csr_matrix(features)
    if not csr.has_canonical_format:  # a repeated key would square wrongly in x2
        csr = csr.copy()
        csr.sum_duplicates()
    columns, local = np.unique(csr.indices, return_inverse=True)
    indices = local.astype(np.int32).reshape(-1)
    shape = (csr.shape[0], len(columns))
    x = sp.csr_matrix((csr.data, indices, csr.indptr), shape=shape)
    x2 = sp.csr_matrix((csr.data * csr.data, indices, csr.indptr), shape=shape)
    return Local(x, x2, columns)


def outputs(local: Local, w0: float, w: Array, v: Array) -> tuple[Array, Array]:
    """(y (rows,), S = X V (rows, k)) for `w` and `v` restricted to `local.columns`."""
    s = np.asarray(local.x @ v)
    squares = local.x2 @ np.einsum("ik,ik->i", v, v)
    pairwise = 0.5 * (np.einsum("rk,rk->r", s, s) - squares)
    y: Array = w0 + np.asarray(local.x @ w) + pairwise
    return y, s


def gradients(local: Local, g: Array, s: Array, v: Array) -> tuple[float, Array, Array]:
    """d(sum_r g_r y_r) / d(w0, w, v) over `local.columns`, given S = X V:

    dy_r/dv_if = x_ri S_rf - v_if x_ri^2, so the V gradient is X^T (g * S) - (X2^T g) * V.
    """
    xt = local.x.T  # CSC: the transposed products run on the same arrays, no copy
    grad_w = np.asarray(xt @ g)
    grad_v = np.asarray(xt @ (g[:, None] * s))
    grad_v -= np.asarray(local.x2.T @ g)[:, None] * v
    return float(g.sum()), grad_w, grad_v


def pairwise_reference(x: Array, v: Array) -> Array:
    """sum_{i<j} <v_i, v_j> x_i x_j row by row, the O(n^2 k) definition (for tests)."""
    gram = v @ v.T
    full = np.einsum("ri,ij,rj->r", x, gram, x)
    diagonal = np.einsum("ri,ii,ri->r", x, gram, x)
    out: Array = 0.5 * (full - diagonal)
    return out


def sigmoid(z: Array) -> Array:
    out: Array = 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow warning for large |z|
    return out


@dataclass
class FMModel:
    """A fitted factorization machine: `w` (feature_dim,), `v` (feature_dim, num_factors)."""

    predictor_type: str
    w0: float
    w: Array
    v: Array

    @property
    def feature_dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def num_factors(self) -> int:
        return int(self.v.shape[1])

    def raw(self, features: Any) -> Array:
        """y(x) for every row (float64), computed over the columns the rows use."""
        if features.shape[0] == 0:
            return np.zeros(0)
        local = localise(features)
        cols = local.columns
        y, _ = outputs(
            local, self.w0, self.w[cols].astype(np.float64), self.v[cols].astype(np.float64)
        )
        return np.asarray(y, dtype=np.float64)

    def predict(self, features: Any) -> tuple[Array, Array | None]:
        """(scores, predicted labels or None): a binary score is sigmoid(y), label score >= 0.5;
        a regressor's score is y."""
        y = self.raw(features)
        if self.predictor_type == BINARY:
            score = sigmoid(y)
            return score, (score >= 0.5).astype(np.int64)
        return y, None

    def columns(self, features: Any) -> dict[str, Array]:
        """The response's keys as whole columns, as Linear Learner answers (spec §7(d))."""
        scores, labels = self.predict(features)
        if labels is None:
            return {"score": scores}
        return {"score": scores, "predicted_label": labels}

    def save(self, model_dir: Path) -> Path:
        arrays = {
            "w0_weight": np.asarray([self.w0], dtype=np.float32),
            "w1_weight": np.asarray(self.w, dtype=np.float32).reshape(-1, 1),
            "v": np.asarray(self.v, dtype=np.float32),
        }
        meta = {
            "format": FORMAT_VERSION,
            "algorithm": "factorization_machines",
            "predictor_type": self.predictor_type,
            "feature_dim": self.feature_dim,
            "num_factors": self.num_factors,
        }
        return save_model(model_dir, arrays, meta)

    @classmethod
    def load(cls, model_dir: Path) -> FMModel:
        arrays, meta = load_model(model_dir)
        if meta.get("predictor_type") not in PREDICTOR_TYPES or not {
            "w0_weight",
            "w1_weight",
            "v",
        } <= set(arrays):
            raise ValueError(f"{model_dir} does not hold a Factorization Machines model")
        w = np.asarray(arrays["w1_weight"], dtype=np.float32).reshape(-1)
        v = np.asarray(arrays["v"], dtype=np.float32)
        if v.ndim != 2 or v.shape[0] != w.shape[0]:
            raise ValueError(f"{model_dir}: w1_weight {w.shape} and v {v.shape} differ")
        return cls(str(meta["predictor_type"]), float(arrays["w0_weight"].reshape(-1)[0]), w, v)
