"""The PCA core: streamed fits (regular and randomized) and the fitted model, free of the job
machinery so tests and benchmarks drive it with plain arrays.

Both fits see the data only as an iterable of row blocks (dense float32 arrays or CSR matrices),
so a data set never has to fit in memory; the randomized fit takes a callable that yields the
blocks again for each of its passes (an epoch of the channel).

Numerics. Sums run in float64; the per-block products run in float32 BLAS on rows shifted by
the first dense block's mean, so the covariance `sum (x-c)(x-c)^T - n (mean-c)(mean-c)^T` does not
cancel away when the data sit far from the origin (a shift leaves the covariance unchanged).

Components come out by decreasing singular value, as scikit-learn orders them, each with its
largest-magnitude entry positive (scikit-learn's `svd_flip` on `components_`), so a model is
deterministic and comparable across solvers. `s` holds the singular values of the centred
data matrix: `s**2 / (n - 1)` is scikit-learn's `explained_variance_`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from opensage.algorithms.artifacts import load_model, save_model

Features = Any
"""A block of rows: a float32 2-D numpy array or a float32 `scipy.sparse.csr_matrix`."""
Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]

SEED: Final = 0x5CA1AB1E
"""The random sign sketch's seed: fixed, so the same data give a bit-identical model (SageMaker's
1P algorithms have no seed hyperparameter)."""
REFINEMENTS: Final = 3
"""Passes after the sketch in randomized mode, each a power iteration; 3 keeps every kept
component's variance within 1% of the exact one on slowly decaying spectra (digits), with about
the matrix products of scikit-learn's randomized solver (tests/algorithms/test_pca.py)."""
MIN_EXTRA_COMPONENTS: Final = 10


@dataclass(frozen=True)
class PCAModel:
    """`v` (d x k) holds the components as columns, `s` their singular values (decreasing),
    `mean` the training mean (None without `subtract_mean`), `rows` how many rows were fitted."""

    v: Floats32
    s: Floats32
    mean: Floats32 | None
    rows: int
    mode: str = "regular"

    @property
    def num_components(self) -> int:
        return int(self.v.shape[1])

    @property
    def feature_dim(self) -> int:
        return int(self.v.shape[0])

    @property
    def explained_variance(self) -> Floats:
        """Per component, as scikit-learn's `explained_variance_` (sample variance)."""
        return np.square(self.s.astype(np.float64)) / max(self.rows - 1, 1)

    def project(self, features: Features) -> Floats32:
        """`(x - mean) . v` for every row, computed as `x.v - mean.v` in float64 so dense and
        sparse rows give the same numbers."""
        v = self.v.astype(np.float64)
        if sp.issparse(features):
            out = np.asarray(sp.csr_matrix(features, dtype=np.float64) @ v)
        else:
            out = np.asarray(features, dtype=np.float64) @ v
        if self.mean is not None:
            out -= self.mean.astype(np.float64) @ v
        return out.astype(np.float32)

    def save(self, model_dir: Path) -> Path:
        """`model_algo-1` with the arrays `v`, `s` and (with `subtract_mean`) `mean`."""
        arrays = {"v": self.v, "s": self.s}
        if self.mean is not None:
            arrays["mean"] = self.mean
        meta = {"rows": self.rows, "algorithm_mode": self.mode, "format": "opensage-pca/1"}
        return save_model(model_dir, arrays, meta)

    @classmethod
    def load(cls, model_dir: Path) -> PCAModel:
        arrays, meta = load_model(model_dir)
        if "v" not in arrays or "s" not in arrays:
            raise ValueError("model_algo-1 is not a PCA model: it has no 'v' and 's' arrays")
        v = np.asarray(arrays["v"], dtype=np.float32)
        s = np.asarray(arrays["s"], dtype=np.float32).reshape(-1)
        mean = arrays.get("mean")
        if v.ndim != 2 or s.shape[0] != v.shape[1]:
            raise ValueError(f"PCA model arrays disagree: v {v.shape}, s {s.shape}")
        return cls(
            v,
            s,
            None if mean is None else np.asarray(mean, dtype=np.float32).reshape(-1),
            int(meta.get("rows", 0)),
            str(meta.get("algorithm_mode", "regular")),
        )


# --- shared pieces ------------------------------------------------------------------------------


