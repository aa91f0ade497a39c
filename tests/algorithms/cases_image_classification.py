"""Image Classification's conformance cases: 90 generated 3x16x16 shape images (circle, square,
triangle), ResNet-20, 2 epochs, trained from RecordIO `.rec` files and from PNG files listed by
`.lst` files, each with a validation channel (validation:accuracy, train:accuracy); asked with
JPEG, PNG and application/x-image for JSON and JSON Lines answers.

The first request is a JPEG: the suite re-sends it as `image/png` and expects a 415, which this
handler gives because the body is not a PNG (image/png is a type it takes)."""

from __future__ import annotations

import json
from typing import Any

from opensage.algorithms.image_classification.synthetic import encode, shapes
from opensage.formats.image_records import ImageRecord, ListEntry, encode_rec, format_lst
from tests.algorithms.conformance import DocumentCase, Request

RECORDIO = "application/x-recordio"
IMAGE = "application/x-image"
JSON = "application/json"
JSONLINES = "application/jsonlines"
SIZE = 16
TINY = {"num_classes": "3", "num_training_samples": "60", "num_layers": "20",
        "image_shape": f"3,{SIZE},{SIZE}", "epochs": "2", "mini_batch_size": "16",
        "learning_rate": "0.05", "top_k": "2"}  # fmt: skip


def decode(body: bytes, accept: str) -> list[Any]:
    """A bare JSON list of probabilities, or `{"prediction": [...]}` per JSON Lines line."""
    if accept.startswith(JSONLINES):
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    document = json.loads(body)
    assert isinstance(document, list), document
    assert all(isinstance(p, float) for p in document), document
    return [{"prediction": document}]


def _split() -> tuple[Any, Any, Any, Any]:
    images, labels = shapes(90, SIZE, seed=3)
    return images[:60], labels[:60], images[60:], labels[60:]


def _rec(images: Any, labels: Any) -> bytes:
    return encode_rec(
        ImageRecord((float(label),), encode(image), id=i)
        for i, (image, label) in enumerate(zip(images, labels, strict=True))
    )


def _recordio_files() -> dict[str, tuple[str, dict[str, bytes]]]:
    train_x, train_y, valid_x, valid_y = _split()
    return {
        "train": (RECORDIO, {"train.rec": _rec(train_x, train_y)}),
        "validation": (RECORDIO, {"validation.rec": _rec(valid_x, valid_y)}),
    }


def _listed(images: Any, labels: Any, folder: str) -> tuple[dict[str, bytes], bytes]:
    files = {}
    entries = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        name = f"img{i:03d}.png"
        files[name] = encode(image)
        entries.append(ListEntry(i, (float(label),), name))
    return files, format_lst(entries).encode()


def _image_files() -> dict[str, tuple[str, dict[str, bytes]]]:
    train_x, train_y, valid_x, valid_y = _split()
    train, train_lst = _listed(train_x, train_y, "train")
    validation, validation_lst = _listed(valid_x, valid_y, "validation")
    return {
        "train": (IMAGE, train),
        "train_lst": (IMAGE, {"train.lst": train_lst}),
        "validation": (IMAGE, validation),
        "validation_lst": (IMAGE, {"validation.lst": validation_lst}),
    }


def _requests() -> list[Request]:
    images, _ = shapes(3, SIZE, seed=9)
    jpeg = encode(images[0], "JPEG")
    png = encode(images[1])
    keys = ("prediction",)
    return [
        Request("image/jpeg", JSON, jpeg, 1, keys),
        Request("image/png", JSON, png, 1, keys),
        Request("image/png", JSONLINES, png, 1, keys),
        Request(IMAGE, JSON, jpeg, 1, keys),
        Request(IMAGE, JSONLINES, png, 1, keys),
    ]


def _case(name: str, files: Any, **hp: str) -> DocumentCase:
    return DocumentCase(
        name=f"image_classification-{name}",
        algorithm="image_classification",
        hyperparameters={**TINY, **hp},
        files=files,
        requests=_requests,
        metrics=("validation:accuracy", "train:accuracy"),
        decode=decode,
        refused_content_types=("text/csv",),
    )


CASES = [
    _case("recordio", _recordio_files, augmentation_type="crop_color_transform"),
    _case("image-files", _image_files, resize=str(SIZE), optimizer="adam", learning_rate="0.01"),
]
