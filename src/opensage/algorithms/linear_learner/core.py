"""The algorithm: `num_models` linear models trained together by mini-batch SGD / Adam / RMSProp,
the best chosen on a selection sample, the binary threshold calibrated there.

Why together: the K models' weights are one (features, K x outputs) float32 matrix, so each
mini-batch is one `X_b @ W` and one `X_b.T @ G` (BLAS) for all of them, and every optimiser step
is a handful of whole-matrix numpy operations. Models differ by learning rate, `wd`, `l1` and
(with `positive_example_weight_mult=auto`) the positive-class weight: the first model uses the
given or default values, the others a grid around them over whatever was left `auto` (`grid`).

Data are normalised for training (dense features centred and scaled; sparse ones scaled only,
so they stay sparse; regression labels centred and scaled) from a sample of
`num_point_for_scaler` rows, and the normalisation is folded back into the weights at the end,
so the model predicts on raw features. Each epoch, every model's loss on the selection sample
(the validation channel, or a sample of the training rows without one; at most
`num_calibration_samples` rows) is measured: each model keeps the weights of its best epoch, and
training stops when the best loss has not improved by `early_stopping_tolerance` (relative) for
`early_stopping_patience` epochs. The winner is the model with the best selection criterion on
that sample (the loss, or for binary classifiers the calibrated accuracy, F-beta, ...).

The squared loss (a `regressor`, at most `exact.MAX_FEATURES` features, or
`exact.MAX_L1_FEATURES` when a model has `l1 > 0`) skips the loop: each model's objective is a
quadratic (plus the l1 term), so `exact` solves all of them from one pass of sufficient
statistics, one eigendecomposition and, for the l1 models, coordinate descent on those
statistics; the result is the minimiser SGD converges to (`_fit_exact`). Selection and the
saved model are the same as above; the single pass is reported as one epoch.

Everything random comes from one generator with a fixed seed, so the same data and settings
give the same model, bit for bit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from opensage.algorithms.base import UserError
from opensage.algorithms.linear_learner import evaluate, exact, losses
from opensage.algorithms.linear_learner.config import BASE_LEARNING_RATE, Settings
from opensage.algorithms.linear_learner.model import LinearModel

Array = npt.NDArray[Any]
SEED: Final = 1729
AUTO_MODELS: Final = 32
MAX_WEIGHTS: Final = 50_000_000
"""With `num_models=auto`, fewer models when features x classes x models would pass this."""
LR_FACTORS: Final = (1.0, 0.1, 3.0, 0.3, 0.03, 10.0)
WD_GRID: Final = (0.0, 1e-4, 1e-3, 1e-5, 1e-2, 1e-6)
L1_GRID: Final = (0.0, 1e-5, 1e-4, 1e-6, 1e-3)
EPSILON: Final = 1e-8
RMSPROP_DECAY: Final = 0.9
EpochHook = Callable[[int, float], None]


@dataclass(frozen=True)
class Grid:
    """Per-model settings, one entry per model."""

    learning_rate: Array
    wd: Array
    l1: Array
    positive_weight: Array

    def __len__(self) -> int:
        return len(self.learning_rate)

    def describe(self, k: int) -> dict[str, float]:
        return {
            "learning_rate": float(self.learning_rate[k]),
            "wd": float(self.wd[k]),
            "l1": float(self.l1[k]),
            "positive_example_weight_mult": float(self.positive_weight[k]),
        }


def grid(s: Settings, feature_dim: int, balanced_weight: float = 1.0) -> Grid:
    """The models to train: the base configuration first, then neighbours over the `auto`
    dimensions, nearest first (fewest steps away from the base along the option lists)."""
    base_lr = s.learning_rate or BASE_LEARNING_RATE[s.optimizer]
    options: list[tuple[float, ...]] = [
        tuple(base_lr * f for f in LR_FACTORS) if s.learning_rate is None else (base_lr,),
        WD_GRID if s.wd is None else (s.wd,),
        L1_GRID if s.l1 is None else (s.l1,),
        _positive_weights(s, balanced_weight),
    ]
    combos = sorted(itertools.product(*(range(len(o)) for o in options)), key=lambda c: (sum(c), c))
    count = s.num_models or min(AUTO_MODELS, max(1, MAX_WEIGHTS // (feature_dim * s.outputs)))
    chosen = combos[: max(1, min(count, len(combos)))]
    columns = [np.array([options[i][c[i]] for c in chosen]) for i in range(4)]
    return Grid(*columns)


def _positive_weights(s: Settings, balanced: float) -> tuple[float, ...]:
    if not s.is_binary:
        return (1.0,)
    mult = s.positive_example_weight_mult
    if mult == "auto":
        return (1.0, balanced) if balanced != 1.0 else (1.0,)
    return (balanced,) if mult == "balanced" else (float(mult),)


@dataclass(frozen=True)
class Scaler:
    """x -> (x - mean) / scale, y -> (y - label_mean) / label_scale."""

    mean: Array
    scale: Array
    label_mean: float = 0.0
    label_scale: float = 1.0

    def features(self, x: Any) -> Any:
        if sp.issparse(x):
            return sp.csr_matrix(x @ sp.diags((1.0 / self.scale).astype(np.float32)))
        out = np.asarray(x, dtype=np.float32) - self.mean.astype(np.float32)
        out *= (1.0 / self.scale).astype(np.float32)
        return out

    def labels(self, y: Array) -> Array:
        return ((y - self.label_mean) / self.label_scale).astype(np.float32)


def fit_scaler(x: Any, y: Array, s: Settings, rng: np.random.Generator) -> Scaler:
    n, d = x.shape
    sample = np.sort(rng.permutation(n)[: s.num_point_for_scaler])
    sparse = sp.issparse(x)
    if sparse and s.unbias_data:
        raise UserError(
            "unbias_data=true is not supported for sparse data: centring would make it dense. "
            "Leave unbias_data unset (auto) for sparse records."
        )
    centre = s.unbias_data if s.unbias_data is not None else (s.use_bias and not sparse)
    rows = x[sample]
    if sparse:
        mean = np.zeros(d)
        square = np.asarray(rows.multiply(rows).mean(axis=0), dtype=np.float64).ravel()
    else:
        values = np.asarray(rows, dtype=np.float64)
        mean = values.mean(axis=0) if centre else np.zeros(d)
        square = ((values - mean) ** 2).mean(axis=0)
    scale = np.sqrt(square) if s.normalize_data else np.ones(d)
    scale[~(scale > 1e-12)] = 1.0
    label_mean, label_scale = 0.0, 1.0
    if s.is_regressor:
        labels = y[sample].astype(np.float64)
        if s.unbias_label if s.unbias_label is not None else s.use_bias:
            label_mean = float(labels.mean())
        if s.normalize_label is not False:
            spread = math.sqrt(float(np.mean((labels - label_mean) ** 2)))
            label_scale = spread if spread > 1e-12 else 1.0
    return Scaler(mean, scale, label_mean, label_scale)


@dataclass
class Fitted:
    model: LinearModel
    epochs: int
    """Epochs run (fewer than `epochs` after early stopping)."""
    models: int
    selection_loss: float


def check_labels(y: Array, s: Settings, channel: str = "train") -> None:
    """The labels the predictor type needs: 0/1, class indices, or finite numbers."""
    if not np.all(np.isfinite(y)):
        raise UserError(f"Channel '{channel}' has labels that are not finite numbers.")
    if s.is_binary and not np.all((y == 0) | (y == 1)):
        bad = y[(y != 0) & (y != 1)][0]
        raise UserError(
            f"Channel '{channel}' has label {bad:g}; a binary_classifier needs labels 0 and 1."
        )
    if s.predictor_type == "multiclass_classifier":
        bad_rows = (y != np.round(y)) | (y < 0) | (y >= s.num_classes)
        if bad_rows.any():
            raise UserError(
                f"Channel '{channel}' has label {y[bad_rows][0]:g}; with num_classes="
                f"{s.num_classes} labels must be the integers 0..{s.num_classes - 1}."
            )


def fit(
    x: Any,
    y: Array,
    s: Settings,
    held: tuple[Any, Array] | None = None,
    on_epoch: EpochHook | None = None,
) -> Fitted:
    """Train on (x, y): x float32 (rows, features) dense or CSR, y float (rows,). `held`: the
    validation rows for selection and early stopping (else a sample of the training rows)."""
    rng = np.random.default_rng(SEED)
    y = np.asarray(y, dtype=np.float64)
    check_labels(y, s)
    scaler = fit_scaler(x, y, s, rng)
    select_x, select_y = _selection(x, y, held, s.num_calibration_samples, rng)
    positives = float(np.sum(y == 1)) if s.is_binary else 0.0
    balanced = (len(y) - positives) / positives if positives else 1.0
    models = grid(s, x.shape[1], balanced)
    if exact.applies(s, models.l1, x.shape[1]):
        return _fit_exact(x, y, s, models, scaler, select_x, select_y, on_epoch)
    trainer = _Trainer(s, models, x.shape[1], rng, scaler.label_scale)
    # One BLAS thread: a mini-batch matmul is far too small to share, and on a busy machine
    # waking a second thread costs 100x the multiply itself (benchmarks/RESULTS.md). It also
    # makes the model bit-identical whatever the core count.
    with threadpool_limits(limits=1, user_api="blas"):
        epochs = trainer.run(
            scaler.features(x),
            scaler.labels(y),
            scaler.features(select_x),
            scaler.labels(select_y),
            _row_weights(y, s),
            on_epoch,
        )
    weights, bias = _fold(trainer.best_weights, trainer.best_bias, scaler)
    model, loss = _choose(s, models, weights, bias, select_x, select_y)
    return Fitted(model, epochs, len(models), loss)


def _fit_exact(
    x: Any,
    y: Array,
    s: Settings,
    models: Grid,
    scaler: Scaler,
    select_x: Any,
    select_y: Array,
    on_epoch: EpochHook | None,
) -> Fitted:
    """The squared loss: every model's exact minimiser (`exact`), no epochs. BLAS
    keeps its default threads: the statistics pass multiplies large blocks."""
    labels = (y - scaler.label_mean) / scaler.label_scale
    stats = exact.statistics(x, labels, scaler.mean, scaler.scale)
    # The d x d solves are tiny: BLAS threads would only add their start-up (20 ms for a 50 x 50
    # eigendecomposition on a busy machine, 100x the work).
    with threadpool_limits(limits=1, user_api="blas"):
        weights, bias = exact.solve(stats, models.wd, s, models.l1)
    weights, bias = _fold(weights, bias, scaler)
    model, loss = _choose(s, models, weights, bias, select_x, select_y)
    model.info["solver"] = "exact"
    if on_epoch is not None:
        on_epoch(0, loss / scaler.label_scale**2)
    return Fitted(model, 1, len(models), loss)


def _selection(
    x: Any, y: Array, held: tuple[Any, Array] | None, limit: int, rng: np.random.Generator
) -> tuple[Any, Array]:
    source_x, source_y = (x, y) if held is None else (held[0], np.asarray(held[1], np.float64))
    n = source_x.shape[0]
    if n <= limit:
        return source_x, source_y
    rows = np.sort(rng.permutation(n)[:limit])
    return source_x[rows], source_y[rows]


def _row_weights(y: Array, s: Settings) -> Array | None:
    """Per-row weights of `balance_multiclass_weights`: n / (classes x count of the class)."""
    if s.predictor_type != "multiclass_classifier" or not s.balance_multiclass_weights:
        return None
    counts = np.bincount(y.astype(np.intp), minlength=s.num_classes).astype(np.float64)
    per_class = np.where(counts > 0, len(y) / (s.num_classes * np.maximum(counts, 1)), 1.0)
    out: Array = per_class[y.astype(np.intp)].astype(np.float32)
    return out


class _Trainer:
    """The optimisation loop over the stacked weights of every model."""

    def __init__(
        self, s: Settings, models: Grid, d: int, rng: np.random.Generator, label_scale: float
    ) -> None:
        self.s = s
        self.models = models
        self.k = len(models)
        self.c = s.outputs
        self.rng = rng
        m = self.k * self.c
        if s.init_method == "normal":
            self.w = rng.normal(0.0, s.init_sigma, size=(d, m)).astype(np.float32)
        else:
            self.w = rng.uniform(-s.init_scale, s.init_scale, size=(d, m)).astype(np.float32)
        self.b = np.full(m, s.init_bias if s.use_bias else 0.0, dtype=np.float32)
        self.lr = np.repeat(models.learning_rate, self.c).astype(np.float32)
        self.wd = np.repeat(models.wd, self.c).astype(np.float32)
        self.l1 = np.repeat(models.l1, self.c).astype(np.float32)
        self.weight_state = _Optimizer(s, self.w.shape)
        self.bias_state = _Optimizer(s, self.b.shape)
        self.best_weights = self.w.copy()
        self.best_bias = self.b.copy()
        self.best_loss = np.full(self.k, np.inf)
        # Label-unit knobs, in the normalised units the labels have during training.
        self.params = losses.LossParams(
            s.margin, s.quantile, s.huber_delta / label_scale, s.loss_insensitivity / label_scale
        )

    def run(
        self,
        x: Any,
        y: Array,
        select_x: Any,
        select_y: Array,
        row_weights: Array | None,
        on_epoch: EpochHook | None,
    ) -> int:
        s = self.s
        n = x.shape[0]
        batch = max(1, min(s.mini_batch_size, n))
        step_every = s.lr_scheduler_step or math.ceil(n / batch)
        record, stale, step = np.inf, 0, 0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for epoch in range(s.epochs):
                order = self.rng.permutation(n)
                for start in range(0, n, batch):
                    rows = order[start : start + batch]
                    weights = None if row_weights is None else row_weights[rows]
                    self._step(x[rows], y[rows], weights, self._rates(step // step_every))
                    step += 1
                current = self._evaluate(select_x, select_y)
                if on_epoch is not None:
                    on_epoch(epoch, current)
                if record - current > s.early_stopping_tolerance * abs(record) or not np.isfinite(
                    record
                ):
                    record, stale = min(record, current), 0
                else:
                    stale += 1
                if stale >= s.early_stopping_patience:
                    return epoch + 1
        return s.epochs

    def _rates(self, decays: int) -> Array:
        s = self.s
        if not s.use_lr_scheduler or decays == 0:
            return self.lr
        floor = np.minimum(self.lr, np.float32(s.lr_scheduler_minimum_lr))
        decayed = self.lr * np.float32(s.lr_scheduler_factor**decays)
        out: Array = np.maximum(decayed, floor)
        return out

    def _outputs(self, x: Any) -> Array:
        z = np.asarray(x @ self.w)
        if self.s.use_bias:
            z += self.b
        return z.reshape(z.shape[0], self.k, self.c) if self.c > 1 else z

    def _step(self, x: Any, y: Array, row_weights: Array | None, lr: Array) -> None:
        s = self.s
        rows = x.shape[0]
        g = losses.gradient(s.loss, self._outputs(x), y, self.params)
        g = self._weigh(g, y, row_weights)
        g = g.reshape(rows, -1)
        grad_w = np.asarray(x.T @ g)
        grad_w *= np.float32(1.0 / rows)
        if self.models.wd.any():
            grad_w += self.wd * self.w
        self.weight_state.step(self.w, grad_w, lr)
        if self.models.l1.any():
            shrink = lr * self.l1
            np.copyto(self.w, np.sign(self.w) * np.maximum(np.abs(self.w) - shrink, 0.0))
        if s.use_bias:
            grad_b = g.sum(axis=0) * np.float32(1.0 / rows)
            if s.bias_wd_mult:
                grad_b += np.float32(s.bias_wd_mult) * self.wd * self.b
            self.bias_state.step(self.b, grad_b, lr * np.float32(s.bias_lr_mult))

    def _weigh(self, g: Array, y: Array, row_weights: Array | None) -> Array:
        if row_weights is not None:
            g *= row_weights[:, None, None] if g.ndim == 3 else row_weights[:, None]
        weight = self.models.positive_weight
        if self.s.is_binary and np.any(weight != 1.0):
            g *= np.where(y[:, None] == 1, weight[None, :], 1.0).astype(np.float32)
        return g

    def _evaluate(self, x: Any, y: Array) -> float:
        """Each model's mean loss on the selection rows; keeps each model's best weights;
        returns the best model's loss."""
        loss = losses.values(self.s.loss, self._outputs(x), y, self.params).mean(axis=0)
        loss = np.where(np.isfinite(loss), loss, np.inf)
        better = loss < self.best_loss
        if better.any():
            columns = np.repeat(better, self.c)
            self.best_weights[:, columns] = self.w[:, columns]
            self.best_bias[columns] = self.b[columns]
            self.best_loss = np.where(better, loss, self.best_loss)
        return float(loss.min())


