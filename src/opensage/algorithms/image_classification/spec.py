"""The Image Classification built-in on the algorithm contract: its table, metrics, channels and
content types (spec algorithms §16). Plain data, no torch: the API server imports it to
validate a CreateTrainingJob before any process starts."""

from __future__ import annotations

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

IMAGENET_DEPTHS: Final = (18, 34, 50, 101, 152, 200)
CIFAR_DEPTHS: Final = (20, 32, 44, 56, 110)
OPTIMIZERS: Final = ("sgd", "adam", "rmsprop", "nag")
AUGMENTATIONS: Final = ("crop", "crop_color", "crop_color_transform")
CHANNELS_ALLOWED: Final = (1, 3)
MIN_SIDE: Final = 8


def image_shape(text: str) -> tuple[int, int, int]:
    """`"3,224,224"` as (C, H, W); ValueError saying what is wrong."""
    parts = [part.strip() for part in text.strip().strip("()[]").split(",")]
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError("is not 'channels,height,width', like 3,224,224")
    c, h, w = (int(part) for part in parts)
    if c not in CHANNELS_ALLOWED:
        raise ValueError("must have 1 (grey) or 3 (RGB) channels")
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"must be at least {MIN_SIDE} pixels high and wide")
    return c, h, w


def scheduler_steps(value: Value | None) -> list[int]:
    """`lr_scheduler_step` ("10,20", or the SDK's JSON list) as increasing epoch numbers."""
    if value is None:
        return []
    assert isinstance(value, tuple)
    return [int(item) for item in value]


def _image_shape_is_valid(values: Mapping[str, Value]) -> None:
    text = values.get("image_shape")
    if isinstance(text, str):
        try:
            image_shape(text)
        except ValueError as exc:
            raise HyperparameterError("image_shape", str(exc), text) from None


def _steps_are_epochs(values: Mapping[str, Value]) -> None:
    steps = values.get("lr_scheduler_step")
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


def _pretrained_needs_imagenet_depth(values: Mapping[str, Value]) -> None:
    if values.get("use_pretrained_model") == 1:
        depth = int(str(values.get("num_layers", "152")))
        if depth not in IMAGENET_DEPTHS:
            raise HyperparameterError(
                "num_layers",
                "is a CIFAR-style depth; transfer learning (use_pretrained_model=1) needs one "
                f"of {', '.join(map(str, IMAGENET_DEPTHS))}",
                str(depth),
            )


def _checkpoints_within_epochs(values: Mapping[str, Value]) -> None:
    frequency = values.get("checkpoint_frequency")
    epochs = values.get("epochs", 30)
    if isinstance(frequency, int) and isinstance(epochs, int) and frequency > epochs:
        raise HyperparameterError(
            "checkpoint_frequency", f"must not exceed epochs ({epochs})", str(frequency)
        )


_FLAG: Final = Interval(0, 1)
_UNIT: Final = Interval(0, 1)

