"""The exact solver for the squared loss: every model's ridge solution from one pass over the data.

When it applies (`applies`): a `regressor` with the squared loss (given or `auto`) and at most
`MAX_FEATURES` features (`MAX_L1_FEATURES` when a model has `l1 > 0`). Then each model's training
objective, the one the SGD loop (`core._Trainer`) minimises, in the normalised units it trains in
(x' and y' from `core.Scaler`), is

    F_k(w, b) = mean_i (x'_i w + b - y'_i)^2 + (wd_k / 2) |w|^2 + (bias_wd_mult wd_k / 2) b^2
                + l1_k |w|_1

(the loss is r^2 with gradient 2r, and the optimiser adds `wd * w` to the weight gradient, which
is the gradient of `wd / 2 |w|^2`; likewise `bias_wd_mult * wd * b` for the bias; without
`use_bias`, b = 0; the loop's proximal step `w <- sign(w) max(|w| - lr l1, 0)` is the l1 term's).
Without l1 it is quadratic, so its minimiser solves linear equations, which is what SGD
converges to. With a = 1 / (1 + bias_wd_mult wd_k / 2) (a = 0 without a bias), m and my the
means of x' and y', C and c the covariances (of x' with itself and with y'), setting the gradient
to zero gives

    (C + (1 - a) m m^T + (wd_k / 2) I) w = c + (1 - a) my m,        b = a (my - m^T w),

in n-scaled terms: (X'^T X'_centred + (n wd_k / 2) I) w = X'^T y'_centred for the usual case
(a bias and `bias_wd_mult = 0`). The models differ only by the (wd_k / 2) I term, so one
eigendecomposition A = V diag(lambda) V^T of the shared matrix solves them all:
w_k = V diag(1 / (lambda + wd_k / 2)) V^T rhs (one decomposition per distinct `a`: a single one
unless `bias_wd_mult > 0` with a bias). Components below `RCOND` of the largest eigenvalue that no
`wd` lifts are dropped (the minimum-norm solution), as the float32 data carry no information
there.

With `l1_k > 0` the same reduced objective, w^T A w - 2 rhs^T w + (wd_k / 2) |w|^2 + l1_k |w|_1, is
an elastic net on the statistics: coordinate descent (`_lasso`) from the ridge solution, all such
models updated together one coordinate at a time, until no weight moves by more than `TOLERANCE`
of the largest. A sweep costs d^2 K operations and a Python step per feature, hence the lower
`MAX_L1_FEATURES`.

The statistics come from one streaming pass (`statistics`) over chunks of rows: dense chunks are
normalised as the SGD loop sees them, shifted by the first chunk's mean (so centring loses no
precision), and multiplied in float32 by BLAS (default threads: the products are large), summed
in float64; sparse chunks are scaled (so they stay sparse) and multiplied by scipy in float64.

`MAX_FEATURES`: the d x d matrix (and its eigenvectors) cost 8 d^2 bytes each and the
decomposition O(d^3); at 5,000 features that is 200 MB and some seconds, still cheaper than
32 models x 15 epochs of SGD over any data set worth the name. Wider data (such as sparse
bag-of-words features) stay on SGD.

Training runs no epochs: the one pass is reported as a single epoch (`on_epoch(0, loss)`, the
best model's selection loss in the normalised units the SGD loop reports), and
`Fitted.epochs` is 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from opensage.algorithms.base import UserError
from opensage.algorithms.linear_learner.config import Settings

Array = npt.NDArray[Any]
MAX_FEATURES: Final = 5_000
"""Wider feature spaces train by SGD: the d x d statistics would not pay off."""
CHUNK_ELEMENTS: Final = 1 << 18
"""Rows per dense chunk of the statistics pass: this many values (at least 256, at most 4,096
rows; short float32 sums, and 4,096 measured as fast as larger chunks). Sparse chunks are 16
times as many rows."""
MAX_L1_FEATURES: Final = 1_000
"""Wider feature spaces with l1 train by SGD: coordinate descent steps through every feature."""
TOLERANCE: Final = 1e-7
MAX_SWEEPS: Final = 1_000
RCOND: Final = 1e-6
"""Eigen-directions below this share of the largest eigenvalue (plus the model's `wd / 2`) are
dropped: float32 features hold no information there."""


def applies(s: Settings, l1: Array, feature_dim: int) -> bool:
    """Whether every model (`l1`, one entry per model) can be solved exactly."""
    limit = MAX_L1_FEATURES if np.any(l1) else MAX_FEATURES
    return s.is_regressor and s.loss == "squared_loss" and 0 < feature_dim <= limit


@dataclass(frozen=True)
class Statistics:
    """Sufficient statistics of normalised data: row count, means, (co)variances."""

    n: int
    mean_x: Array
    mean_y: float
    cov_xx: Array
    cov_xy: Array


def statistics(x: Any, y: Array, mean: Array, scale: Array) -> Statistics:
    """One pass over (x, y) normalised by x -> (x - mean) / scale (y already normalised)."""
    n, d = x.shape
    if n == 0:
        raise ValueError("no rows")
    step = int(min(4096, max(256, CHUNK_ELEMENTS // max(d, 1))))
    y = np.asarray(y, dtype=np.float64)
    shift_y = float(y[: min(n, step)].mean())
    yc = y - shift_y
    sum_y = float(yc.sum())
    inverse = 1.0 / np.asarray(scale, dtype=np.float64)
    if sp.issparse(x):
        # Scaled only (centring would densify), multiplied by scipy in float64.
        csr = sp.csr_matrix(x)
        shift_x = np.zeros(d)
        sum_x, sum_xy = np.zeros(d), np.zeros(d)
        gram: Any = sp.csr_matrix((d, d), dtype=np.float64)
        scaling = sp.diags(inverse)
        step *= 16
        for start in range(0, n, step):
            chunk = sp.csr_matrix(
                sp.csr_matrix(csr[start : start + step], dtype=np.float64) @ scaling
            )
            gram = gram + chunk.T @ chunk
            sum_x += np.asarray(chunk.sum(axis=0)).ravel()
            sum_xy += np.asarray(chunk.T @ yc[start : start + step]).ravel()
        sxx = np.asarray(gram.toarray(), dtype=np.float64)
    else:
        # Rows shifted by the first chunk's raw mean, in float32, with a column of ones and the
        # labels beside them: one BLAS product per chunk gives the sums, X^T X, X^T y and y^T y.
        # Scaling is linear, so it is applied once to the float64 totals.
        dense = np.asarray(x)
        centre = dense[: min(n, step)].mean(axis=0, dtype=np.float64).astype(np.float32)
        shift_x = (centre.astype(np.float64) - mean) * inverse
        moments = np.zeros((d + 2, d + 2))
        buffer = np.empty((step, d + 2), dtype=np.float32)
        buffer[:, d] = 1.0
        for start in range(0, n, step):
            rows = min(step, n - start)
            block = buffer[:rows]
            np.subtract(dense[start : start + rows], centre, out=block[:, :d], casting="unsafe")
            block[:, d + 1] = yc[start : start + rows]
            moments += block.T @ block
        sxx = moments[:d, :d] * np.outer(inverse, inverse)
        sum_x = moments[:d, d] * inverse
        sum_xy = moments[:d, d + 1] * inverse
    mx, my = sum_x / n, sum_y / n
    cov_xx = sxx / n - np.outer(mx, mx)
    cov_xx = (cov_xx + cov_xx.T) / 2
    cov_xy = sum_xy / n - mx * my
    return Statistics(n, mx + shift_x, my + shift_y, cov_xx, cov_xy)


def solve(
    stats: Statistics, wd: Array, s: Settings, l1: Array | None = None
) -> tuple[Array, Array]:
    """Every model's minimiser of F_k, in normalised units: weights (d, K), bias (K,)."""
    wd = np.asarray(wd, dtype=np.float64)
    l1 = np.zeros_like(wd) if l1 is None else np.asarray(l1, dtype=np.float64)
    ridge = wd / 2
    share = 1.0 / (1.0 + s.bias_wd_mult * wd / 2) if s.use_bias else np.zeros_like(wd)
    m, my = stats.mean_x, stats.mean_y
    if not (np.isfinite(stats.cov_xx).all() and np.isfinite(stats.cov_xy).all()):
        raise UserError(
            "Channel 'train' has features that are not finite numbers (NaN or infinity), or so "
            "large that their squares overflow; fix or drop those records."
        )
    weights = np.zeros((len(m), len(wd)))
    bias = np.zeros(len(wd))
    for a in np.unique(share):
        models = np.flatnonzero(share == a)
        matrix = stats.cov_xx + (1.0 - a) * np.outer(m, m)
        rhs = stats.cov_xy + (1.0 - a) * my * m
        values, vectors = np.linalg.eigh(matrix)
        values = np.maximum(values, 0.0)
        floor = RCOND * max(float(values.max()), 0.0)
        shifted = values[:, None] + ridge[models][None, :]
        inverse = np.where(shifted > floor, 1.0 / np.where(shifted > 0, shifted, 1.0), 0.0)
        w = vectors @ (inverse * (vectors.T @ rhs)[:, None])
        sparse = l1[models] > 0
        if sparse.any():
            w[:, sparse] = _lasso(
                matrix, rhs, ridge[models][sparse], l1[models][sparse], w[:, sparse]
            )
        weights[:, models] = w
        bias[models] = a * (my - m @ w)
    return weights, bias


def _lasso(matrix: Array, rhs: Array, ridge: Array, l1: Array, start: Array) -> Array:
    """Minimise w^T A w - 2 rhs^T w + ridge |w|^2 + l1 |w|_1 for each column (model) of `start`:
    per coordinate j, w_j = S(rhs_j - sum_{i != j} A_ji w_i, l1 / 2) / (A_jj + ridge), S the soft
    threshold. `grad` keeps A w current, so each step costs one rank-one update."""
    w = np.array(start, dtype=np.float64)
    grad = matrix @ w
    diagonal = np.diag(matrix)[:, None] + ridge[None, :]
    threshold = l1 / 2
    for _ in range(MAX_SWEEPS):
        largest = 0.0
        moved = 0.0
        for j in range(matrix.shape[0]):
            old = w[j].copy()
            partial = rhs[j] - grad[j] + matrix[j, j] * old
            new = np.sign(partial) * np.maximum(np.abs(partial) - threshold, 0.0) / diagonal[j]
            change = new - old
            if np.any(change):
                grad += np.outer(matrix[:, j], change)
                w[j] = new
                moved = max(moved, float(np.abs(change).max()))
            largest = max(largest, float(np.abs(new).max()))
        if moved <= TOLERANCE * max(largest, 1e-12):
            break
    return w
