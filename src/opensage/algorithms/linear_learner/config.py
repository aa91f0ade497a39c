"""The training settings: the hyperparameter table's typed values with every `auto` that does not
depend on the data resolved, so the core (`core.fit`) reads plain numbers.

`None` stays where `auto` means "search over it" (learning rate, `wd`, `l1`, the number of
models) or "decide from the data" (normalisation of sparse data, the calibration sample).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from opensage.algorithms.base import AUTO, TUNING_OBJECTIVE, Value
from opensage.algorithms.linear_learner.spec import (
    AUTO_LOSS,
    BINARY,
    MULTICLASS,
    REGRESSOR,
    TABLE,
    positive_weight,
)

BASE_LEARNING_RATE: Final = {"adam": 0.01, "rmsprop": 0.01, "sgd": 0.05}
"""`learning_rate=auto`: the first model's rate; the others search around it (core.grid)."""
AUTO_MOMENTUM: Final = {"sgd": 0.9}
AUTO_LR_FACTOR: Final = 0.9
AUTO_MINIMUM_LR: Final = 1e-6
AUTO_CALIBRATION_SAMPLES: Final = 20_000
CRITERION_ALIASES: Final = {"f1": "f_beta", "cross_entropy_loss": "loss_function"}


@dataclass(frozen=True)
class Settings:
    """Everything `core.fit` needs. Numbers in the user's units: `huber_delta` and
    `loss_insensitivity` are label units even when labels are normalised for training."""

    predictor_type: str
    num_classes: int = 1
    loss: str = ""
    optimizer: str = "adam"
    epochs: int = 15
    mini_batch_size: int = 1000
    learning_rate: float | None = None
    wd: float | None = None
    l1: float | None = None
    num_models: int | None = None
    beta_1: float = 0.9
    beta_2: float = 0.999
    momentum: float = 0.0
    use_bias: bool = True
    bias_lr_mult: float = 1.0
    bias_wd_mult: float = 0.0
    init_method: str = "uniform"
    init_scale: float = 0.07
    init_sigma: float = 0.01
    init_bias: float = 0.0
    use_lr_scheduler: bool = True
    lr_scheduler_step: int | None = None
    lr_scheduler_factor: float = AUTO_LR_FACTOR
    lr_scheduler_minimum_lr: float = AUTO_MINIMUM_LR
    normalize_data: bool = True
    normalize_label: bool | None = None
    unbias_data: bool | None = None
    unbias_label: bool | None = None
    num_point_for_scaler: int = 10_000
    positive_example_weight_mult: float | str = 1.0
    balance_multiclass_weights: bool = False
    margin: float = 1.0
    quantile: float = 0.5
    huber_delta: float = 1.0
    loss_insensitivity: float = 0.01
    early_stopping_patience: int = 3
    early_stopping_tolerance: float = 0.001
    selection_criterion: str = "accuracy"
    f_beta: float = 1.0
    target_precision: float = 0.8
    target_recall: float = 0.8
    num_calibration_samples: int = AUTO_CALIBRATION_SAMPLES
    accuracy_top_k: int = 3
    feature_dim: int | None = None

    def __post_init__(self) -> None:
        if not self.loss:
            object.__setattr__(self, "loss", AUTO_LOSS[self.predictor_type])

    @property
    def outputs(self) -> int:
        """Columns of one model: the class count for multiclass, else 1."""
        return self.num_classes if self.predictor_type == MULTICLASS else 1

    @property
    def is_binary(self) -> bool:
        return self.predictor_type == BINARY

    @property
    def is_regressor(self) -> bool:
        return self.predictor_type == REGRESSOR

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def settings(raw: Mapping[str, object]) -> Settings:
    """Settings from a `hyperparameters.json` map (validated by the table)."""
    return from_values(TABLE.resolved(raw))


