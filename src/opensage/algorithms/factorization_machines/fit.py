"""Mini-batch training of a factorization machine with SageMaker's per-term settings.

Each of the three terms (bias w0, linear w, factors V) has its own learning rate, weight decay and
initialisation (spec §7(a)). The update is MXNet's lazy (row-sparse) Adam: SageMaker does not
document its optimizer, but its parameter names are those of MXNet's sparse factorization
machine example, which trains with Adam, and `eps` only has a meaning for an adaptive method.
Plain SGD at the documented default rates (factors 1e-4 against factors near 1e-3) would leave
the interactions unlearnt. A batch's gradient is rescaled (`rescale_grad`, by default 1/rows, the
batch mean, as MXNet's Module does), weight decay `wd * weight` is added, the sum is clipped to
`[-clip_gradient, clip_gradient]`, and only the rows of w and V that the batch's records use are
updated (their moments too), so a step costs O(nnz * k), never O(feature_dim * k).

Squared loss `1/2 (y - label)^2` for a regressor; log loss on sigmoid(y) for a binary classifier
(labels 0 or 1). Initial values come from a fixed seed, and records are visited in channel order,
so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.base import Value
from opensage.algorithms.factorization_machines.model import (
    FMModel,
    gradients,
    localise,
    outputs,
    sigmoid,
)
from opensage.algorithms.factorization_machines.spec import BINARY, TERMS

Array = npt.NDArray[Any]
SEED: Final = 0
BETA1: Final = 0.9
BETA2: Final = 0.999
DEFAULT_EPS: Final = 1e-8
BIAS_ROW: Final = np.zeros(1, dtype=np.intp)
Epoch = Callable[[int], Iterable[tuple[Any, Array]]]
"""`epoch(e)`: the rows of pass `e` as (features: CSR or dense, labels) mini-batches."""


@dataclass(frozen=True)
class Init:
    method: str
    sigma: float
    scale: float | None
    value: float | None


@dataclass(frozen=True)
class Settings:
    predictor_type: str
    feature_dim: int
    num_factors: int
    epochs: int = 1
    mini_batch_size: int = 1000
    lr: Mapping[str, float] | None = None
    wd: Mapping[str, float] | None = None
    init: Mapping[str, Init] | None = None
    clip_gradient: float | None = None
    eps: float = DEFAULT_EPS
    rescale_grad: float | None = None

    @property
    def is_binary(self) -> bool:
        return self.predictor_type == BINARY

    def rate(self, term: str) -> float:
        return float((self.lr or {}).get(term, 0.0))

    def decay(self, term: str) -> float:
        return float((self.wd or {}).get(term, 0.0))


def from_values(values: Mapping[str, Value]) -> Settings:
    """Typed settings from the validated, defaults-filled hyperparameters."""

    def number(name: str) -> float | None:
        value = values.get(name)
        return None if value is None else float(value)  # type: ignore[arg-type]

    init = {
        term: Init(
            str(values[f"{term}_init_method"]),
            float(values[f"{term}_init_sigma"]),  # type: ignore[arg-type]
            number(f"{term}_init_scale"),
            number(f"{term}_init_value"),
        )
        for term in TERMS
    }
    eps = number("eps")
    return Settings(
        predictor_type=str(values["predictor_type"]),
        feature_dim=int(values["feature_dim"]),  # type: ignore[arg-type]
        num_factors=int(values["num_factors"]),  # type: ignore[arg-type]
        epochs=int(values["epochs"]),  # type: ignore[arg-type]
        mini_batch_size=int(values["mini_batch_size"]),  # type: ignore[arg-type]
        lr={term: float(values[f"{term}_lr"]) for term in TERMS},  # type: ignore[arg-type]
        wd={term: float(values[f"{term}_wd"]) for term in TERMS},  # type: ignore[arg-type]
        init=init,
        clip_gradient=number("clip_gradient"),
        eps=DEFAULT_EPS if eps is None else eps,
        rescale_grad=number("rescale_grad"),
    )


def initial(init: Init, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
    """float32 values drawn as `init` says: N(0, sigma), U(-scale, scale) or a constant."""
    if init.method == "uniform":
        scale = init.scale if init.scale is not None else 0.0
        return rng.uniform(-scale, scale, shape).astype(np.float32)
    if init.method == "constant":
        return np.full(shape, init.value if init.value is not None else 0.0, dtype=np.float32)
    out: Array = rng.standard_normal(shape, dtype=np.float32) * np.float32(init.sigma)
    return out


class LazyAdam:
    """Adam on the rows a batch touches (MXNet's `lazy_update`): moments of untouched rows stay
    as they are. One instance per parameter; `t` is the global step for the bias correction."""

    def __init__(self, param: Array, lr: float, wd: float, s: Settings) -> None:
        self.param = param
        self.m = np.zeros_like(param)
        self.s = np.zeros_like(param)
        self.lr = lr
        self.wd = wd
        self.clip = s.clip_gradient
        self.eps = s.eps

    def step(self, rows: Array, grad: Array, scale: float, t: int) -> None:
        """Update `param[rows]` from `grad` (summed over the batch; consumed in place). `rows`
        is an index array, so `param[rows]` and the moments' rows are copies."""
        if self.lr == 0.0:
            return
        p = self.param[rows]
        g = grad.astype(p.dtype, copy=False)
        if scale != 1.0:
            g *= scale
        if self.wd:
            g += self.wd * p
        if self.clip is not None:
            np.clip(g, -self.clip, self.clip, out=g)
        m = self.m[rows]
        m *= BETA1
        m += (1 - BETA1) * g
        s = self.s[rows]
        s *= BETA2
        g *= g
        g *= 1 - BETA2
        s += g
        self.m[rows] = m
        self.s[rows] = s
        rate = self.lr * np.sqrt(1 - BETA2**t) / (1 - BETA1**t)
        denominator = np.sqrt(s, out=g)
        denominator += self.eps
        m *= rate
        m /= denominator
        p -= m
        self.param[rows] = p


def loss_gradient(y: Array, labels: Array, binary: bool) -> tuple[Array, float]:
    """(dloss/dy per row, the summed loss): squared loss 1/2 (y - l)^2, or log loss."""
    if binary:
        loss = float(np.sum(np.logaddexp(0.0, y) - labels * y))
        return sigmoid(y) - labels, loss
    residual = y - labels
    return residual, float(0.5 * np.dot(residual, residual))


@dataclass
class Trainer:
    """The parameters and their optimizers; `batch` takes one step."""

    s: Settings
    w0: Array
    w: Array
    v: Array

    @classmethod
    def start(cls, s: Settings) -> Trainer:
        rng = np.random.default_rng(SEED)
        init = s.init or {term: Init("normal", 0.01, None, None) for term in TERMS}
        w0 = initial(init["bias"], (1,), rng)
        w = initial(init["linear"], (s.feature_dim,), rng)
        v = initial(init["factors"], (s.feature_dim, s.num_factors), rng)
        return cls(s, w0, w, v)

    def __post_init__(self) -> None:
        s = self.s
        self.optimizers = {
            "bias": LazyAdam(self.w0, s.rate("bias"), s.decay("bias"), s),
            "linear": LazyAdam(self.w, s.rate("linear"), s.decay("linear"), s),
            "factors": LazyAdam(self.v, s.rate("factors"), s.decay("factors"), s),
        }
        self.t = 0

    def batch(self, features: Any, labels: Array) -> float:
        """One update from one mini-batch; returns the batch's summed loss before the step."""
        local = localise(features)
        cols = local.columns
        v = self.v[cols]
        y, s = outputs(local, float(self.w0[0]), self.w[cols], v)
        g, loss = loss_gradient(y, labels.astype(y.dtype, copy=False), self.s.is_binary)
        grad_w0, grad_w, grad_v = gradients(local, g.astype(np.float32, copy=False), s, v)
        scale = self.s.rescale_grad if self.s.rescale_grad is not None else 1.0 / len(labels)
        self.t += 1
        self.optimizers["bias"].step(BIAS_ROW, np.asarray([grad_w0]), scale, self.t)
        self.optimizers["linear"].step(cols, grad_w, scale, self.t)
        self.optimizers["factors"].step(cols, grad_v, scale, self.t)
        return loss

    def model(self) -> FMModel:
        return FMModel(self.s.predictor_type, float(self.w0[0]), self.w.copy(), self.v.copy())


def fit(
    epoch: Epoch, s: Settings, on_epoch: Callable[[int, float, int], None] | None = None
) -> FMModel:
    """Train for `s.epochs` passes; `on_epoch(e, mean loss, rows)` after each."""
    trainer = Trainer.start(s)
    for e in range(s.epochs):
        total, rows = 0.0, 0
        for features, labels in epoch(e):
            total += trainer.batch(features, labels)
            rows += len(labels)
        if on_epoch is not None:
            on_epoch(e, total / max(rows, 1), rows)
    return trainer.model()
