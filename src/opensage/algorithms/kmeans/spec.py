"""The K-Means built-in on the algorithm contract: its table, metrics, channels and types
(spec algorithms §4). Plain data: the API server imports it to validate CreateTrainingJob."""

from __future__ import annotations

from typing import Final

from opensage.algorithms.base import (
    AT_LEAST_1,
    CSV,
    JSON,
    JSONLINES,
    NON_NEGATIVE,
    RECORDIO,
    UNIT,
    Algorithm,
    ChannelSpec,
    Hyperparameter,
    HyperparameterTable,
    Interval,
    Kind,
    quality_metric,
)

INIT_METHODS: Final = ("random", "kmeans++")
EVAL_METRICS: Final = ("msd", "ssd")

TABLE: Final = HyperparameterTable(
    "K-Means algorithm",
    (
        Hyperparameter("feature_dim", Kind.INT, interval=AT_LEAST_1, required=True),
        Hyperparameter("k", Kind.INT, interval=AT_LEAST_1, required=True),
        Hyperparameter("epochs", Kind.INT, "1", AT_LEAST_1, tunable_range=Interval(1, 10)),
        Hyperparameter("eval_metrics", Kind.LIST, '["msd"]', options=EVAL_METRICS),
        Hyperparameter(
            "extra_center_factor",
            Kind.INT,
            "auto",
            AT_LEAST_1,
            auto=True,
            tunable_range=Interval(4, 10),
        ),
        # undocumented, but the SageMaker SDK's KMeans always sends force_dense=True (to fit on
        # Record objects); records are always read dense here, so it changes nothing
        Hyperparameter("force_dense", Kind.BOOL, "true"),
        Hyperparameter("half_life_time_size", Kind.INT, "0", NON_NEGATIVE),
        Hyperparameter("init_method", Kind.CHOICE, "random", options=INIT_METHODS),
        Hyperparameter("local_lloyd_init_method", Kind.CHOICE, "kmeans++", options=INIT_METHODS),
        Hyperparameter("local_lloyd_max_iter", Kind.INT, "300", AT_LEAST_1),
        Hyperparameter("local_lloyd_num_trials", Kind.INT, "auto", AT_LEAST_1, auto=True),
        Hyperparameter("local_lloyd_tol", Kind.FLOAT, "0.0001", UNIT),
        Hyperparameter(
            "mini_batch_size", Kind.INT, "5000", AT_LEAST_1, tunable_range=Interval(3000, 15000)
        ),
    ),
)

SPEC: Final = Algorithm(
    name="kmeans",
    title="K-Means",
    repositories=("kmeans",),
    hyperparameters=TABLE,
    metrics=(
        quality_metric("test", "msd", "Minimize"),
        quality_metric("test", "ssd", "Minimize"),
        quality_metric("train", "msd", None),
    ),
    channels=(
        ChannelSpec("train", required=True, csv_label_size=0),
        ChannelSpec("test", csv_label_size=0),
    ),
    default_content_type=RECORDIO,
    request_types=(CSV, JSON, JSONLINES, RECORDIO),
    accept_types=(JSON, JSONLINES, RECORDIO, CSV),
    default_accept=JSON,
)
