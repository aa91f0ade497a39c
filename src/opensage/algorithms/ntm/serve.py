"""The NTM serving handler: `load(model_dir)` for `opensage.serving` (spec algorithms §12(d)).

Requests: CSV rows of word counts, JSON / JSON Lines instances (dense or sparse) or
RecordIO-protobuf records (dense or sparse). Each document answers
`{"topic_weights": [num_topics values summing to 1]}`, `softmax(mu)` of the encoder
(deterministic): JSON under `predictions`, JSON Lines one object a line, RecordIO-protobuf the
Float32 tensor `label["topic_weights"]`. A negative or non-finite count is refused with a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from opensage.algorithms.inference import BuiltinHandler, Columns, Features, dense
from opensage.algorithms.ntm.model import NTMModel, configure_threads
from opensage.algorithms.ntm.spec import SPEC
from opensage.serving.errors import InferenceError


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> NTMHandler:
    model = NTMModel.load(model_dir)
    configure_threads(model.arch.work(1000))
    return NTMHandler(model, environ)


class NTMHandler(BuiltinHandler):
    """Topic weights per document; the network is in eval mode and read-only."""

    def __init__(self, model: NTMModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, model.feature_dim, environ)
        self.model = model

    def predict(self, features: Features, params: Mapping[str, str]) -> Columns:
        values = features.data if sp.issparse(features) else np.asarray(features)
        if values.size and (not np.isfinite(values).all() or (values < 0).any()):
            raise InferenceError(
                400, "NTM reads word counts: every value must be a non-negative number."
            )
        return Columns({"topic_weights": self.model.topic_weights(dense(features))})
