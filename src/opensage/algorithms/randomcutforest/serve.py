"""The Random Cut Forest's serving handler: `load(model_dir)` for `opensage.serving`.

Requests: CSV rows, JSON / JSON Lines instances (dense or sparse) or RecordIO-protobuf records
(spec algorithms 1.5). Each row answers `{"score": x}`, its anomaly score (the collusive
displacement averaged over the trees; higher is more anomalous): JSON under the envelope
`scores`, JSON Lines one object a line, RecordIO-protobuf the Float32 tensor `label["score"]`.
There is no CSV answer, as in SageMaker. A row of the wrong width, or holding NaN or an
infinity, is a 400 saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from opensage.algorithms.inference import BuiltinHandler, Columns, Features
from opensage.algorithms.randomcutforest.model import Forest, dense_rows
from opensage.algorithms.randomcutforest.spec import SPEC
from opensage.serving.errors import InferenceError


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> RandomCutForestHandler:
    return RandomCutForestHandler(Forest.load(model_dir), environ)


class RandomCutForestHandler(BuiltinHandler):
    """Stateless per request: scoring reads the trees and never changes them."""

    envelope = "scores"

    def __init__(self, model: Forest, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, model.feature_dim, environ)
        self.model = model

    def predict(self, features: Features, params: Mapping[str, str]) -> Columns:
        rows = dense_rows(features)
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            raise InferenceError(
                400, f"Record {int(np.argmin(finite))} has a value that is not a finite number."
            )
        return Columns({"score": self.model.score(rows)})
