"""DeepAR's test metrics (spec algorithms §15(b, c)), computed as GluonTS's evaluator does over
the held-out last prediction_length points of every test series:

* RMSE: the root mean squared error of the mean forecast over all observed points;
* wQuantileLoss[tau]: 2 * sum(pinball loss of the tau-quantile) / sum(|y|);
* mean_wQuantileLoss: the mean of wQuantileLoss over `test_quantiles`.

Missing (NaN) truth values are left out of every sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.floating]


def quantiles(samples: Array, levels: Sequence[float]) -> Array:
    """Quantile forecasts (len(levels) x series x horizon) from sample paths (series x
    samples x horizon), interpolating linearly between samples as numpy does."""
    return np.quantile(np.asarray(samples, np.float64), list(levels), axis=1)


def weighted_quantile_loss(truth: Array, forecast: Array, level: float) -> float:
    """2 * sum of the pinball losses of the `level`-quantile `forecast` / sum |truth|."""
    y = np.asarray(truth, np.float64)
    q = np.asarray(forecast, np.float64)
    seen = np.isfinite(y)
    pinball = np.abs((y[seen] - q[seen]) * ((y[seen] <= q[seen]) - level))
    denominator = np.abs(y[seen]).sum()
    return float(2 * pinball.sum() / denominator) if denominator > 0 else float("nan")


def rmse(truth: Array, mean: Array) -> float:
    y = np.asarray(truth, np.float64)
    seen = np.isfinite(y)
    if not seen.any():
        return float("nan")
    return float(np.sqrt(np.mean((y[seen] - np.asarray(mean, np.float64)[seen]) ** 2)))


@dataclass(frozen=True)
class Scores:
    rmse: float
    weighted_quantile_losses: dict[float, float]

    @property
    def mean_weighted_quantile_loss(self) -> float:
        return float(np.mean(list(self.weighted_quantile_losses.values())))


def score(truth: Array, samples: Array, levels: Sequence[float]) -> Scores:
    """The metrics of sample paths (series x samples x horizon) against `truth` (series x
    horizon)."""
    found = quantiles(samples, levels)
    losses = {
        level: weighted_quantile_loss(truth, found[i], level) for i, level in enumerate(levels)
    }
    return Scores(rmse(truth, np.asarray(samples).mean(axis=1)), losses)


def seasonal_naive(history: Sequence[Array], season: int, horizon: int) -> Array:
    """The last observed season repeated (series x horizon): the baseline DeepAR must beat."""
    out = np.empty((len(history), horizon))
    for i, values in enumerate(history):
        v = np.asarray(values, np.float64)
        last = v[-season:] if len(v) >= season else v
        filled = np.where(np.isfinite(last), last, np.nanmean(v) if np.isfinite(v).any() else 0)
        out[i] = np.resize(filled, horizon) if len(filled) else 0.0
    return out