class _Centre:
    """The shift `c` applied to every block (the first dense block's mean, or zero), and the
    running `n` and `sum (x - c)` of one pass."""

    def __init__(self, subtract_mean: bool) -> None:
        self.subtract_mean = subtract_mean
        self.shift: Floats32 | None = None
        self.decided = False
        self.rows = 0
        self.total: Floats | None = None
        self.buffer: Floats32 | None = None

    def apply(self, block: Features) -> Features:
        """The block as float32 rows minus `c` (sparse blocks stay sparse while `c` is zero).

        The shifted rows live in one buffer reused from block to block (fresh arrays cost more
        in page faults than the subtraction): use them before the next call."""
        if not self.decided:
            if self.subtract_mean and not sp.issparse(block) and block.shape[0]:
                mean = np.asarray(block, dtype=np.float32).mean(axis=0, dtype=np.float64)
                self.shift = mean.astype(np.float32)
            self.decided = True
        if sp.issparse(block):
            if self.shift is None:
                return sp.csr_matrix(block, dtype=np.float32)
            block = block.toarray()
        x = np.asarray(block, dtype=np.float32)
        if self.shift is None:
            return np.ascontiguousarray(x)
        if self.buffer is None or self.buffer.shape[0] < x.shape[0]:
            self.buffer = np.empty(x.shape, dtype=np.float32)
        return np.subtract(x, self.shift, out=self.buffer[: x.shape[0]])

    def count(self, x: Features) -> None:
        """Add the block's rows and column sums (a GEMV: the shifted rows' sums are small, so
        float32 within a block loses nothing that matters)."""
        if sp.issparse(x):
            sums = np.asarray(x.sum(axis=0, dtype=np.float64)).reshape(-1)
        else:
            sums = (np.ones(x.shape[0], dtype=np.float32) @ x).astype(np.float64)
        self.total = sums if self.total is None else self.total + sums
        self.rows += int(x.shape[0])

    def mean(self) -> Floats32 | None:
        """The data mean (`c + sum(x - c) / n`), or None without `subtract_mean`."""
        if not self.subtract_mean or self.total is None or not self.rows:
            return None
        shift = 0.0 if self.shift is None else self.shift.astype(np.float64)
        return np.asarray(shift + self.total / self.rows, dtype=np.float32)

    def correction(self, right: Floats) -> Floats:
        """`(1/n) t (t^T right)` with `t = sum (x - c)`: what centring removes from
        `sum (x-c)(x-c)^T right`; zero without `subtract_mean`."""
        if not self.subtract_mean or self.total is None or not self.rows:
            return np.zeros((len(right), right.shape[1]) if right.ndim == 2 else len(right))
        return np.outer(self.total, self.total @ right) / self.rows


def _finish(
    values: Floats, vectors: Floats, centre: _Centre, mode: str, num_components: int
) -> PCAModel:
    """Top `num_components` eigenpairs (of the centred scatter) as a model: decreasing order,
    deterministic signs, singular values `sqrt(max(eigenvalue, 0))`."""
    order = np.argsort(values)[::-1][:num_components]
    v = vectors[:, order]
    pivots = np.argmax(np.abs(v), axis=0)
    v = v * np.where(v[pivots, np.arange(v.shape[1])] < 0, -1.0, 1.0)
    s = np.sqrt(np.clip(values[order], 0.0, None))
    return PCAModel(v.astype(np.float32), s.astype(np.float32), centre.mean(), centre.rows, mode)


def _check_rows(centre: _Centre, num_components: int) -> None:
    if not centre.rows:
        raise ValueError("no rows to fit")
    width = 0 if centre.total is None else len(centre.total)
    if num_components > width:
        raise ValueError(f"num_components ({num_components}) exceeds the {width} features")


# --- regular mode -------------------------------------------------------------------------------


def fit_regular(
    blocks: Iterable[Features], num_components: int, subtract_mean: bool = True
) -> PCAModel:
    """One pass: accumulate `sum x^T x` and `sum x`, then the top eigenpairs of
    `sum x^T x - (1/n)(sum x)(sum x)^T` (uncentred `sum x^T x` without `subtract_mean`)."""
    from scipy.linalg import eigh

    centre = _Centre(subtract_mean)
    scatter: Floats | None = None
    for block in blocks:
        x = centre.apply(block)
        centre.count(x)
        # A full GEMM: OpenBLAS's SYRK (half the flops) measured slower here.
        product = x.T @ x
        part = np.asarray(product.toarray() if sp.issparse(product) else product, np.float64)
        scatter = part if scatter is None else scatter + part
    _check_rows(centre, num_components)
    assert scatter is not None
    scatter -= centre.correction(np.eye(len(scatter)))
    d = len(scatter)
    values, vectors = eigh(scatter, subset_by_index=[d - num_components, d - 1])
    return _finish(values, vectors, centre, "regular", num_components)


# --- randomized mode ----------------------------------------------------------------------------


def sketch_size(num_components: int, extra_components: int, feature_dim: int) -> int:
    """`l = num_components + extra_components` rows (extra -1: max(10, num_components)), at most
    the number of features."""
    extra = max(MIN_EXTRA_COMPONENTS, num_components) if extra_components < 0 else extra_components
    return min(num_components + extra, feature_dim)


