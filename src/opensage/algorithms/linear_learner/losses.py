"""The losses, for many models at once: `z` holds every model's outputs side by side.

Shapes: binary and regression `z` is (rows, models) and `y` (rows,); multiclass `z` is
(rows, models, classes) and `y` holds class indices. `gradient` is dLoss/dz per element (not yet
averaged over rows); `values` is the loss per row and model, (rows, models). Binary labels are
0/1; the margin losses read them as -1/+1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class LossParams:
    """The losses' knobs, in the units of the labels the loss sees."""

    margin: float = 1.0
    quantile: float = 0.5
    huber_delta: float = 1.0
    insensitivity: float = 0.01


def gradient(loss: str, z: Array, y: Array, p: LossParams) -> Array:
    if loss == "softmax_loss":
        probs = softmax(z)
        rows = np.arange(z.shape[0])
        probs[rows, :, y.astype(np.intp)] -= 1.0
        return probs
    if loss == "logistic":
        g: Array = expit(z)
        g -= y[:, None]
        return g
    if loss == "hinge_loss":
        sign = (2.0 * y - 1.0)[:, None].astype(z.dtype)
        return np.where(sign * z < p.margin, -sign, 0.0).astype(z.dtype)
    r = z - y[:, None]
    return _regression_gradient(loss, r, p).astype(z.dtype, copy=False)


def _regression_gradient(loss: str, r: Array, p: LossParams) -> Array:
    if loss == "squared_loss":
        return 2.0 * r
    if loss == "absolute_loss":
        return np.sign(r)
    if loss == "huber_loss":
        return np.clip(r, -p.huber_delta, p.huber_delta)
    if loss == "quantile_loss":
        return np.where(r < 0, -p.quantile, 1.0 - p.quantile)
    excess = np.maximum(np.abs(r) - p.insensitivity, 0.0)
    if loss == "eps_insensitive_squared_loss":
        return 2.0 * np.sign(r) * excess
    if loss == "eps_insensitive_absolute_loss":
        return np.sign(r) * (excess > 0)
    raise ValueError(f"unknown loss {loss}")


def values(loss: str, z: Array, y: Array, p: LossParams) -> Array:
    if loss == "softmax_loss":
        top = z.max(axis=2, keepdims=True)
        log_norm = np.log(np.exp(z - top).sum(axis=2)) + top[..., 0]
        rows = np.arange(z.shape[0])
        out: Array = log_norm - z[rows, :, y.astype(np.intp)]
        return out
    if loss == "logistic":
        # softplus(z) - y z, written out: several times faster than np.logaddexp.
        out = np.log1p(np.exp(-np.abs(z)))
        out += np.maximum(z, 0.0)
        out -= y[:, None] * z
        return out
    if loss == "hinge_loss":
        sign = (2.0 * y - 1.0)[:, None]
        return np.asarray(np.maximum(0.0, p.margin - sign * z))
    return np.asarray(_regression_values(loss, z - y[:, None], p))


def _regression_values(loss: str, r: Array, p: LossParams) -> Any:
    if loss == "squared_loss":
        return r * r
    if loss == "absolute_loss":
        return np.abs(r)
    if loss == "huber_loss":
        a = np.abs(r)
        d = p.huber_delta
        return np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))
    if loss == "quantile_loss":
        return np.where(r < 0, -p.quantile * r, (1.0 - p.quantile) * r)
    excess = np.maximum(np.abs(r) - p.insensitivity, 0.0)
    if loss == "eps_insensitive_squared_loss":
        return excess * excess
    if loss == "eps_insensitive_absolute_loss":
        return excess
    raise ValueError(f"unknown loss {loss}")


def softmax(z: Array) -> Array:
    """Softmax over the last axis, stable for large outputs."""
    out: Array = z - z.max(axis=-1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


def scores(loss: str, z: Array) -> Array:
    """What a prediction's `score` is: a probability for logistic and softmax, else `z`."""
    if loss == "logistic":
        out: Array = expit(z)
        return out
    if loss == "softmax_loss":
        return softmax(z)
    return z