TABLE: Final = HyperparameterTable(
    "Image Classification algorithm",
    (
        Hyperparameter("num_classes", Kind.INT, interval=Interval(1), required=True),
        Hyperparameter("num_training_samples", Kind.INT, interval=Interval(1), required=True),
        Hyperparameter(
            "num_layers",
            Kind.CHOICE,
            "152",
            options=tuple(str(d) for d in (*IMAGENET_DEPTHS, *CIFAR_DEPTHS)),
        ),
        Hyperparameter("image_shape", Kind.TEXT, "3,224,224"),
        Hyperparameter("use_pretrained_model", Kind.INT, "0", _FLAG),
        Hyperparameter("epochs", Kind.INT, "30", Interval(1)),
        Hyperparameter(
            "learning_rate", Kind.FLOAT, "0.1", _UNIT, tunable_range=Interval(1e-6, 0.5)
        ),
        Hyperparameter(
            "mini_batch_size", Kind.INT, "32", Interval(1), tunable_range=Interval(8, 512)
        ),
        Hyperparameter("optimizer", Kind.CHOICE, "sgd", options=OPTIMIZERS),
        Hyperparameter("momentum", Kind.FLOAT, "0.9", _UNIT, tunable_range=Interval(0, 0.999)),
        Hyperparameter(
            "weight_decay", Kind.FLOAT, "0.0001", _UNIT, tunable_range=Interval(0, 0.999)
        ),
        Hyperparameter("beta_1", Kind.FLOAT, "0.9", _UNIT, tunable_range=Interval(1e-6, 0.999)),
        Hyperparameter("beta_2", Kind.FLOAT, "0.999", _UNIT, tunable_range=Interval(1e-6, 0.999)),
        Hyperparameter("eps", Kind.FLOAT, "1e-8", _UNIT, tunable_range=Interval(1e-8, 1.0)),
        Hyperparameter("gamma", Kind.FLOAT, "0.9", _UNIT, tunable_range=Interval(1e-8, 0.999)),
        Hyperparameter("lr_scheduler_factor", Kind.FLOAT, "0.1", _UNIT),
        Hyperparameter("lr_scheduler_step", Kind.LIST),
        Hyperparameter("augmentation_type", Kind.CHOICE, options=AUGMENTATIONS),
        Hyperparameter("resize", Kind.INT, interval=Interval(MIN_SIDE)),
        Hyperparameter("top_k", Kind.INT, interval=Interval(2)),
        Hyperparameter("multi_label", Kind.INT, "0", _FLAG),
        Hyperparameter("use_weighted_loss", Kind.INT, "0", _FLAG),
        Hyperparameter("precision_dtype", Kind.CHOICE, "float32", options=("float32", "float16")),
        Hyperparameter("checkpoint_frequency", Kind.INT, interval=Interval(1)),
        Hyperparameter("early_stopping", Kind.BOOL, "false"),
        Hyperparameter("early_stopping_min_epochs", Kind.INT, "10", Interval(1)),
        Hyperparameter("early_stopping_patience", Kind.INT, "5", Interval(1)),
        Hyperparameter("early_stopping_tolerance", Kind.FLOAT, "0.0", _UNIT),
        Hyperparameter("kv_store", Kind.CHOICE, options=("dist_sync", "dist_async")),
    ),
    checks=(
        _image_shape_is_valid,
        _steps_are_epochs,
        _pretrained_needs_imagenet_depth,
        _checkpoints_within_epochs,
    ),
)
"""`augmentation_type` has no default (SageMaker's: no augmentation); `checkpoint_frequency`
none either (the model is the epoch with the best validation accuracy)."""


def epoch_metric(channel: str, name: str, direction: Direction | None) -> Metric:
    """A metric logged once per epoch as
    `#quality_metric: host=algo-1, epoch=3, validation accuracy <score>=0.91`."""
    regex = rf"#quality_metric: host=\S+, (?:epoch=\d+, )?{channel} {name} <score>={NUMBER}"
    return Metric(f"{channel}:{name}", regex, direction)


_DATA: Final = (RECORDIO_IMAGES, *IMAGE_TYPES)

SPEC: Final = Algorithm(
    name="image_classification",
    title="Image Classification",
    repositories=("image-classification",),
    hyperparameters=TABLE,
    metrics=(
        epoch_metric("validation", "accuracy", "Maximize"),
        epoch_metric("train", "accuracy", None),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=_DATA, csv_label_size=0),
        ChannelSpec("validation", content_types=_DATA, csv_label_size=0),
        ChannelSpec("train_lst", content_types=IMAGE_TYPES, csv_label_size=0),
        ChannelSpec("validation_lst", content_types=IMAGE_TYPES, csv_label_size=0),
        ChannelSpec("model", content_types=(MODEL,), csv_label_size=0),
    ),
    default_content_type=RECORDIO_IMAGES,
    request_types=IMAGE_TYPES,
    accept_types=(JSON, JSONLINES),
    default_accept=JSON,
)
