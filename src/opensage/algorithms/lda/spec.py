"""The LDA built-in on the algorithm contract: its table, metric, channels and content types
(spec algorithms §11). Plain data: the API server imports it to validate CreateTrainingJob."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    AT_LEAST_1,
    CSV,
    JSON,
    JSONLINES,
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


def _topics_fit_vocabulary(values: Mapping[str, Value]) -> None:
    """The spectral method finds at most `feature_dim` topics (the rank of the word
    co-occurrence matrix); asking for more is refused before a job starts."""
    k, d = values.get("num_topics"), values.get("feature_dim")
    if isinstance(k, int) and isinstance(d, int) and k > d:
        raise HyperparameterError("num_topics", f"({k}) must not exceed feature_dim ({d})", None)


TABLE: Final = HyperparameterTable(
    "LDA algorithm",
    (
        Hyperparameter(
            "num_topics",
            Kind.INT,
            interval=AT_LEAST_1,
            required=True,
            tunable_range=Interval(1, 150),
        ),
        Hyperparameter("feature_dim", Kind.INT, interval=AT_LEAST_1, required=True),
        Hyperparameter("mini_batch_size", Kind.INT, interval=AT_LEAST_1, required=True),
        Hyperparameter("alpha0", Kind.FLOAT, "1.0", POSITIVE, tunable_range=Interval(0.1, 10)),
        Hyperparameter("max_restarts", Kind.INT, "10", AT_LEAST_1),
        Hyperparameter("max_iterations", Kind.INT, "1000", AT_LEAST_1),
        Hyperparameter("tol", Kind.FLOAT, "1e-8", POSITIVE),
    ),
    checks=(_topics_fit_vocabulary,),
)

SPEC: Final = Algorithm(
    name="lda",
    title="LDA",
    repositories=("lda",),
    hyperparameters=TABLE,
    metrics=(quality_metric("test", "pwll", "Maximize"),),
    channels=(
        ChannelSpec("train", required=True, csv_label_size=0),
        ChannelSpec("test", csv_label_size=0),
    ),
    default_content_type=RECORDIO,
    request_types=(CSV, JSON, JSONLINES, RECORDIO),
    accept_types=(JSON, JSONLINES, RECORDIO),
    default_accept=JSON,
)
