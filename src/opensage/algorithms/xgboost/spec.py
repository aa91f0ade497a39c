"""The XGBoost built-in on the algorithm contract: its table, metrics, channels and types."""

from __future__ import annotations

from typing import Final

from opensage.algorithms.base import (
    CSV,
    JSON,
    JSONLINES,
    RECORDIO,
    Algorithm,
    ChannelSpec,
    Direction,
    Metric,
)
from opensage.algorithms.xgboost import metrics
from opensage.algorithms.xgboost.hyperparameters import TABLE

LIBSVM: Final = "text/libsvm"
_TYPES: Final = (LIBSVM, CSV, RECORDIO)


def _metrics() -> tuple[Metric, ...]:
    tunable: dict[str, Direction] = {
        name: "Maximize" if direction == "Maximize" else "Minimize"
        for name, direction in metrics.tunable_objectives().items()
    }
    return tuple(
        Metric(d["Name"], d["Regex"], tunable.get(d["Name"])) for d in metrics.metric_definitions()
    )


SPEC: Final = Algorithm(
    name="xgboost",
    title="XGBoost",
    repositories=("sagemaker-xgboost", "xgboost"),
    hyperparameters=TABLE,
    metrics=_metrics(),
    channels=(
        ChannelSpec("train", required=True, content_types=_TYPES),
        ChannelSpec("validation", content_types=_TYPES),
    ),
    default_content_type=LIBSVM,
    request_types=(CSV, LIBSVM, RECORDIO),
    accept_types=(CSV, JSON, JSONLINES, RECORDIO),
    default_accept=CSV,
)