def from_values(values: Mapping[str, Value]) -> Settings:
    """Settings from the table's resolved values (`TrainingEnv.hyperparameters`)."""
    kind = str(values["predictor_type"])
    optimizer = str(values.get("optimizer", AUTO)).replace(AUTO, "adam")
    loss = str(values.get("loss", AUTO))
    criterion = str(values.get("binary_classifier_model_selection_criteria", "accuracy"))
    num_models = _optional_int(values, "num_models")
    if TUNING_OBJECTIVE in values:
        num_models = 1  # a tuning job searches itself; SageMaker forces one model
    return Settings(
        predictor_type=kind,
        num_classes=_int(values, "num_classes", 1) if kind == MULTICLASS else 1,
        loss="" if loss == AUTO else loss,
        optimizer=optimizer,
        epochs=_int(values, "epochs", 15),
        mini_batch_size=_int(values, "mini_batch_size", 1000),
        learning_rate=_optional_float(values, "learning_rate"),
        wd=_optional_float(values, "wd"),
        l1=_optional_float(values, "l1"),
        num_models=num_models,
        beta_1=_float(values, "beta_1", 0.9),
        beta_2=_float(values, "beta_2", 0.999),
        momentum=_float(values, "momentum", AUTO_MOMENTUM.get(optimizer, 0.0)),
        use_bias=bool(values.get("use_bias", True)),
        bias_lr_mult=_float(values, "bias_lr_mult", 1.0),
        bias_wd_mult=_float(values, "bias_wd_mult", 0.0),
        init_method=str(values.get("init_method", "uniform")),
        init_scale=_float(values, "init_scale", 0.07),
        init_sigma=_float(values, "init_sigma", 0.01),
        init_bias=_float(values, "init_bias", 0.0),
        use_lr_scheduler=bool(values.get("use_lr_scheduler", True)),
        lr_scheduler_step=_optional_int(values, "lr_scheduler_step"),
        lr_scheduler_factor=_float(values, "lr_scheduler_factor", AUTO_LR_FACTOR),
        lr_scheduler_minimum_lr=_float(values, "lr_scheduler_minimum_lr", AUTO_MINIMUM_LR),
        normalize_data=values.get("normalize_data", True) is not False,
        normalize_label=_optional_bool(values, "normalize_label"),
        unbias_data=_optional_bool(values, "unbias_data"),
        unbias_label=_optional_bool(values, "unbias_label"),
        num_point_for_scaler=_int(values, "num_point_for_scaler", 10_000),
        positive_example_weight_mult=positive_weight(
            str(values.get("positive_example_weight_mult", "1.0"))
        ),
        balance_multiclass_weights=bool(values.get("balance_multiclass_weights", False)),
        margin=_float(values, "margin", 1.0),
        quantile=_float(values, "quantile", 0.5),
        huber_delta=_float(values, "huber_delta", 1.0),
        loss_insensitivity=_float(values, "loss_insensitivity", 0.01),
        early_stopping_patience=_int(values, "early_stopping_patience", 3),
        early_stopping_tolerance=_float(values, "early_stopping_tolerance", 0.001),
        selection_criterion=CRITERION_ALIASES.get(criterion, criterion),
        f_beta=_float(values, "f_beta", 1.0),
        target_precision=_float(values, "target_precision", 0.8),
        target_recall=_float(values, "target_recall", 0.8),
        num_calibration_samples=_int(values, "num_calibration_samples", AUTO_CALIBRATION_SAMPLES),
        accuracy_top_k=_int(values, "accuracy_top_k", 3),
        feature_dim=_optional_int(values, "feature_dim"),
    )


def _float(values: Mapping[str, Value], name: str, default: float) -> float:
    """The number given, or `default` where it is absent or `auto`."""
    value = values.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _int(values: Mapping[str, Value], name: str, default: int) -> int:
    return int(_float(values, name, default))


def _optional_float(values: Mapping[str, Value], name: str) -> float | None:
    value = values.get(name, AUTO)
    return None if value == AUTO else _float(values, name, 0.0)


def _optional_int(values: Mapping[str, Value], name: str) -> int | None:
    value = values.get(name, AUTO)
    return None if value == AUTO else _int(values, name, 0)


def _optional_bool(values: Mapping[str, Value], name: str) -> bool | None:
    value = values.get(name, AUTO)
    return None if value == AUTO else bool(value)
