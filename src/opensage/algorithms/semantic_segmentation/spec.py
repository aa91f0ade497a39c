"""The Semantic Segmentation built-in on the algorithm contract: its table, metrics, channels and
content types (spec algorithms §18). Plain data, no torch: the API server imports it to
validate a CreateTrainingJob before any process starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    JSON,
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

JPEG: Final = "image/jpeg"
PNG: Final = "image/png"
IMAGE: Final = "application/x-image"
RECORDIO_IMAGES: Final = "application/x-recordio"
PROTOBUF: Final = "application/x-protobuf"
MODEL: Final = "application/x-sagemaker-model"
IMAGE_TYPES: Final = (JPEG, PNG, IMAGE)

BACKBONES: Final = ("resnet-50", "resnet-101")
HEADS: Final = ("fcn", "psp", "deeplab")
SCHEDULERS: Final = ("poly", "cosine", "step")
OPTIMIZERS: Final = ("sgd", "nag", "adam", "adagrad", "rmsprop", "adadelta")
IGNORE: Final = 255
"""The mask value that marks pixels without a class (GluonCV's ignore label)."""
MIN_SIDE: Final = 16
STANDARD_WIDTH: Final = 64


def base_width(multiplier: float) -> int:
    """The first stage's channels for a `width_multiplier`."""
    return max(1, round(STANDARD_WIDTH * multiplier))


def crop_size(value: int) -> int:
    """`crop_size` rounded up to a multiple of 8, as SageMaker documents."""
    return -(-value // 8) * 8


def scheduler_steps(value: Value | None) -> list[int]:
    """`lr_scheduler_step` ("10,20", or the SDK's JSON list) as increasing epoch numbers."""
    if value is None:
        return []
    assert isinstance(value, tuple)
    return [int(item) for item in value]


def _step_schedule_is_complete(values: Mapping[str, Value]) -> None:
    steps = values.get("lr_scheduler_step")
    if values.get("lr_scheduler") == "step" and steps is None:
        raise HyperparameterError(
            "lr_scheduler_step", "is required when lr_scheduler is step: give epochs like 10,20"
        )
    if not isinstance(steps, tuple):
        return
    text = ",".join(steps)
    if not all(item.isdigit() and int(item) > 0 for item in steps):
        raise HyperparameterError(
            "lr_scheduler_step", "is not a comma list of positive epoch numbers, like 10,20", text
        )
    numbers = [int(item) for item in steps]
    if numbers != sorted(set(numbers)):
        raise HyperparameterError("lr_scheduler_step", "must list increasing epochs", text)


_UNIT: Final = Interval(0, 1)
_ABOVE_MIN_SIDE: Final = Interval(MIN_SIDE, low_open=True)

TABLE: Final = HyperparameterTable(
    "Semantic Segmentation algorithm",
    (
        Hyperparameter("num_classes", Kind.INT, interval=Interval(2, 254), required=True),
        Hyperparameter("num_training_samples", Kind.INT, interval=Interval(1), required=True),
        Hyperparameter("backbone", Kind.CHOICE, "resnet-50", options=BACKBONES),
        Hyperparameter("algorithm", Kind.CHOICE, "fcn", options=HEADS),
        Hyperparameter("use_pretrained_model", Kind.BOOL, "true"),
        Hyperparameter("base_size", Kind.INT, "520", _ABOVE_MIN_SIDE),
        Hyperparameter("crop_size", Kind.INT, "240", _ABOVE_MIN_SIDE),
        Hyperparameter("epochs", Kind.INT, "10", Interval(1)),
        Hyperparameter(
            "learning_rate",
            Kind.FLOAT,
            "0.001",
            Interval(0, 1, low_open=True),
            tunable_range=Interval(1e-4, 1e-1),
        ),
        Hyperparameter("lr_scheduler", Kind.CHOICE, "poly", options=SCHEDULERS),
        Hyperparameter("lr_scheduler_step", Kind.LIST),
        Hyperparameter("lr_scheduler_factor", Kind.FLOAT, "0.1", Interval(0, 1, low_open=True)),
        Hyperparameter(
            "mini_batch_size", Kind.INT, "16", Interval(1), tunable_range=Interval(1, 128)
        ),
        Hyperparameter("validation_mini_batch_size", Kind.INT, "16", Interval(1)),
        Hyperparameter("optimizer", Kind.CHOICE, "sgd", options=OPTIMIZERS),
        Hyperparameter(
            "momentum",
            Kind.FLOAT,
            "0.9",
            Interval(0, 1, high_open=True),
            tunable_range=Interval(0.9, 0.999),
        ),
        Hyperparameter(
            "weight_decay",
            Kind.FLOAT,
            "0.0001",
            Interval(0, 1, high_open=True),
            tunable_range=Interval(1e-5, 1e-3),
        ),
        Hyperparameter("gamma1", Kind.FLOAT, "0.9", Interval(0, 1, high_open=True)),
        Hyperparameter("gamma2", Kind.FLOAT, "0.9", Interval(0, 1, high_open=True)),
        Hyperparameter("syncbn", Kind.BOOL, "false"),
        Hyperparameter("early_stopping", Kind.BOOL, "false"),
        Hyperparameter("early_stopping_min_epochs", Kind.INT, "5", Interval(1)),
        Hyperparameter("early_stopping_patience", Kind.INT, "4", Interval(1)),
        Hyperparameter("early_stopping_tolerance", Kind.FLOAT, "0.0", _UNIT),
        Hyperparameter("width_multiplier", Kind.FLOAT, "1.0", Interval(0, 1, low_open=True)),
    ),
    checks=(_step_schedule_is_complete,),
)
"""`width_multiplier` is an opensage extension, not a SageMaker hyperparameter (Object Detection
has the same one): it scales every layer's channels, the ResNet's first stage being
`64 x width_multiplier` wide (rounded, at least 1) and the decoder in proportion. Small values
keep tests and CPU runs fast; leave it out (1.0) for SageMaker's network. `adadelta` is not
among SageMaker's optimizers but is in its documented tuning range, so it is accepted (it runs
at torch's step size 1.0)."""

_IMAGES: Final = (*IMAGE_TYPES, RECORDIO_IMAGES)

SPEC: Final = Algorithm(
    name="semantic_segmentation",
    title="Semantic Segmentation",
    repositories=("semantic-segmentation",),
    hyperparameters=TABLE,
    metrics=(
        quality_metric("validation", "mIOU", "Maximize"),
        quality_metric("validation", "pixel_accuracy", "Maximize"),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=_IMAGES, csv_label_size=0),
        ChannelSpec("validation", required=True, content_types=_IMAGES, csv_label_size=0),
        ChannelSpec("train_annotation", required=True, content_types=_IMAGES, csv_label_size=0),
        ChannelSpec(
            "validation_annotation", required=True, content_types=_IMAGES, csv_label_size=0
        ),
        # image/jpeg is what a channel without a ContentType resolves to (the default type)
        ChannelSpec("label_map", content_types=(JSON, "text/plain", JPEG), csv_label_size=0),
        ChannelSpec("model", content_types=(MODEL,), csv_label_size=0),
    ),
    default_content_type=JPEG,
    request_types=(JPEG, PNG),
    accept_types=(PNG, RECORDIO, PROTOBUF),
    default_accept=PNG,
    supports_pipe=True,
)
