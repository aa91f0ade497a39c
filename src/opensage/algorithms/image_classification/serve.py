"""The Image Classification serving handler: `load(model_dir)` for `opensage.serving` (spec
algorithms §16(d)).

One image per request, `image/jpeg`, `image/png` or `application/x-image` (either), resized to
`image_shape` without keeping the aspect ratio. `application/json` answers the bare list of
`num_classes` probabilities (softmax; per-class sigmoids for a multi-label model);
`application/jsonlines` answers `{"prediction": [...]}` on one line. A body that is not an image,
or is a JPEG sent as `image/png` (or the reverse), is refused: 400 and 415.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from opensage.algorithms.base import JSON, JSONLINES
from opensage.algorithms.image_classification.model import (
    Classifier,
    build,
    decode_image,
    read_model,
    stretch_image,
)
from opensage.algorithms.image_classification.spec import SPEC
from opensage.algorithms.inference import check_image_signature
from opensage.algorithms.ntm.model import configure_threads, device
from opensage.serving.environment import ServingEnvironment
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result, accept_list, builtin_execution_parameters, media_type


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> ImageClassifierHandler:
    arch, arrays = read_model(model_dir)
    configure_threads()
    classifier = Classifier(build(arch, arrays), device())
    return ImageClassifierHandler(classifier, ServingEnvironment.from_env(environ).workers)


class ImageClassifierHandler:
    """Class probabilities of one image; the network is in eval mode and read-only."""

    def __init__(self, classifier: Classifier, workers: int = 1) -> None:
        self.classifier = classifier
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
                f"Content type {content_type} is not supported by the Image Classification "
                f"algorithm; send one image as {', '.join(SPEC.request_types)}.",
            )
        answer = _accept(accept)
        if not body:
            return Result(b"", answer, 204)
        check_image_signature(body, kind)
        arch = self.classifier.arch
        try:
            image = decode_image(body, arch.image_shape[0])
        except ValueError as exc:
            raise InferenceError(400, f"Unable to read the image: {exc}") from None
        pixels = stretch_image(image, arch.image_shape)[None]
        probabilities = [float(p) for p in self.classifier.probabilities(pixels)[0].tolist()]
        if answer == JSON:
            return Result(json.dumps(probabilities).encode(), JSON)
        return Result((json.dumps({"prediction": probabilities}) + "\n").encode(), JSONLINES)

    def execution_parameters(self) -> Mapping[str, object]:
        return builtin_execution_parameters(self.workers)


def _accept(accept: str | None) -> str:
    wanted = accept_list(accept)
    if not wanted:
        return JSON
    for kind in wanted:
        if kind in ("*/*", "application/*"):
            return JSON
        if kind in SPEC.accept_types:
            return kind
    raise InferenceError(
        406,
        f"Accept type {accept} is not supported by the Image Classification algorithm; use "
        f"{JSON} or {JSONLINES}.",
    )
