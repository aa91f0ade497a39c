"""The Object Detection serving handler: `load(model_dir)` for `opensage.serving` (spec
algorithms §17(d)).

One image per request, `image/jpeg`, `image/png` or `application/x-image` (either), stretched to
`image_shape` square. `application/json` answers `{"prediction": [[class_id, score, xmin, ymin,
xmax, ymax], ...]}` (class id a float, corners normalised by the image's width and height,
best first, every detection scoring above 0.01 after NMS at the model's `nms_threshold`:
clients filter by score); `application/json;annotation=1` answers the pixel form
`{"image_size": [{"width", "height", "depth"}], "annotations": [{"class_id", "score", "left",
"top", "width", "height"}, ...]}`; `application/jsonlines` (batch transform) the `prediction`
object on one line. A body that is not an image, or a JPEG sent as `image/png` (or the
reverse), is refused: 400 and 415.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from opensage.algorithms.base import JSON, JSONLINES
from opensage.algorithms.image_classification.model import decode_image, stretch_image
from opensage.algorithms.inference import check_image_signature
from opensage.algorithms.ntm.model import configure_threads, device
from opensage.algorithms.object_detection.files import HYPERPARAMS, read_model
from opensage.algorithms.object_detection.model import SSD
from opensage.algorithms.object_detection.spec import SPEC
from opensage.algorithms.object_detection.train import load_weights, predict
from opensage.serving.environment import ServingEnvironment
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result, builtin_execution_parameters, media_type

DEFAULT_NMS: Final = 0.45


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> ObjectDetectorHandler:
    arch, arrays = read_model(model_dir)
    configure_threads()
    torch.manual_seed(0)
    net = SSD(arch)
    load_weights(net, arrays)
    where = device()
    threshold = DEFAULT_NMS
    hyperparams = model_dir / HYPERPARAMS
    if hyperparams.is_file():
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            threshold = float(json.loads(hyperparams.read_text()).get("nms_threshold", threshold))
    workers = ServingEnvironment.from_env(environ).workers
    return ObjectDetectorHandler(net.to(where).eval(), where, threshold, workers)


class ObjectDetectorHandler:
    """Detections in one image; the network is in eval mode and read-only."""

    def __init__(
        self, net: SSD, where: torch.device, nms_threshold: float, workers: int = 1
    ) -> None:
        self.net = net
        self.device = where
        self.nms_threshold = nms_threshold
        self.workers = workers

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        kind = media_type(content_type) or SPEC.request_types[0]
        if kind not in SPEC.request_types:
            raise InferenceError(
                415,
                f"Content type {content_type} is not supported by the Object Detection "
                f"algorithm; send one image as {', '.join(SPEC.request_types)}.",
            )
        answer, annotation = choose_accept(accept)
        if not body:
            return Result(b"", answer, 204)
        check_image_signature(body, kind)
        try:
            image = decode_image(body, 3)
        except ValueError as exc:
            raise InferenceError(400, f"Unable to read the image: {exc}") from None
        size = self.net.arch.image_shape
        pixels = stretch_image(image, (3, size, size))[None]
        found = predict(self.net, pixels, self.device, self.nms_threshold)[0]
        if annotation:
            document = pixel_annotations(found, *image.size)
            return Result(json.dumps(document).encode(), JSON)
        rows = prediction_rows(found)
        if answer == JSON:
            return Result(json.dumps({"prediction": rows}).encode(), JSON)
        return Result((json.dumps({"prediction": rows}) + "\n").encode(), JSONLINES)

    def execution_parameters(self) -> Mapping[str, object]:
        return builtin_execution_parameters(self.workers)


def prediction_rows(found: npt.NDArray[np.float32]) -> list[list[float]]:
    """`[class_id, score, xmin, ymin, xmax, ymax]` rows, as floats."""
    return [[float(v) for v in row] for row in np.asarray(found, dtype=np.float64).tolist()]


def pixel_annotations(found: npt.NDArray[np.float32], width: int, height: int) -> dict[str, Any]:
    """The `annotation=1` form: pixel boxes from the top-left corner of the original image."""
    boxes = []
    for cls, score, x0, y0, x1, y1 in np.asarray(found, dtype=np.float64).tolist():
        left, top = round(x0 * width), round(y0 * height)
        boxes.append(
            {
                "class_id": int(cls),
                "score": float(score),
                "left": left,
                "top": top,
                "width": round(x1 * width) - left,
                "height": round(y1 * height) - top,
            }
        )
    return {"image_size": [{"width": width, "height": height, "depth": 3}], "annotations": boxes}


def choose_accept(accept: str | None) -> tuple[str, bool]:
    """The answer's media type and whether the `annotation=1` form is wanted."""
    if not accept or not accept.strip():
        return JSON, False
    for part in accept.split(","):
        kind = media_type(part)
        if not kind:
            continue
        params = {}
        for item in part.split(";")[1:]:
            key, _, value = item.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        if kind in ("*/*", "application/*"):
            return JSON, False
        if kind == JSON:
            return JSON, params.get("annotation") == "1"
        if kind in SPEC.accept_types:
            return kind, False
    raise InferenceError(
        406,
        f"Accept type {accept} is not supported by the Object Detection algorithm; use {JSON}, "
        f"{JSON};annotation=1 or {JSONLINES}.",
    )