def _signs(rng: np.random.Generator, rows: int, cols: int) -> Floats32:
    """A rows x cols matrix of random +-1, one random bit each."""
    count = rows * cols
    bits = np.unpackbits(np.frombuffer(rng.bytes((count + 7) // 8), dtype=np.uint8))[:count]
    return (bits.astype(np.float32) * 2.0 - 1.0).reshape(rows, cols)


def fit_randomized(
    passes: Callable[[int], Iterable[Features]],
    num_components: int,
    extra_components: int = -1,
    subtract_mean: bool = True,
    refinements: int = REFINEMENTS,
    seed: int = SEED,
) -> PCAModel:
    """SageMaker's sketch, then a streamed randomized range finder.

    Pass 0 draws for every block X_t a random +-1 matrix H_t (l x b) and accumulates
    B = sum H_t X_t, h = sum H_t 1 and s = sum x; C = B - (1/n) h s^T is a sketch of the centred
    data whose row space holds the top components. The SVD of C alone gives the singular values
    of the sketch, not of the data, and a poor subspace when the spectrum decays slowly; so each
    further pass multiplies an orthonormal basis Q of that row space by the centred scatter A,
    Y = A Q = sum X_t^T (X_t Q) - (1/n) s (s^T Q) (a power iteration: Q <- qr(Y)), and the last
    product gives the Nystrom approximation Y (Q^T Y)^-1 Y^T of A, whose eigenpairs are the
    components. `passes(i)` yields the blocks of pass i; every pass must yield the same rows.
    """
    if refinements < 1:
        raise ValueError("refinements must be at least 1")
    centre = _Centre(subtract_mean)
    basis = _sketch(passes(0), centre, num_components, extra_components, seed)
    product = _scatter_times(passes(1), centre, basis)
    for iteration in range(2, refinements + 1):
        basis = np.linalg.qr(product)[0]
        product = _scatter_times(passes(iteration), centre, basis)
    values, vectors = _nystrom(basis, product)
    return _finish(values, vectors, centre, "randomized", num_components)


def _nystrom(basis: Floats, product: Floats) -> tuple[Floats, Floats]:
    """Eigenpairs of the Nystrom approximation of a PSD A from Q and Y = A Q, computed stably
    with a small shift (Tropp et al., "Fixed-rank approximation of a positive-semidefinite
    matrix from streaming data", 2017); the Ritz pairs of Q^T Y if that still fails."""
    from scipy.linalg import cholesky, solve_triangular

    shift = float(np.finfo(np.float32).eps * np.linalg.norm(product))
    if shift == 0.0:  # A Q = 0: every direction of Q carries no variance
        return np.zeros(basis.shape[1]), basis
    shifted = product + shift * basis
    core = basis.T @ shifted
    try:
        factor = cholesky((core + core.T) / 2, lower=True)
    except np.linalg.LinAlgError:
        values, rotation = np.linalg.eigh((core + core.T) / 2)
        return values - shift, basis @ rotation
    scaled = solve_triangular(factor, shifted.T, lower=True).T
    vectors, singular, _ = np.linalg.svd(scaled, full_matrices=False)
    return np.square(singular) - shift, vectors


def _sketch(
    blocks: Iterable[Features],
    centre: _Centre,
    num_components: int,
    extra_components: int,
    seed: int,
) -> Floats:
    """Pass 0: an orthonormal basis (d x l) of the row space of C = B - (1/n) h s^T."""
    rng = np.random.default_rng(seed)
    sketch: Floats | None = None
    h: Floats | None = None
    size = 0
    for block in blocks:
        x = centre.apply(block)
        if sketch is None:
            size = sketch_size(num_components, extra_components, int(x.shape[1]))
        signs = _signs(rng, int(x.shape[0]), size)
        part = (x.T @ signs).T if sp.issparse(x) else signs.T @ x
        sketch = np.asarray(part, np.float64) + (0.0 if sketch is None else sketch)
        h = signs.sum(axis=0, dtype=np.float64) + (0.0 if h is None else h)
        centre.count(x)
    _check_rows(centre, num_components)
    assert sketch is not None
    assert h is not None
    if centre.subtract_mean and centre.total is not None:
        sketch -= np.outer(h, centre.total) / centre.rows
    return np.linalg.qr(sketch.T)[0]


def _scatter_times(blocks: Iterable[Features], centre: _Centre, basis: Floats) -> Floats:
    """One pass: `sum (x-c)(x-c)^T basis`, centred; the pass must hold the sketch's rows."""
    right = basis.astype(np.float32)
    product = np.zeros(basis.shape, dtype=np.float64)
    rows = 0
    for block in blocks:
        x = centre.apply(block)
        product += np.asarray(x.T @ np.asarray(x @ right), dtype=np.float64)
        rows += int(x.shape[0])
    if rows != centre.rows:
        raise ValueError(
            f"the data changed between passes: {centre.rows} rows, then {rows}; randomized PCA "
            "reads its channel several times"
        )
    return product - centre.correction(basis)
