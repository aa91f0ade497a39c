"""The Semantic Segmentation serving handler: `load(model_dir)` for `opensage.serving` (spec
algorithms §18(d)).

One image per request, `image/jpeg` (or `image/png`). `Accept: image/png` (the default) answers
an indexed (palette) PNG mask of the input's H x W, one class id per pixel;
`application/x-recordio-protobuf` or `application/x-protobuf` answers one RecordIO-wrapped
`Record` whose `features["target"]` is the float32 per-class probabilities (classes x H x W,
row-major) and `features["shape"]` the int32 `[1, num_classes, H, W]`; argmax over the classes
gives the PNG's mask. A body that is not an image, or a JPEG sent as image/png (or the reverse),
is refused (400, 415); other content types are 415 and other Accept types 406.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from opensage.algorithms.base import RECORDIO, UserError
from opensage.algorithms.inference import check_image_signature
from opensage.algorithms.ntm.model import configure_threads, device
from opensage.algorithms.semantic_segmentation.data import decode_image
from opensage.algorithms.semantic_segmentation.model import Segmenter, build, read_model
from opensage.algorithms.semantic_segmentation.spec import JPEG, PNG, PROTOBUF, SPEC
from opensage.algorithms.semantic_segmentation.synthetic import PALETTE
from opensage.serving.environment import ServingEnvironment
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result, accept_list, builtin_execution_parameters, media_type


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> SegmentationHandler:
    arch, arrays = read_model(model_dir)
    configure_threads()
    segmenter = Segmenter(build(arch, arrays), device())
    return SegmentationHandler(segmenter, ServingEnvironment.from_env(environ).workers)


class SegmentationHandler:
    """A class mask or class probabilities of one image; the network is read-only."""

    def __init__(self, segmenter: Segmenter, workers: int = 1) -> None:
        self.segmenter = segmenter
        self.workers = workers

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        kind = media_type(content_type) or JPEG
        if kind not in SPEC.request_types:
            raise InferenceError(
                415,
                f"Content type {content_type} is not supported by the Semantic Segmentation "
                f"algorithm; send one image as {' or '.join(SPEC.request_types)}.",
            )
        answer = _accept(accept)
        if not body:
            return Result(b"", answer, 204)
        check_image_signature(body, kind)
        try:
            image = decode_image(body, "The request")
        except UserError as exc:
            raise InferenceError(400, str(exc)) from None
        probabilities = self.segmenter.probabilities(image)
        if answer == PNG:
            return Result(mask_png(probabilities.argmax(axis=0)), PNG)
        return Result(protobuf_response(probabilities), answer)

    def execution_parameters(self) -> Mapping[str, object]:
        return builtin_execution_parameters(self.workers)


def mask_png(mask: npt.NDArray[Any]) -> bytes:
    """Class ids (H, W) as an indexed PNG: palette mode, pixel value = class id."""
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    colours = [0, 0, 0, *[c for rgb in PALETTE for c in rgb]]
    image.putpalette((colours * 52)[: 256 * 3])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def protobuf_response(probabilities: npt.NDArray[np.float32]) -> bytes:
    """One RecordIO-wrapped Record: `features["target"]` float32 probabilities (row-major
    classes x H x W) and `features["shape"]` int32 `[1, classes, H, W]`."""
    from opensage.formats.recordio import encode_record
    from opensage.formats.wire import F32, I32, encode_tensor, record_bytes

    shape = np.asarray([1, *probabilities.shape], dtype=np.int32)
    record = record_bytes(
        {
            "target": encode_tensor(F32, np.ascontiguousarray(probabilities, np.float32).ravel()),
            "shape": encode_tensor(I32, shape),
        }
    )
    return encode_record(record)


def _accept(accept: str | None) -> str:
    wanted = accept_list(accept)
    if not wanted:
        return PNG
    for kind in wanted:
        if kind in ("*/*", "image/*"):
            return PNG
        if kind in SPEC.accept_types:
            return kind
    raise InferenceError(
        406,
        f"Accept type {accept} is not supported by the Semantic Segmentation algorithm; use "
        f"{PNG}, {RECORDIO} or {PROTOBUF}.",
    )
