"""The PCA built-in's serving handler: `load(model_dir)` for `opensage.serving`.

Requests: CSV rows, JSON / JSON Lines instances (dense or sparse) or RecordIO-protobuf records
(spec algorithms 1.5). Each row answers `{"projection": [...]}`, `num_components` values of
`(x - mean) . v` (no mean without `subtract_mean`), components by decreasing singular value:
JSON under the envelope `projections`, JSON Lines one object a line, RecordIO-protobuf the
Float32 tensor `label["projection"]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from opensage.algorithms.inference import BuiltinHandler, Features, Row
from opensage.algorithms.pca.model import PCAModel
from opensage.algorithms.pca.spec import SPEC


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> PCAHandler:
    return PCAHandler(PCAModel.load(model_dir), environ)


class PCAHandler(BuiltinHandler):
    envelope = "projections"

    def __init__(self, model: PCAModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, model.feature_dim, environ)
        self.model = model

    def predict(self, features: Features, params: Mapping[str, str]) -> list[Row]:
        return [{"projection": row} for row in self.model.project(features).tolist()]
