"""Semantic Segmentation's conformance cases: a dozen generated 32x32 scenes (3 classes:
background, circles, squares) as JPEG images with PNG masks, a ResNet-50 of width_multiplier 1/8,
1 epoch, with FCN and with DeepLab v3 (validation:mIOU, validation:pixel_accuracy); asked with
JPEG and PNG for a PNG mask and for RecordIO-protobuf / protobuf probabilities.

The first request is a JPEG: the suite re-sends it as `image/png` and expects a 415, which this
handler gives because the body is not a PNG (image/png is a type it takes)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from opensage.algorithms.semantic_segmentation.synthetic import encode_image, encode_mask, scenes
from opensage.formats.tensors import read_record_messages
from tests.algorithms.conformance import DocumentCase, Request

JPEG = "image/jpeg"
PNG = "image/png"
RECORDIO = "application/x-recordio-protobuf"
PROTOBUF = "application/x-protobuf"
SIZE = 32
CLASSES = 3
TINY = {"num_classes": str(CLASSES), "num_training_samples": "8", "width_multiplier": "0.125",
        "base_size": str(SIZE), "crop_size": "24", "epochs": "1", "mini_batch_size": "4",
        "validation_mini_batch_size": "4", "learning_rate": "0.01"}  # fmt: skip


def decode(body: bytes, accept: str) -> list[Any]:
    """A PNG mask as `{"mask": (H, W)}`; a protobuf Record as `{"target": n, "shape": [...]}`,
    each checked against the layout the spec gives."""
    if accept == PNG:
        from PIL import Image

        image = Image.open(io.BytesIO(body))
        assert image.mode == "P", image.mode
        mask = np.asarray(image)
        assert mask.shape == (SIZE, SIZE), mask.shape
        assert int(mask.max()) < CLASSES
        return [{"mask": list(mask.shape)}]
    records = read_record_messages(body)
    rows = []
    for record in records:
        shape = list(record.features["shape"].int32_tensor.values)
        target = np.asarray(record.features["target"].float32_tensor.values)
        assert shape == [1, CLASSES, SIZE, SIZE], shape
        assert target.size == CLASSES * SIZE * SIZE
        np.testing.assert_allclose(target.reshape(CLASSES, -1).sum(axis=0), 1.0, rtol=1e-4)
        rows.append({"target": int(target.size), "shape": shape})
    return rows


def _files() -> dict[str, tuple[str, dict[str, bytes]]]:
    images, masks = scenes(12, SIZE, CLASSES, seed=3)
    channels: dict[str, tuple[str, dict[str, bytes]]] = {}
    for split, rows in (("train", range(8)), ("validation", range(8, 12))):
        channels[split] = (JPEG, {f"s{i:02d}.jpg": encode_image(images[i]) for i in rows})
        channels[f"{split}_annotation"] = (
            PNG,
            {f"s{i:02d}.png": encode_mask(masks[i]) for i in rows},
        )
    return channels


def _requests() -> list[Request]:
    images, _ = scenes(2, SIZE, CLASSES, seed=9)
    jpeg = encode_image(images[0])
    png = encode_image(images[1], "PNG")
    return [
        Request(JPEG, PNG, jpeg, 1, ("mask",)),
        Request(PNG, PNG, png, 1, ("mask",)),
        Request(JPEG, RECORDIO, jpeg, 1, ("target", "shape")),
        Request(PNG, PROTOBUF, png, 1, ("target", "shape")),
    ]


def _case(name: str, **hp: str) -> DocumentCase:
    return DocumentCase(
        name=f"semantic_segmentation-{name}",
        algorithm="semantic_segmentation",
        hyperparameters={**TINY, **hp},
        files=_files,
        requests=_requests,
        metrics=("validation:mIOU", "validation:pixel_accuracy"),
        decode=decode,
        refused_content_types=("text/csv",),
    )


CASES = [
    _case("fcn", algorithm="fcn"),
    _case("deeplab", algorithm="deeplab", optimizer="adam", learning_rate="0.001"),
]
