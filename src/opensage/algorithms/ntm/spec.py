"""The NTM built-in on the algorithm contract: its table, metrics, channels and content types
(spec algorithms §12). Plain data, no torch: the API server imports it to validate a
CreateTrainingJob before any process starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    AUTO,
    CSV,
    JSON,
    JSONLINES,
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

TEXT: Final = "text/plain"
OPTIMIZERS: Final = ("adagrad", "adam", "rmsprop", "sgd", "adadelta")
ACTIVATIONS: Final = ("sigmoid", "tanh", "relu")


def encoder_layers(value: Value, num_topics: int) -> list[int]:
    """The hidden layer widths: `auto` is SageMaker's [3 * num_topics, 2 * num_topics]."""
    if value == AUTO:
        return [3 * num_topics, 2 * num_topics]
    assert isinstance(value, tuple)
    return [int(item) for item in value]


def _encoder_layers_are_widths(values: Mapping[str, Value]) -> None:
    """`encoder_layers` is parsed as a list of strings; each must be a positive integer."""
    layers = values.get("encoder_layers")
    if not isinstance(layers, tuple):
        return
    for item in layers:
        if not item.isdigit() or int(item) < 1:
            raise HyperparameterError(
                "encoder_layers",
                f"has '{item}', which is not a positive integer; give a comma list of layer "
                "widths such as 30,20, or auto",
                ",".join(layers),
            )


TABLE: Final = HyperparameterTable(
    "NTM algorithm",
    (
        Hyperparameter("feature_dim", Kind.INT, interval=Interval(1, 1_000_000), required=True),
        Hyperparameter("num_topics", Kind.INT, interval=Interval(2, 1000), required=True),
        Hyperparameter("batch_norm", Kind.BOOL, "false"),
        Hyperparameter("clip_gradient", Kind.FLOAT, interval=Interval(1e-3)),
        Hyperparameter("encoder_layers", Kind.LIST, AUTO, auto=True),
        Hyperparameter("encoder_layers_activation", Kind.CHOICE, "sigmoid", options=ACTIVATIONS),
        Hyperparameter("epochs", Kind.INT, "50", Interval(1)),
        Hyperparameter(
            "learning_rate",
            Kind.FLOAT,
            "0.001",
            Interval(1e-6, 1),
            tunable_range=Interval(1e-4, 0.1),
        ),
        Hyperparameter(
            "mini_batch_size", Kind.INT, "256", Interval(1, 10000), tunable_range=Interval(16, 2048)
        ),
        Hyperparameter("num_patience_epochs", Kind.INT, "3", Interval(1)),
        Hyperparameter("optimizer", Kind.CHOICE, "adadelta", options=OPTIMIZERS),
        Hyperparameter(
            "rescale_gradient", Kind.FLOAT, "1.0", Interval(1e-3, 1), tunable_range=Interval(0.1, 1)
        ),
        Hyperparameter("sub_sample", Kind.FLOAT, "1.0", Interval(0, 1, low_open=True)),
        Hyperparameter("tolerance", Kind.FLOAT, "0.001", Interval(1e-6, 0.1)),
        Hyperparameter(
            "weight_decay", Kind.FLOAT, "0.0", Interval(0, 1), tunable_range=Interval(0, 1)
        ),
    ),
    checks=(_encoder_layers_are_widths,),
)
"""`clip_gradient` has no default (SageMaker's is Infinity: no clipping), because the table reads
only finite numbers; leaving it out means no clipping."""

_DATA: Final = (RECORDIO, CSV)

SPEC: Final = Algorithm(
    name="ntm",
    title="NTM",
    repositories=("ntm",),
    hyperparameters=TABLE,
    metrics=(
        quality_metric("validation", "total_loss", "Minimize"),
        quality_metric("train", "total_loss", None),
        quality_metric("test", "total_loss", None),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=_DATA, csv_label_size=0),
        ChannelSpec("validation", content_types=_DATA, csv_label_size=0),
        ChannelSpec("test", content_types=_DATA, csv_label_size=0),
        ChannelSpec("auxiliary", content_types=(TEXT,), csv_label_size=0),
    ),
    default_content_type=RECORDIO,
    request_types=(CSV, JSON, JSONLINES, RECORDIO),
    accept_types=(JSON, JSONLINES, RECORDIO),
    default_accept=JSON,
)
