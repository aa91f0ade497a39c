"""The K-Means serving handler: `load(model_dir)` for `opensage.serving` (spec algorithms §4(d)).

Requests: CSV rows, JSON `{"instances": [...]}`, JSON Lines and RecordIO-protobuf (dense or
sparse), all parsed by `BuiltinHandler`. Each row answers
`{"closest_cluster": 1.0, "distance_to_cluster": 3.0}`: the cluster id as a float, as SageMaker
sends it, and the Euclidean (not squared) distance to that centroid; under `predictions` in
JSON, one object a line in JSON Lines, two `label` tensors per record in RecordIO, and
`closest_cluster,distance_to_cluster` a line in CSV.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from opensage.algorithms.inference import BuiltinHandler, Features, Row
from opensage.algorithms.kmeans.model import KMeansModel
from opensage.algorithms.kmeans.spec import SPEC
from opensage.serving.handler import Handler


class KMeansHandler(BuiltinHandler):
    """Nearest centroid per row; the model is read-only, so requests share it safely."""

    def __init__(self, model: KMeansModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, model.width, environ)
        self.model = model

    def predict(self, features: Features, params: Mapping[str, str]) -> list[Row]:
        clusters, distances = self.model.predict(features)
        return [
            {"closest_cluster": float(cluster), "distance_to_cluster": float(distance)}
            for cluster, distance in zip(clusters.tolist(), distances.tolist(), strict=True)
        ]


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> Handler:
    return KMeansHandler(KMeansModel.load(model_dir), environ)
