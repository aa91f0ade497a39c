"""The Linear Learner's serving handler: `load(model_dir)` for `opensage.serving`.

Requests in CSV (features only), JSON / JSON Lines instances (dense or sparse) or
RecordIO-protobuf; answers in JSON (`{"predictions": [...]}`, the default), JSON Lines or
RecordIO-protobuf (each key a float32 `label` tensor), per spec §2(d):

* binary: `{"score": <probability, or raw margin for hinge_loss>, "predicted_label": 0|1}`,
  the label from the threshold calibrated at training time;
* multiclass: `{"score": [<class probabilities>], "predicted_label": <argmax>}`;
* regressor: `{"score": <prediction>}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from opensage.algorithms.inference import BuiltinHandler, Columns, Features
from opensage.algorithms.linear_learner.model import LinearModel
from opensage.algorithms.linear_learner.spec import SPEC


class LinearLearnerHandler(BuiltinHandler):
    """Stateless per request: the model is read-only after loading."""

    def __init__(self, model: LinearModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, model.feature_dim, environ)
        self.model = model

    def predict(self, features: Features, params: Mapping[str, str]) -> Columns:
        return Columns(self.model.columns(features))


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> LinearLearnerHandler:
    return LinearLearnerHandler(LinearModel.load(model_dir), environ)
