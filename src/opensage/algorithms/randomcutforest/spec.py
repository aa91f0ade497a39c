"""The Random Cut Forest built-in on the algorithm contract: its table, metrics, channels and
types (spec algorithms §8). Plain data: the API server imports it to check a CreateTrainingJob.
"""

from __future__ import annotations

from typing import Final

from opensage.algorithms.base import (
    AT_LEAST_1,
    CSV,
    JSON,
    JSONLINES,
    RECORDIO,
    Algorithm,
    ChannelSpec,
    Hyperparameter,
    HyperparameterTable,
    Interval,
    Kind,
    Metric,
    quality_metric,
)

ACCURACY: Final = "accuracy"
PRECISION_RECALL_FSCORE: Final = "precision_recall_fscore"
EVAL_METRICS: Final = (ACCURACY, PRECISION_RECALL_FSCORE)
SAMPLES: Final = Interval(1, 2048)
TREES: Final = Interval(50, 1000)

TABLE: Final = HyperparameterTable(
    "Random Cut Forest algorithm",
    (
        Hyperparameter("feature_dim", Kind.INT, interval=Interval(1, 10_000), required=True),
        Hyperparameter("num_samples_per_tree", Kind.INT, "256", SAMPLES, tunable_range=SAMPLES),
        Hyperparameter("num_trees", Kind.INT, "100", TREES, tunable_range=TREES),
        Hyperparameter(
            "eval_metrics",
            Kind.LIST,
            '["accuracy", "precision_recall_fscore"]',
            options=EVAL_METRICS,
        ),
        # The SDK always sends 1000; the algorithm reads the channel in blocks of that many rows.
        Hyperparameter("mini_batch_size", Kind.INT, "1000", interval=AT_LEAST_1),
    ),
)


def _logged_only(name: str) -> Metric:
    """A maximised metric logged as `<score>` that a tuning job cannot use as its objective."""
    metric = quality_metric("test", name, "Maximize")
    return Metric(metric.name, metric.regex, None)


SPEC: Final = Algorithm(
    name="randomcutforest",
    title="Random Cut Forest",
    repositories=("randomcutforest",),
    hyperparameters=TABLE,
    metrics=(
        quality_metric("test", "f1", "Maximize"),
        _logged_only("accuracy"),
        _logged_only("precision"),
        _logged_only("recall"),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=(RECORDIO, CSV), csv_label_size=0),
        ChannelSpec("test", content_types=(RECORDIO, CSV), csv_label_size=1),
    ),
    default_content_type=RECORDIO,
    request_types=(CSV, JSON, JSONLINES, RECORDIO),
    accept_types=(JSON, JSONLINES, RECORDIO),
    default_accept=JSON,
)