class _Optimizer:
    """One parameter's optimiser state; `step` updates the parameter in place."""

    def __init__(self, s: Settings, shape: tuple[int, ...]) -> None:
        self.kind = s.optimizer
        self.beta_1, self.beta_2, self.momentum = s.beta_1, s.beta_2, s.momentum
        self.first = np.zeros(shape, dtype=np.float32)
        self.second = np.zeros(shape, dtype=np.float32)
        self.t = 0

    def step(self, param: Array, grad: Array, lr: Array) -> None:
        self.t += 1
        if self.kind == "adam":
            b1, b2 = self.beta_1, self.beta_2
            self.first *= np.float32(b1)
            self.first += np.float32(1.0 - b1) * grad
            self.second *= np.float32(b2)
            self.second += np.float32(1.0 - b2) * grad * grad
            correction = math.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
            param -= (lr * np.float32(correction)) * self.first / (np.sqrt(self.second) + EPSILON)
        elif self.kind == "rmsprop":
            self.second *= np.float32(RMSPROP_DECAY)
            self.second += np.float32(1.0 - RMSPROP_DECAY) * grad * grad
            param -= lr * grad / (np.sqrt(self.second) + EPSILON)
        else:
            self.first *= np.float32(self.momentum)
            self.first += grad
            param -= lr * self.first


