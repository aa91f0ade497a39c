"""The Object Detection built-in on the algorithm contract: its table, metrics, channels and
content types (spec algorithms §17). Plain data, no torch: the API server imports it to
validate a CreateTrainingJob before any process starts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    JSON,
    JSONLINES,
    NUMBER,
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
)

RECORDIO_IMAGES: Final = "application/x-recordio"
IMAGE: Final = "application/x-image"
JPEG: Final = "image/jpeg"
PNG: Final = "image/png"
MODEL: Final = "application/x-sagemaker-model"
IMAGE_TYPES: Final = (IMAGE, JPEG, PNG)
ANNOTATION_TYPES: Final = (*IMAGE_TYPES, JSON)

BASE_NETWORKS: Final = ("vgg-16", "resnet-50")
OPTIMIZERS: Final = ("sgd", "adam", "rmsprop", "adadelta")
MIN_IMAGE_SHAPE: Final = 300
LABEL_HEADER: Final = 2
OBJECT_WIDTH: Final = 5


def scheduler_steps(value: Value | None) -> list[int]:
    """`lr_scheduler_step` ("10,20", or the SDK's JSON list) as increasing epoch numbers."""
    if not isinstance(value, tuple):
        return []
    return [int(item) for item in value if item]


def _steps_are_epochs(values: Mapping[str, Value]) -> None:
    steps = values.get("lr_scheduler_step")
    if not isinstance(steps, tuple) or not any(steps):
        return
    text = ",".join(steps)
    if not all(item.isdigit() and int(item) > 0 for item in steps):
        raise HyperparameterError(
            "lr_scheduler_step", "is not a comma list of positive epoch numbers, like 10,20", text
        )
    numbers = [int(item) for item in steps]
    if numbers != sorted(set(numbers)):
        raise HyperparameterError("lr_scheduler_step", "must list increasing epochs", text)


def _pattern_compiles(values: Mapping[str, Value]) -> None:
    pattern = values.get("freeze_layer_pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise HyperparameterError(
                "freeze_layer_pattern", f"is not a regular expression ({exc})", pattern
            ) from None


_UNIT: Final = Interval(0, 1)
_HALF_OPEN_UNIT: Final = Interval(0, 1, low_open=True)
_BELOW_ONE: Final = Interval(0, 1, high_open=True)
_FLAG: Final = Interval(0, 1)

TABLE: Final = HyperparameterTable(
    "Object Detection algorithm",
    (
        Hyperparameter("num_classes", Kind.INT, interval=Interval(1), required=True),
        Hyperparameter("num_training_samples", Kind.INT, interval=Interval(1), required=True),
        Hyperparameter("base_network", Kind.CHOICE, "vgg-16", options=BASE_NETWORKS),
        Hyperparameter("use_pretrained_model", Kind.INT, "1", _FLAG),
        Hyperparameter("image_shape", Kind.INT, "300", Interval(MIN_IMAGE_SHAPE)),
        Hyperparameter("epochs", Kind.INT, "30", Interval(1)),
        Hyperparameter(
            "learning_rate", Kind.FLOAT, "0.001", _HALF_OPEN_UNIT, tunable_range=Interval(1e-6, 0.5)
        ),
        Hyperparameter("lr_scheduler_step", Kind.LIST),
        Hyperparameter("lr_scheduler_factor", Kind.FLOAT, "0.1", Interval(0, 1, True, True)),
        Hyperparameter(
            "mini_batch_size", Kind.INT, "32", Interval(1), tunable_range=Interval(8, 64)
        ),
        Hyperparameter("optimizer", Kind.CHOICE, "sgd", options=OPTIMIZERS),
        Hyperparameter("momentum", Kind.FLOAT, "0.9", _BELOW_ONE, tunable_range=Interval(0, 0.999)),
        Hyperparameter(
            "weight_decay", Kind.FLOAT, "0.0005", _BELOW_ONE, tunable_range=Interval(0, 0.999)
        ),
        Hyperparameter("nms_threshold", Kind.FLOAT, "0.45", _HALF_OPEN_UNIT),
        Hyperparameter("overlap_threshold", Kind.FLOAT, "0.5", _HALF_OPEN_UNIT),
        Hyperparameter("label_width", Kind.INT, "350", Interval(LABEL_HEADER + OBJECT_WIDTH)),
        Hyperparameter("freeze_layer_pattern", Kind.TEXT),
        Hyperparameter("early_stopping", Kind.BOOL, "false"),
        Hyperparameter("early_stopping_min_epochs", Kind.INT, "10", Interval(1)),
        Hyperparameter("early_stopping_patience", Kind.INT, "5", Interval(1)),
        Hyperparameter("early_stopping_tolerance", Kind.FLOAT, "0.0", _BELOW_ONE),
        Hyperparameter("kv_store", Kind.CHOICE, options=("dist_sync", "dist_async")),
        Hyperparameter("width_multiplier", Kind.FLOAT, "1.0", _HALF_OPEN_UNIT),
    ),
    checks=(_steps_are_epochs, _pattern_compiles),
)
"""SageMaker's table (§17(a)) plus one opensage extension, `width_multiplier` (default 1: the
published widths): it scales every layer's channels, so a network trains on a CPU at the
required `image_shape` >= 300 in tests and examples. `freeze_layer_pattern` has no default
(nothing is frozen); `lr_scheduler_step` none either (a constant rate)."""


def epoch_metric(channel: str, name: str, direction: Direction | None) -> Metric:
    """A metric logged once per epoch as SageMaker's SSD does, the value in parentheses:
    `#quality_metric: host=algo-1, epoch=3, validation mAP <score>=(0.43)`."""
    polarity = "score" if direction == "Maximize" else "loss"
    regex = (
        rf"#quality_metric: host=\S+, (?:epoch=\d+, )?{channel} {name} <{polarity}>="
        rf"\(?{NUMBER}\)?"
    )
    return Metric(f"{channel}:{name}", regex, direction)


_DATA: Final = (RECORDIO_IMAGES, *IMAGE_TYPES)

SPEC: Final = Algorithm(
    name="object_detection",
    title="Object Detection",
    repositories=("object-detection",),
    hyperparameters=TABLE,
    metrics=(
        epoch_metric("validation", "mAP", "Maximize"),
        epoch_metric("train", "cross_entropy", None),
        epoch_metric("train", "smooth_l1", None),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=_DATA, csv_label_size=0),
        ChannelSpec("validation", required=True, content_types=_DATA, csv_label_size=0),
        ChannelSpec("train_annotation", content_types=ANNOTATION_TYPES, csv_label_size=0),
        ChannelSpec("validation_annotation", content_types=ANNOTATION_TYPES, csv_label_size=0),
        ChannelSpec("model", content_types=(MODEL,), csv_label_size=0),
    ),
    default_content_type=RECORDIO_IMAGES,
    request_types=IMAGE_TYPES,
    accept_types=(JSON, JSONLINES),
    default_accept=JSON,
)
