"""The Linear Learner built-in on the algorithm contract: its table, metrics, channels and types
(spec algorithms §2). Plain data: the API server imports it to check a CreateTrainingJob."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    AT_LEAST_1,
    NON_NEGATIVE,
    OPEN_UNIT,
    POSITIVE,
    Algorithm,
    ChannelSpec,
    Direction,
    Hyperparameter,
    HyperparameterError,
    HyperparameterTable,
    Interval,
    Kind,
    Metric,
    Value,
    quality_metric,
)

BINARY: Final = "binary_classifier"
MULTICLASS: Final = "multiclass_classifier"
REGRESSOR: Final = "regressor"
PREDICTOR_TYPES: Final = (BINARY, MULTICLASS, REGRESSOR)

REGRESSION_LOSSES: Final = (
    "squared_loss",
    "absolute_loss",
    "eps_insensitive_squared_loss",
    "eps_insensitive_absolute_loss",
    "quantile_loss",
    "huber_loss",
)
LOSSES_BY_TYPE: Final[Mapping[str, tuple[str, ...]]] = {
    REGRESSOR: REGRESSION_LOSSES,
    BINARY: ("logistic", "hinge_loss"),
    MULTICLASS: ("softmax_loss",),
}
AUTO_LOSS: Final[Mapping[str, str]] = {
    REGRESSOR: "squared_loss",
    BINARY: "logistic",
    MULTICLASS: "softmax_loss",
}
SELECTION_CRITERIA: Final = (
    "accuracy",
    "f_beta",
    "precision_at_target_recall",
    "recall_at_target_precision",
    "loss_function",
    "f1",
    "cross_entropy_loss",
)
HALF_OPEN_UNIT: Final = Interval(0, 1, high_open=True)


_ROWS: Final = (
    Hyperparameter("predictor_type", Kind.CHOICE, options=PREDICTOR_TYPES, required=True),
    Hyperparameter("num_classes", Kind.INT, interval=Interval(3, 1_000_000)),
    Hyperparameter("feature_dim", Kind.INT, "auto", interval=AT_LEAST_1, auto=True),
    Hyperparameter("accuracy_top_k", Kind.INT, "3", interval=Interval(1, 1_000_000)),
    Hyperparameter("balance_multiclass_weights", Kind.BOOL, "false"),
    Hyperparameter("beta_1", Kind.FLOAT, "auto", interval=HALF_OPEN_UNIT, auto=True),
    Hyperparameter("beta_2", Kind.FLOAT, "auto", interval=HALF_OPEN_UNIT, auto=True),
    Hyperparameter("bias_lr_mult", Kind.FLOAT, "auto", interval=POSITIVE, auto=True),
    Hyperparameter("bias_wd_mult", Kind.FLOAT, "auto", interval=NON_NEGATIVE, auto=True),
    Hyperparameter(
        "binary_classifier_model_selection_criteria",
        Kind.CHOICE,
        "accuracy",
        options=SELECTION_CRITERIA,
    ),
    Hyperparameter("early_stopping_patience", Kind.INT, "3", interval=AT_LEAST_1),
    Hyperparameter("early_stopping_tolerance", Kind.FLOAT, "0.001", interval=POSITIVE),
    Hyperparameter("epochs", Kind.INT, "15", interval=AT_LEAST_1),
    Hyperparameter("f_beta", Kind.FLOAT, "1.0", interval=POSITIVE),
    Hyperparameter("huber_delta", Kind.FLOAT, "1.0", interval=NON_NEGATIVE),
    Hyperparameter("init_bias", Kind.FLOAT, "0"),
    Hyperparameter("init_method", Kind.CHOICE, "uniform", options=("uniform", "normal")),
    Hyperparameter("init_scale", Kind.FLOAT, "0.07", interval=POSITIVE),
    Hyperparameter("init_sigma", Kind.FLOAT, "0.01", interval=POSITIVE),
    Hyperparameter("l1", Kind.FLOAT, "auto", interval=NON_NEGATIVE, auto=True),
    Hyperparameter("wd", Kind.FLOAT, "auto", interval=NON_NEGATIVE, auto=True),
    Hyperparameter("learning_rate", Kind.FLOAT, "auto", interval=POSITIVE, auto=True),
    Hyperparameter(
        "loss",
        Kind.CHOICE,
        "auto",
        options=("auto", *AUTO_LOSS.values(), *REGRESSION_LOSSES[1:], "hinge_loss"),
    ),
    Hyperparameter("loss_insensitivity", Kind.FLOAT, "0.01", interval=POSITIVE),
    Hyperparameter("lr_scheduler_factor", Kind.FLOAT, "auto", interval=OPEN_UNIT, auto=True),
    Hyperparameter("lr_scheduler_step", Kind.INT, "auto", interval=AT_LEAST_1, auto=True),
    Hyperparameter("lr_scheduler_minimum_lr", Kind.FLOAT, "auto", interval=POSITIVE, auto=True),
    Hyperparameter("margin", Kind.FLOAT, "1.0", interval=NON_NEGATIVE),
    Hyperparameter("mini_batch_size", Kind.INT, "1000", interval=AT_LEAST_1),
    Hyperparameter("momentum", Kind.FLOAT, "auto", interval=HALF_OPEN_UNIT, auto=True),
    Hyperparameter("normalize_data", Kind.BOOL, "true", auto=True),
    Hyperparameter("normalize_label", Kind.BOOL, "auto", auto=True),
    Hyperparameter("num_calibration_samples", Kind.INT, "auto", interval=AT_LEAST_1, auto=True),
    Hyperparameter("num_models", Kind.INT, "auto", interval=AT_LEAST_1, auto=True),
    Hyperparameter("num_point_for_scaler", Kind.INT, "10000", interval=AT_LEAST_1),
    Hyperparameter("optimizer", Kind.CHOICE, "auto", options=("sgd", "adam", "rmsprop"), auto=True),
    Hyperparameter("positive_example_weight_mult", Kind.TEXT, "1.0"),
    Hyperparameter("quantile", Kind.FLOAT, "0.5", interval=OPEN_UNIT),
    Hyperparameter("target_precision", Kind.FLOAT, "0.8", interval=OPEN_UNIT),
    Hyperparameter("target_recall", Kind.FLOAT, "0.8", interval=OPEN_UNIT),
    Hyperparameter("unbias_data", Kind.BOOL, "auto", auto=True),
    Hyperparameter("unbias_label", Kind.BOOL, "auto", auto=True),
    Hyperparameter("use_bias", Kind.BOOL, "true"),
    Hyperparameter("use_lr_scheduler", Kind.BOOL, "true"),
)


def _num_classes_for_multiclass(values: Mapping[str, Value]) -> None:
    if values.get("predictor_type") == MULTICLASS and "num_classes" not in values:
        raise HyperparameterError("num_classes", "is required when predictor_type is " + MULTICLASS)


def _loss_fits_predictor(values: Mapping[str, Value]) -> None:
    loss, kind = values.get("loss", "auto"), values.get("predictor_type")
    if loss == "auto" or not isinstance(kind, str) or kind not in LOSSES_BY_TYPE:
        return
    allowed = LOSSES_BY_TYPE[kind]
    if loss not in allowed:
        raise HyperparameterError(
            "loss",
            f"'{loss}' does not fit predictor_type {kind}; use auto or: {', '.join(allowed)}",
        )


def positive_weight(text: str) -> float | str:
    """`positive_example_weight_mult`: a number > 0, `balanced` or `auto`; ValueError if not."""
    value = text.strip().lower()
    if value in ("balanced", "auto"):
        return value
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(value)
    return number


def _positive_weight_is_valid(values: Mapping[str, Value]) -> None:
    raw = values.get("positive_example_weight_mult")
    if raw is None:
        return
    try:
        positive_weight(str(raw))
    except ValueError:
        raise HyperparameterError(
            "positive_example_weight_mult", "is not a number > 0, 'balanced' or 'auto'", str(raw)
        ) from None


def _unbias_needs_bias(values: Mapping[str, Value]) -> None:
    if values.get("use_bias", True) is not False:
        return
    for name in ("unbias_data", "unbias_label"):
        if values.get(name) is True:
            raise HyperparameterError(name, "=true needs use_bias=true (centring moves the bias)")


TABLE: Final = HyperparameterTable(
    "Linear Learner",
    _ROWS,
    checks=(
        _num_classes_for_multiclass,
        _loss_fits_predictor,
        _positive_weight_is_valid,
        _unbias_needs_bias,
    ),
)

_MINIMIZED: Final = ("objective_loss", "mse", "absolute_loss")
_MAXIMIZED: Final = (
    "binary_classification_accuracy",
    "binary_f_beta",
    "precision",
    "recall",
    "roc_auc_score",
    "multiclass_accuracy",
    "multiclass_top_k_accuracy",
    "macro_f_beta",
    "macro_precision",
    "macro_recall",
    "dcg",
)


def _metrics() -> tuple[Metric, ...]:
    out: list[Metric] = []
    for channel in ("test", "validation"):
        directions: list[tuple[str, Direction]] = [(name, "Minimize") for name in _MINIMIZED]
        if channel == "validation":
            directions.append(("rmse", "Minimize"))
        directions += [(name, "Maximize") for name in _MAXIMIZED]
        out += [quality_metric(channel, name, direction) for name, direction in directions]
    return tuple(out)


SPEC: Final = Algorithm(
    name="linear_learner",
    title="Linear Learner",
    repositories=("linear-learner",),
    hyperparameters=TABLE,
    metrics=_metrics(),
    channels=(
        ChannelSpec("train", required=True),
        ChannelSpec("validation"),
        ChannelSpec("test"),
    ),
)