def _fold(weights: Array, bias: Array, scaler: Scaler) -> tuple[Array, Array]:
    """Weights for raw features and labels, from weights trained on normalised ones."""
    w = weights.astype(np.float64)
    raw_w = w / scaler.scale[:, None] * scaler.label_scale
    raw_b = (bias.astype(np.float64) - (scaler.mean / scaler.scale) @ w) * scaler.label_scale
    return raw_w, raw_b + scaler.label_mean


def _choose(
    s: Settings, models: Grid, weights: Array, bias: Array, x: Any, y: Array
) -> tuple[LinearModel, float]:
    """The best model on the selection rows, in raw units, with its calibrated threshold."""
    k, c = len(models), s.outputs
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.asarray(x @ weights, dtype=np.float64) + bias
        shaped = z.reshape(len(y), k, c) if c > 1 else z
        loss = losses.values(
            s.loss,
            shaped,
            y,
            losses.LossParams(s.margin, s.quantile, s.huber_delta, s.loss_insensitivity),
        ).mean(axis=0)
    loss = np.where(np.isfinite(loss), loss, np.inf)
    thresholds = np.full(k, 0.5 if s.loss == "logistic" else 0.0)
    if s.is_binary and s.selection_criterion != "loss_function":
        scores = np.nan_to_num(losses.scores(s.loss, z))
        thresholds, value = evaluate.calibrate(
            scores, y, s.selection_criterion, s.f_beta, s.target_precision, s.target_recall
        )
        best = int(np.lexsort((loss, -value))[0])
    else:
        best = int(np.argmin(loss))
    columns = slice(best * c, (best + 1) * c)
    model = LinearModel(
        predictor_type=s.predictor_type,
        loss=s.loss,
        weights=weights[:, columns].copy(),
        bias=bias[columns].copy(),
        threshold=float(thresholds[best]),
        info={"model": best, "models": k, **models.describe(best)},
    )
    return model, float(loss[best])
