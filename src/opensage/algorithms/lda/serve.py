"""The LDA serving handler: `load(model_dir)` for `opensage.serving` (spec algorithms §11(d)).

Requests: CSV rows of word counts, JSON / JSON Lines instances (dense or sparse) or
RecordIO-protobuf records (dense or sparse). Each document answers
`{"topic_mixture": [num_topics values summing to 1]}` (topics by decreasing alpha): JSON under
`predictions`, JSON Lines one object a line, RecordIO-protobuf the Float32 tensor
`label["topic_mixture"]`. A negative or non-finite count is refused with a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from opensage.algorithms.inference import BuiltinHandler, Columns, Features
from opensage.algorithms.lda.model import LDAModel
from opensage.algorithms.lda.spec import SPEC
from opensage.serving.errors import InferenceError


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> LDAHandler:
    return LDAHandler(LDAModel.load(model_dir), environ)


class LDAHandler(BuiltinHandler):
    """Topic mixtures per document; the model is read-only, so requests share it safely."""

    def __init__(self, model: LDAModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, model.feature_dim, environ)
        self.model = model

    def predict(self, features: Features, params: Mapping[str, str]) -> Columns:
        values = features.data if sp.issparse(features) else np.asarray(features)
        if values.size and (not np.isfinite(values).all() or (values < 0).any()):
            raise InferenceError(
                400, "LDA reads word counts: every value must be a non-negative number."
            )
        mixtures = self.model.mixtures(features).astype(np.float32)
        return Columns({"topic_mixture": mixtures})
