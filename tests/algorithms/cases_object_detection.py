"""Object Detection's conformance cases: 22 generated 48x48 scenes (rectangles and ellipses, two
classes, one or two objects each) stretched to image_shape 300, 1 epoch, tiny networks through
the opensage `width_multiplier` (the default base, VGG-16, at 1/32 from RecordIO `.rec` files;
ResNet-50 at 1/16 from PNG files with JSON annotations), each with its validation channel
(validation:mAP, train:cross_entropy, train:smooth_l1); asked with JPEG, PNG and
application/x-image for the JSON `prediction`, the `annotation=1` pixel form and JSON Lines.

The first request is a JPEG: the suite re-sends it as `image/png` and expects a 415, which this
handler gives because the body is not a PNG (image/png is a type it takes)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from opensage.algorithms.object_detection.synthetic import encode, scenes
from opensage.formats.image_records import ImageRecord, encode_rec
from tests.algorithms.conformance import DocumentCase, Request

RECORDIO = "application/x-recordio"
IMAGE = "application/x-image"
PNG = "image/png"
JSON = "application/json"
ANNOTATION = "application/json;annotation=1"
JSONLINES = "application/jsonlines"
SIZE = 48
TRAIN = 16
TINY = {"num_classes": "2", "num_training_samples": str(TRAIN), "image_shape": "300",
        "epochs": "1", "mini_batch_size": "8", "optimizer": "adam",
        "learning_rate": "0.003"}  # fmt: skip


def decode(body: bytes, accept: str) -> list[Any]:
    """The one result object of an answer: the `prediction` document (JSON or a JSON Lines
    line) or the `annotation=1` document, each checked for its shape."""
    if accept.startswith(JSONLINES):
        documents = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    else:
        documents = [json.loads(body)]
    for document in documents:
        assert isinstance(document, dict), document
        if "prediction" in document:
            for row in document["prediction"]:
                assert len(row) == 6, row
                assert all(isinstance(v, float) for v in row), row
                assert 0 <= row[1] <= 1, row
                assert all(0 <= v <= 1 for v in row[2:]), row
        else:
            assert document["image_size"] == [{"width": SIZE, "height": SIZE, "depth": 3}]
            for box in document["annotations"]:
                assert set(box) == {"class_id", "score", "left", "top", "width", "height"}
    return documents


def _split() -> tuple[Any, list[Any], Any, list[Any]]:
    images, objects = scenes(TRAIN + 6, SIZE, seed=3)
    return images[:TRAIN], objects[:TRAIN], images[TRAIN:], objects[TRAIN:]


def record_labels(objects: Any) -> tuple[float, ...]:
    """MXNet's detection label array: header width 2, object width 5, then the objects."""
    return (2.0, 5.0, *np.asarray(objects, dtype=np.float64).ravel().tolist())


def rec(images: Any, objects: list[Any]) -> bytes:
    return encode_rec(
        ImageRecord(record_labels(found), encode(image), id=i, multi=True)
        for i, (image, found) in enumerate(zip(images, objects, strict=True))
    )


def _recordio_files() -> dict[str, tuple[str, dict[str, bytes]]]:
    train_x, train_y, valid_x, valid_y = _split()
    return {
        "train": (RECORDIO, {"train.rec": rec(train_x, train_y)}),
        "validation": (RECORDIO, {"validation.rec": rec(valid_x, valid_y)}),
    }


def annotation(name: str, objects: Any, size: int = SIZE) -> bytes:
    """One image's JSON annotation: pixel boxes from the top-left corner."""
    boxes = [
        {"class_id": int(cls), "left": round(x0 * size), "top": round(y0 * size),
         "width": round((x1 - x0) * size), "height": round((y1 - y0) * size)}
        for cls, x0, y0, x1, y1 in np.asarray(objects).tolist()
    ]  # fmt: skip
    document = {
        "file": name,
        "image_size": [{"width": size, "height": size, "depth": 3}],
        "annotations": boxes,
        "categories": [{"class_id": 0, "name": "rectangle"}, {"class_id": 1, "name": "ellipse"}],
    }
    return json.dumps(document).encode()


def _annotated(images: Any, objects: list[Any]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    files, notes = {}, {}
    for i, (image, found) in enumerate(zip(images, objects, strict=True)):
        name = f"img{i:03d}.png"
        files[name] = encode(image)
        notes[f"img{i:03d}.json"] = annotation(name, found)
    return files, notes


def _image_files() -> dict[str, tuple[str, dict[str, bytes]]]:
    train_x, train_y, valid_x, valid_y = _split()
    train, train_notes = _annotated(train_x, train_y)
    validation, validation_notes = _annotated(valid_x, valid_y)
    return {
        "train": (PNG, train),
        "train_annotation": (PNG, train_notes),
        "validation": (PNG, validation),
        "validation_annotation": (PNG, validation_notes),
    }


def _requests() -> list[Request]:
    images, _ = scenes(2, SIZE, seed=9)
    jpeg = encode(images[0], "JPEG")
    png = encode(images[1])
    prediction = ("prediction",)
    pixels = ("image_size", "annotations")
    return [
        Request("image/jpeg", JSON, jpeg, 1, prediction),
        Request(PNG, JSON, png, 1, prediction),
        Request(PNG, ANNOTATION, png, 1, pixels),
        Request(IMAGE, JSONLINES, jpeg, 1, prediction),
        Request(IMAGE, ANNOTATION, jpeg, 1, pixels),
    ]


def _case(name: str, files: Any, **hp: str) -> DocumentCase:
    return DocumentCase(
        name=f"object_detection-{name}",
        algorithm="object_detection",
        hyperparameters={**TINY, **hp},
        files=files,
        requests=_requests,
        metrics=("validation:mAP", "train:cross_entropy", "train:smooth_l1"),
        decode=decode,
        refused_content_types=("text/csv",),
    )


CASES = [
    _case("recordio", _recordio_files, width_multiplier="0.03125"),
    _case(
        "image-files",
        _image_files,
        base_network="resnet-50",
        width_multiplier="0.0625",
        use_pretrained_model="0",
        optimizer="sgd",
        learning_rate="0.01",
        nms_threshold="0.5",
    ),
]
