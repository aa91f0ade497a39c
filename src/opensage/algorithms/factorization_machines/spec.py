"""The Factorization Machines built-in on the algorithm contract: its table, metrics, channels
and content types (spec algorithms §7). Plain data: the API server imports it to check a
CreateTrainingJob before any process starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    AT_LEAST_1,
    JSON,
    JSONLINES,
    NON_NEGATIVE,
    POSITIVE,
    RECORDIO,
    Algorithm,
    ChannelSpec,
    Hyperparameter,
    HyperparameterError,
    HyperparameterTable,
    Interval,
    Kind,
    Value,
    quality_metric,
)

BINARY: Final = "binary_classifier"
REGRESSOR: Final = "regressor"
PREDICTOR_TYPES: Final = (BINARY, REGRESSOR)
TERMS: Final = ("bias", "linear", "factors")
"""The three parameter groups: w0, w (one per feature) and V (num_factors per feature)."""
INIT_METHODS: Final = ("normal", "uniform", "constant")

_LR: Final = {"bias": "0.1", "linear": "0.001", "factors": "0.0001"}
_WD: Final = {"bias": "0.01", "linear": "0.001", "factors": "0.00001"}
_SIGMA: Final = {"bias": "0.01", "linear": "0.01", "factors": "0.001"}
_TUNING: Final = Interval(1e-8, 512)
"""The documented tuning range of every learning rate, weight decay and initial value."""


def _term_rows(term: str) -> tuple[Hyperparameter, ...]:
    return (
        Hyperparameter(f"{term}_lr", Kind.FLOAT, _LR[term], NON_NEGATIVE, tunable_range=_TUNING),
        Hyperparameter(f"{term}_wd", Kind.FLOAT, _WD[term], NON_NEGATIVE, tunable_range=_TUNING),
        Hyperparameter(f"{term}_init_method", Kind.CHOICE, "normal", options=INIT_METHODS),
        Hyperparameter(
            f"{term}_init_sigma", Kind.FLOAT, _SIGMA[term], NON_NEGATIVE, tunable_range=_TUNING
        ),
        Hyperparameter(f"{term}_init_scale", Kind.FLOAT, interval=NON_NEGATIVE),
        Hyperparameter(f"{term}_init_value", Kind.FLOAT),
    )


_ROWS: Final = (
    Hyperparameter("feature_dim", Kind.INT, interval=AT_LEAST_1, required=True),
    Hyperparameter("num_factors", Kind.INT, interval=AT_LEAST_1, required=True),
    Hyperparameter("predictor_type", Kind.CHOICE, options=PREDICTOR_TYPES, required=True),
    Hyperparameter("epochs", Kind.INT, "1", AT_LEAST_1, tunable_range=Interval(1, 1000)),
    Hyperparameter(
        "mini_batch_size", Kind.INT, "1000", AT_LEAST_1, tunable_range=Interval(100, 10_000)
    ),
    *(row for term in TERMS for row in _term_rows(term)),
    Hyperparameter("clip_gradient", Kind.FLOAT, interval=POSITIVE),
    Hyperparameter("eps", Kind.FLOAT, interval=POSITIVE),
    Hyperparameter("rescale_grad", Kind.FLOAT, interval=POSITIVE),
)


def _init_needs_its_setting(values: Mapping[str, Value]) -> None:
    """`uniform` draws from [-scale, scale] and `constant` sets one value: neither has a
    documented default, so a job that names the method must give its setting."""
    for term in TERMS:
        method = values.get(f"{term}_init_method", "normal")
        needed = {"uniform": "init_scale", "constant": "init_value"}.get(str(method))
        if needed is not None and f"{term}_{needed}" not in values:
            raise HyperparameterError(
                f"{term}_{needed}", f"is required when {term}_init_method is {method}"
            )


TABLE: Final = HyperparameterTable(
    "Factorization Machines algorithm", _ROWS, checks=(_init_needs_its_setting,)
)

SPEC: Final = Algorithm(
    name="factorization_machines",
    title="Factorization Machines",
    repositories=("factorization-machines",),
    hyperparameters=TABLE,
    metrics=(
        quality_metric("test", "rmse", "Minimize"),
        quality_metric("test", "binary_classification_accuracy", "Maximize"),
        quality_metric("test", "binary_classification_cross_entropy", "Minimize"),
        quality_metric("test", "binary_f_beta", "Maximize"),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=(RECORDIO,)),
        ChannelSpec("test", content_types=(RECORDIO,)),
    ),
    request_types=(JSON, JSONLINES, RECORDIO),
    accept_types=(JSON, JSONLINES, RECORDIO),
)
