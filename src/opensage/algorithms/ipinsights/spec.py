"""The IP Insights built-in on the algorithm contract: its table, metric, channels and types
(spec algorithms §9). Plain data: the API server imports it to check a CreateTrainingJob."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    AT_LEAST_1,
    CSV,
    JSON,
    JSONLINES,
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

MAX_NEGATIVE_RATE: Final = 500
MAX_MODEL_BYTES: Final = 8 << 30
"""SageMaker's documented ceiling on the model size (8 GB); the entity table dominates it."""

_ROWS: Final = (
    Hyperparameter(
        "num_entity_vectors",
        Kind.INT,
        interval=Interval(1, 250_000_000),
        required=True,
        tunable_range=Interval(10_000, 1_000_000),
    ),
    Hyperparameter(
        "vector_dim",
        Kind.INT,
        interval=Interval(4, 4096),
        required=True,
        tunable_range=Interval(8, 256),
    ),
    Hyperparameter("batch_metrics_publish_interval", Kind.INT, "1000", interval=AT_LEAST_1),
    Hyperparameter("epochs", Kind.INT, "10", interval=AT_LEAST_1, tunable_range=Interval(1, 100)),
    Hyperparameter(
        "learning_rate",
        Kind.FLOAT,
        "0.001",
        interval=Interval(1e-6, 10),
        tunable_range=Interval(1e-4, 0.1),
    ),
    Hyperparameter(
        "mini_batch_size",
        Kind.INT,
        "10000",
        interval=Interval(1, 500_000),
        tunable_range=Interval(100, 50_000),
    ),
    Hyperparameter(
        "num_ip_encoder_layers",
        Kind.INT,
        "1",
        interval=Interval(0, 100),
        tunable_range=Interval(1, 10),
    ),
    Hyperparameter(
        "random_negative_sampling_rate",
        Kind.INT,
        "1",
        interval=Interval(0, MAX_NEGATIVE_RATE),
        tunable_range=Interval(0, 10),
    ),
    Hyperparameter(
        "shuffled_negative_sampling_rate",
        Kind.INT,
        "1",
        interval=Interval(0, MAX_NEGATIVE_RATE),
        tunable_range=Interval(0, 10),
    ),
    Hyperparameter(
        "weight_decay",
        Kind.FLOAT,
        "0.00001",
        interval=Interval(0, 10),
        tunable_range=Interval(0, 1),
    ),
)


def _some_negatives(values: Mapping[str, Value]) -> None:
    """Without negatives the discriminator has nothing to learn against; more than 500 per
    positive is SageMaker's ceiling (defaults count: each rate is 1 when not given)."""
    r = values.get("random_negative_sampling_rate", 1)
    s = values.get("shuffled_negative_sampling_rate", 1)
    if not isinstance(r, int) or not isinstance(s, int):
        return
    if not 1 <= r + s <= MAX_NEGATIVE_RATE:
        raise HyperparameterError(
            "random_negative_sampling_rate",
            f"({r}) plus 'shuffled_negative_sampling_rate' ({s}) must lie in "
            f"[1, {MAX_NEGATIVE_RATE}]: every positive needs at least one negative",
        )


def _model_fits(values: Mapping[str, Value]) -> None:
    """Refused before any process starts rather than after an out-of-memory kill."""
    n, d = values.get("num_entity_vectors"), values.get("vector_dim")
    if isinstance(n, int) and isinstance(d, int) and n * d * 4 > MAX_MODEL_BYTES:
        raise HyperparameterError(
            "num_entity_vectors",
            f"({n}) times vector_dim ({d}) makes an entity table of {n * d * 4 / 2**30:.1f} GiB; "
            "the model may hold at most 8 GiB",
        )


TABLE: Final = HyperparameterTable(
    "IP Insights algorithm", _ROWS, checks=(_some_negatives, _model_fits)
)

SPEC: Final = Algorithm(
    name="ipinsights",
    title="IP Insights",
    repositories=("ipinsights",),
    hyperparameters=TABLE,
    metrics=(quality_metric("validation", "discriminator_auc", "Maximize"),),
    channels=(
        ChannelSpec("train", required=True, content_types=(CSV,), csv_label_size=0),
        ChannelSpec("validation", content_types=(CSV,), csv_label_size=0),
    ),
    default_content_type=CSV,
    request_types=(CSV, JSON, JSONLINES),
    accept_types=(JSON, JSONLINES),
    default_accept=JSON,
    supports_pipe=False,
)
