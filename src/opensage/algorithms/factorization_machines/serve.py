"""The Factorization Machines serving handler: `load(model_dir)` for `opensage.serving`.

Requests in JSON / JSON Lines instances (dense or sparse) or RecordIO-protobuf (dense or sparse);
CSV is refused with 415, as SageMaker's algorithm takes no CSV. A request without a content type
is read as JSON (what the SDK's predictor sends). Answers as Linear Learner's (spec §7(d)):

* binary: `{"score": sigmoid(y), "predicted_label": 0|1}` (1 iff score >= 0.5);
* regressor: `{"score": y}`;

in JSON (`{"predictions": [...]}`, the default), JSON Lines or RecordIO-protobuf
(`label["score"]`, `label["predicted_label"]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from opensage.algorithms.base import CSV, JSON
from opensage.algorithms.factorization_machines.model import FMModel
from opensage.algorithms.factorization_machines.spec import SPEC
from opensage.algorithms.inference import BuiltinHandler, Columns, Features
from opensage.formats.content_types import MediaType, parse_media_type
from opensage.serving.errors import InferenceError


class FactorizationMachinesHandler(BuiltinHandler):
    """Stateless per request: the model is read-only after loading."""

    def __init__(self, model: FMModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, model.feature_dim, environ)
        self.model = model

    def predict(self, features: Features, params: Mapping[str, str]) -> Columns:
        return Columns(self.model.columns(features))

    def _content_type(self, content_type: str | None) -> MediaType:
        try:
            is_csv = parse_media_type(content_type or JSON).essence == CSV
        except ValueError:
            is_csv = False
        if is_csv:
            raise InferenceError(
                415,
                "The Factorization Machines algorithm does not take CSV requests; send "
                f"{', '.join(SPEC.request_types)}.",
            )
        return super()._content_type(content_type or JSON)


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> FactorizationMachinesHandler:
    return FactorizationMachinesHandler(FMModel.load(model_dir), environ)
