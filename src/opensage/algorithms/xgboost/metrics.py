"""XGBoost metric names, the regexes that scrape them from the log, and their tuning direction.

The training program prints one line per boosting round, exactly as xgboost's evaluation
monitor does: `[3]\\ttrain-rmse:0.41234\\tvalidation-rmse:0.45000`. The platform, like
CloudWatch, renders each tab as `#011`, so the regexes match `#011<channel>-<metric>:<value>`.
This module imports no ML library: the API layer uses it to fill `MetricDefinitions` and to
check a tuning job's objective.
"""

from __future__ import annotations

from typing import Final

MAXIMIZE: Final = (
    "accuracy",
    "auc",
    "aucpr",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "map",
    "ndcg",
    "precision",
    "precision_macro",
    "precision_micro",
    "r2",
    "recall",
    "recall_macro",
    "recall_micro",
)
"""Metrics where higher is better (the container's `XGB_MAXIMIZE_METRICS`)."""

MINIMIZE: Final = (
    "aft-nloglik",
    "cox-nloglik",
    "error",
    "gamma-deviance",
    "gamma-nloglik",
    "interval-regression-accuracy",
    "logloss",
    "mae",
    "mape",
    "merror",
    "mlogloss",
    "mphe",
    "mse",
    "poisson-nloglik",
    "rmse",
    "rmsle",
    "tweedie-nloglik",
)
"""Metrics where lower is better (the container's `XGB_MINIMIZE_METRICS`, kept as published)."""

METRIC_NAMES: Final = frozenset(MAXIMIZE + MINIMIZE)

CONTAINER_METRICS: Final = frozenset(
    {
        "accuracy",
        "balanced_accuracy",
        "f1",
        "f1_binary",
        "f1_macro",
        "mse",
        "precision",
        "precision_macro",
        "precision_micro",
        "r2",
        "recall",
        "recall_macro",
        "recall_micro",
    }
)
"""Metrics xgboost lacks, so the program computes them (`rmse` and `mae` are left to xgboost)."""

CLASSIFICATION_METRICS: Final = CONTAINER_METRICS - {"mse", "r2"}
BINARY_ONLY_METRICS: Final = frozenset({"f1_binary", "precision", "recall"})
THRESHOLD_METRICS: Final = frozenset({"error", "ndcg", "map"})
"""The metrics xgboost accepts with a `@t` suffix (`error@0.7`, `ndcg@5`)."""

CHANNELS: Final = ("train", "validation")
_NUMBER: Final = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def metric_regex(channel: str, metric: str) -> str:
    """The container's regex for one `<channel>-<metric>` value of a log line with `#011` tabs."""
    return rf".*\[[0-9]+\].*#011{channel}-{metric}:{_NUMBER}.*"


def metric_definitions() -> list[dict[str, str]]:
    """SageMaker `MetricDefinitions` for every metric, on both the train and validation sets."""
    return [
        {"Name": f"{channel}:{metric}", "Regex": metric_regex(channel, metric)}
        for channel in CHANNELS
        for metric in sorted(METRIC_NAMES)
    ]


def tunable_objectives() -> dict[str, str]:
    """`validation:<metric>` -> `Maximize` or `Minimize`: the objectives a tuning job may use."""
    return {
        f"validation:{metric}": "Maximize" if metric in MAXIMIZE else "Minimize"
        for metric in sorted(METRIC_NAMES)
    }


def base_metric(metric: str) -> str:
    """`error@0.7` -> `error`: the name without its threshold, which sets direction and checks."""
    return metric.split("@", 1)[0]


def is_maximized(metric: str) -> bool:
    """Whether higher is better, for early stopping on `metric` (threshold suffix allowed)."""
    return base_metric(metric) in MAXIMIZE


def objective_metric(tuning_objective: str | None) -> str | None:
    """The metric of a `_tuning_objective_metric` like `validation:auc`, if it is one we know."""
    if not tuning_objective:
        return None
    _, _, metric = tuning_objective.strip().rpartition(":")
    return metric if metric in METRIC_NAMES else None
