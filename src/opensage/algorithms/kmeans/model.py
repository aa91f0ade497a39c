"""The k-means core, free of the job machinery: distances, k-means++, weighted Lloyd's, the
web-scale mini-batch pass (Sculley, WWW 2010) and the fitted model.

Everything is float32 and vectorised: squared distances are `||x||² - 2 x·cᵀ + ||c||²` (one BLAS
matmul per block of rows), cluster sums are one sparse-indicator matmul, and rows may be a dense
array or a CSR matrix (sparse records are never densified, only the centres are dense).

The method, as SageMaker describes it (spec algorithms §4(f)):

1. `K = k · extra_center_factor` centres are drawn from the first mini-batch (uniformly at
   random, or by k-means++).
2. Each mini-batch is assigned to its nearest centres; each centre moves to the weighted mean of
   its past points and its new ones, `c ← (v·c + Σx) / (v + n)`, which is exactly Sculley's
   per-point update with learning rate `1/v` applied to the batch's points in turn. With
   `half_life_time_size = h > 0` the counts `v` decay by `0.5^(n/h)` before a batch of `n`
   rows, so a point's weight halves after `h` more points have been seen.
3. The K centres, weighted by their counts, are reduced to k by local Lloyd's (k-means++ or
   random starts), keeping the best of `local_lloyd_num_trials` by weighted inertia.

Randomness comes from one generator with a fixed seed: the same rows in the same order give a
bit-identical model (SageMaker's 1P algorithms have no seed hyperparameter).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from opensage.algorithms.artifacts import load_model, save_model

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
Rows = Any
"""A float32 2-D ndarray or a float32 CSR matrix."""

SEED: Final = 20100426
"""The fixed seed of every random choice (the day Sculley's paper was presented)."""
BLOCK_ROWS: Final = 8192
"""Rows per distance block: bounds the n-by-K distance matrix to a few MB."""
MIN_AUTO_FACTOR: Final = 4
MAX_AUTO_FACTOR: Final = 10
MAX_AUTO_TRIALS: Final = 10
AUTO_TRIALS_BUDGET: Final = 1e8
"""Multiply-adds per Lloyd iteration summed over trials that `auto` trials stay under."""


# --- distances ------------------------------------------------------------------------------


def row_norms(x: Rows) -> Floats:
    """Squared Euclidean norm of each row."""
    if sp.issparse(x):
        return np.asarray(x.multiply(x).sum(axis=1), dtype=np.float32).ravel()
    dense = np.asarray(x, dtype=np.float32)
    norms: Floats = np.einsum("ij,ij->i", dense, dense)
    return norms


def squared_distances(
    x: Rows, centers: Floats, x_norms: Floats | None = None, c_norms: Floats | None = None
) -> Floats:
    """All row-to-centre squared distances (n-by-K), clipped at 0 against rounding."""
    xn = row_norms(x) if x_norms is None else x_norms
    cn = row_norms(centers) if c_norms is None else c_norms
    cross = np.asarray(x @ centers.T, dtype=np.float32)
    d2 = cross * np.float32(-2.0)
    d2 += xn[:, None]
    d2 += cn[None, :]
    np.maximum(d2, 0, out=d2)
    return d2


def nearest(x: Rows, centers: Floats, x_norms: Floats | None = None) -> tuple[Ints, Floats]:
    """Index of each row's nearest centre and the squared distance to it, in row blocks."""
    n = x.shape[0]
    labels = np.empty(n, dtype=np.int64)
    best = np.empty(n, dtype=np.float32)
    xn = row_norms(x) if x_norms is None else x_norms
    cn = row_norms(centers)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(n, start + BLOCK_ROWS)
        d2 = squared_distances(x[start:stop], centers, xn[start:stop], cn)
        labels[start:stop] = np.argmin(d2, axis=1)
        best[start:stop] = d2[np.arange(stop - start), labels[start:stop]]
    return labels, best


def cluster_sums(x: Rows, labels: Ints, n_clusters: int, weights: Floats | None = None) -> Floats:
    """Per-cluster (weighted) sums of rows: one sparse indicator matmul, no Python loop."""
    n = x.shape[0]
    data = np.ones(n, dtype=np.float32) if weights is None else weights.astype(np.float32)
    indicator = sp.csr_matrix((data, (labels, np.arange(n))), shape=(n_clusters, n))
    sums = indicator @ x
    if sp.issparse(sums):
        sums = sums.toarray()
    return np.asarray(sums, dtype=np.float32)


def take_rows(x: Rows, index: npt.ArrayLike) -> Floats:
    """Rows of `x` as a dense float32 array (centres are always dense)."""
    picked = x[np.asarray(index)]
    if sp.issparse(picked):
        picked = picked.toarray()
    return np.array(picked, dtype=np.float32)


# --- initialisation and Lloyd's ---------------------------------------------------------------


def kmeans_plus_plus(
    x: Rows,
    k: int,
    rng: np.random.Generator,
    weights: Floats | None = None,
    trials: int | None = None,
) -> Floats:
    """k seeds by (greedy) k-means++: each new seed is the best of `trials` candidates drawn
    with probability ∝ weight · distance² (default `2 + ln k`, as scikit-learn does). Once every
    row coincides with a seed, the rest are drawn among the rows not chosen yet."""
    n = x.shape[0]
    w = np.ones(n, dtype=np.float64) if weights is None else weights.astype(np.float64)
    tries = trials if trials is not None else 2 + int(math.log(k))
    xn = row_norms(x)
    chosen = [int(rng.choice(n, p=w / w.sum()))]
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    centers[0] = take_rows(x, chosen)[0]
    closest = squared_distances(x, centers[:1], xn)[:, 0].astype(np.float64)
    for c in range(1, k):
        mass = np.cumsum(w * closest)
        if mass[-1] <= 0:
            candidates = _unchosen(n, chosen, rng, tries)
        else:
            picks = rng.random(tries) * mass[-1]
            candidates = np.minimum(np.searchsorted(mass, picks, side="right"), n - 1)
        d2 = squared_distances(x, take_rows(x, candidates), xn).astype(np.float64)
        candidate_closest = np.minimum(closest[:, None], d2)
        best = int(np.argmin(w @ candidate_closest))
        closest = candidate_closest[:, best]
        chosen.append(int(candidates[best]))
        centers[c] = take_rows(x, [chosen[-1]])[0]
    return centers


def _unchosen(n: int, chosen: list[int], rng: np.random.Generator, tries: int) -> Ints:
    free = np.setdiff1d(np.arange(n), chosen)
    if free.size == 0:
        free = np.arange(n)
    return rng.choice(free, size=min(tries, free.size), replace=False).astype(np.int64)


def random_rows(x: Rows, k: int, rng: np.random.Generator, weights: Floats | None = None) -> Floats:
    """k distinct rows drawn uniformly (or ∝ weight among rows of positive weight)."""
    n = x.shape[0]
    if weights is None:
        return take_rows(x, np.sort(rng.choice(n, size=k, replace=False)))
    positive = np.flatnonzero(weights > 0)
    p = weights[positive].astype(np.float64)
    pick = rng.choice(positive, size=k, replace=False, p=p / p.sum())
    return take_rows(x, np.sort(pick))


def lloyd(
    points: Floats, weights: Floats, centers: Floats, max_iter: int, tol: float
) -> tuple[Floats, float]:
    """Weighted Lloyd's from `centers`: stops after `max_iter` updates or once the weighted
    inertia improves by no more than `tol` of itself. An emptied centre restarts at the point
    that costs most, so k centres always stay in use. Returns the centres and their inertia."""
    k = centers.shape[0]
    centers = centers.copy()
    w64 = weights.astype(np.float64)
    labels, d2 = nearest(points, centers)
    inertia = float(w64 @ d2)
    for _ in range(max_iter):
        mass = np.bincount(labels, weights=w64, minlength=k)
        sums = cluster_sums(points, labels, k, weights)
        filled = mass > 0
        centers[filled] = (sums[filled] / mass[filled, None]).astype(np.float32)
        _refill(centers, ~filled, points, w64 * d2)
        labels, d2 = nearest(points, centers)
        previous, inertia = inertia, float(w64 @ d2)
        if previous - inertia <= tol * previous:
            break
    return centers, inertia


def _refill(centers: Floats, empty: npt.NDArray[np.bool_], points: Floats, cost: Any) -> None:
    holes = np.flatnonzero(empty)
    if holes.size:
        far = np.argsort(-cost, kind="stable")[: holes.size]
        centers[holes[: far.size]] = points[far]


# --- the mini-batch pass ----------------------------------------------------------------------


class TooFewRows(ValueError):
    """The data cannot give k distinct starting centres."""


@dataclass(frozen=True)
class Settings:
    """The hyperparameters the method uses; `None` is SageMaker's `auto`."""

    k: int
    extra_center_factor: int | None = None
    init_method: str = "random"
    half_life_time_size: int = 0
    local_lloyd_init_method: str = "kmeans++"
    local_lloyd_max_iter: int = 300
    local_lloyd_num_trials: int | None = None
    local_lloyd_tol: float = 1e-4
    mini_batch_size: int = 5000

    @property
    def center_factor(self) -> int:
        """`auto`: ceil(ln(mini_batch_size)) kept within the documented tuning range 4-10
        (9 for the default batch of 5000): more spare centres for larger batches, which can
        afford them, and never fewer than 4, below which the reduction has little to choose."""
        if self.extra_center_factor is not None:
            return self.extra_center_factor
        guess = math.ceil(math.log(max(self.mini_batch_size, 2)))
        return min(MAX_AUTO_FACTOR, max(MIN_AUTO_FACTOR, guess))

    def trials(self, n_centers: int, dim: int) -> int:
        """`auto`: 10 restarts (scikit-learn's classic `n_init`) while one Lloyd iteration of
        all of them stays under 1e8 multiply-adds, fewer (at least 1) for larger problems."""
        if self.local_lloyd_num_trials is not None:
            return self.local_lloyd_num_trials
        cost = max(1, n_centers * self.k * dim)
        return int(min(MAX_AUTO_TRIALS, max(1, AUTO_TRIALS_BUDGET // cost)))


class MiniBatchKMeans:
    """Web-scale k-means over a stream of mini-batches; `partial_fit` per batch, then `reduce`."""

    def __init__(self, settings: Settings, dim: int) -> None:
        self.settings = settings
        self.dim = dim
        self.rng = np.random.default_rng(SEED)
        self.centers: Floats | None = None
        self.counts = np.zeros(0, dtype=np.float64)
        self.rows_seen = 0

    def partial_fit(self, x: Rows) -> float:
        """Move the centres towards one batch; returns the batch's summed squared distance to
        its nearest centre before the move (the streaming training loss)."""
        if x.shape[0] == 0:
            return 0.0
        if self.centers is None:
            self.centers = self._initial_centers(x)
            self.counts = np.zeros(self.centers.shape[0], dtype=np.float64)
        n_centers = self.centers.shape[0]
        labels, d2 = nearest(x, self.centers)
        if self.settings.half_life_time_size > 0:
            self.counts *= 0.5 ** (x.shape[0] / self.settings.half_life_time_size)
        hits = np.bincount(labels, minlength=n_centers).astype(np.float64)
        sums = cluster_sums(x, labels, n_centers).astype(np.float64)
        moved = hits > 0
        total = self.counts[moved] + hits[moved]
        old = self.centers[moved].astype(np.float64) * self.counts[moved, None]
        self.centers[moved] = ((old + sums[moved]) / total[:, None]).astype(np.float32)
        self.counts[moved] = total
        self.rows_seen += x.shape[0]
        return float(d2.sum(dtype=np.float64))

    def _initial_centers(self, x: Rows) -> Floats:
        """K = k · factor centres from the first batch (fewer if it has fewer rows)."""
        n = x.shape[0]
        k = self.settings.k
        if n < k:
            raise TooFewRows(f"k={k} is more than the {n} records of the training data")
        n_centers = min(k * self.settings.center_factor, n)
        if self.settings.init_method == "kmeans++":
            return kmeans_plus_plus(x, n_centers, self.rng, trials=1)
        return random_rows(x, n_centers, self.rng)

    def reduce(self) -> Floats:
        """The k final centres: local Lloyd's over the K centres weighted by their counts,
        best of the trials. Centres that never won a point carry no weight and are left out."""
        if self.centers is None:
            raise ValueError("no training data was seen")
        return reduce_centers(self.centers, self.counts.astype(np.float32), self.settings, self.rng)


def reduce_centers(
    centers: Floats, weights: Floats, settings: Settings, rng: np.random.Generator
) -> Floats:
    """Weighted local Lloyd's from K points down to `settings.k` centres."""
    k = settings.k
    used = weights > 0
    if int(used.sum()) <= k:  # nothing to reduce: keep the used ones, pad with spare ones
        order = np.argsort(~used, kind="stable")[:k]
        return centers[order].copy()
    points, w = centers[used], weights[used]
    best: tuple[Floats, float] | None = None
    for _ in range(settings.trials(points.shape[0], points.shape[1])):
        if settings.local_lloyd_init_method == "kmeans++":
            start = kmeans_plus_plus(points, k, rng, weights=w)
        else:
            start = random_rows(points, k, rng, weights=w)
        found = lloyd(points, w, start, settings.local_lloyd_max_iter, settings.local_lloyd_tol)
        if best is None or found[1] < best[1]:
            best = found
    assert best is not None
    return best[0]


def fit(batches: Iterable[Rows], settings: Settings, dim: int) -> KMeansModel:
    """One pass over `batches` then the reduction: the core without the job around it."""
    learner = MiniBatchKMeans(settings, dim)
    for batch in batches:
        learner.partial_fit(batch)
    return KMeansModel(learner.reduce())


# --- the fitted model -------------------------------------------------------------------------


@dataclass(frozen=True)
class KMeansModel:
    """k centroids (k-by-feature_dim, float32): what `model_algo-1` holds."""

    centroids: Floats

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def width(self) -> int:
        return int(self.centroids.shape[1])

    def predict(self, x: Rows) -> tuple[Ints, Floats]:
        """Closest cluster of each row and the Euclidean (not squared) distance to it."""
        labels, d2 = nearest(x, self.centroids)
        return labels, np.sqrt(d2)

    def squared_error(self, x: Rows) -> tuple[float, int]:
        """Summed squared distance of the rows to their nearest centroid, and the row count."""
        _, d2 = nearest(x, self.centroids)
        return float(d2.sum(dtype=np.float64)), int(x.shape[0])

    def save(self, model_dir: Path) -> Path:
        meta = {"algorithm": "kmeans", "k": self.k, "feature_dim": self.width}
        return save_model(model_dir, {"centroids": self.centroids}, meta)

    @classmethod
    def load(cls, model_dir: Path) -> KMeansModel:
        arrays, meta = load_model(model_dir)
        if meta.get("algorithm") != "kmeans" or "centroids" not in arrays:
            raise ValueError(f"the model in {model_dir} is not a K-Means model")
        centroids = np.asarray(arrays["centroids"], dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[0] == 0:
            raise ValueError(f"the K-Means model in {model_dir} has no centroids")
        return cls(centroids)
