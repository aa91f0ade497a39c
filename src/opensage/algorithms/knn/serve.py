"""The k-NN built-in's serving handler: `load(model_dir)` for `opensage.serving`.

Requests in CSV (features only), JSON, JSON Lines or RecordIO-protobuf (dense or sparse);
answers in JSON (`{"predictions": [{"predicted_label": 0.0}, ...]}`, the default), JSON Lines
or RecordIO-protobuf (`label["predicted_label"]`). With `verbose=true` on the Accept type (JSON
and RecordIO-protobuf) each answer also has `distances`, ascending, and the aligned `labels`
of the k neighbours (spec algorithms §5(d)).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opensage.algorithms.inference import BuiltinHandler, Features, Row, dense
from opensage.algorithms.knn.model import KNNModel
from opensage.algorithms.knn.spec import SPEC


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> KNNHandler:
    return KNNHandler(KNNModel.load(model_dir), environ)


class KNNHandler(BuiltinHandler):
    """Predicts with the model's index; the model is read-only, so requests run in parallel."""

    def __init__(self, model: KNNModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, model.feature_dim, environ)
        self.model = model

    def predict(self, features: Features, params: Mapping[str, str]) -> list[Row]:
        prediction = self.model.predict(dense(features))
        predicted: list[Any] = prediction.predicted.tolist()
        if params.get("verbose", "").strip().lower() != "true":
            return [{"predicted_label": value} for value in predicted]
        distances: list[Any] = prediction.distances.tolist()
        labels: list[Any] = prediction.labels.tolist()
        return [
            {"predicted_label": value, "distances": d, "labels": lab}
            for value, d, lab in zip(predicted, distances, labels, strict=True)
        ]
