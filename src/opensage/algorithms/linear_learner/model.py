"""The fitted linear model: weights in the user's feature space (normalisation already folded in),
so a prediction is one matmul, for a dense array or a CSR matrix alike.

Stored as `model_algo-1` (`artifacts.save_model`: an npz zip of `weights`, `bias` and the
settings): binary scores are probabilities for the logistic loss and raw margins for hinge, with
`predicted_label = score >= threshold` (the calibrated threshold); multiclass scores are the
class probabilities and `predicted_label` their argmax; a regressor's score is its output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.artifacts import load_model, save_model
from opensage.algorithms.linear_learner import losses
from opensage.algorithms.linear_learner.spec import BINARY, MULTICLASS, PREDICTOR_TYPES

Array = npt.NDArray[Any]
FORMAT_VERSION: Final = 1


@dataclass
class LinearModel:
    """`weights` is (features, outputs), `bias` (outputs,); one output unless multiclass."""

    predictor_type: str
    loss: str
    weights: Array
    bias: Array
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.weights.shape[0])

    def outputs(self, features: Any) -> Array:
        """The linear outputs, float64, (rows, outputs)."""
        z = features @ self.weights
        out: Array = np.asarray(z, dtype=np.float64) + self.bias
        return out

    def predict(self, features: Any) -> tuple[Array, Array | None]:
        """(scores, predicted labels or None): scores (rows,) or, multiclass, (rows, classes)."""
        z = self.outputs(features)
        if self.predictor_type == MULTICLASS:
            probabilities = losses.softmax(z)
            return probabilities, np.argmax(probabilities, axis=1)
        score = losses.scores(self.loss, z[:, 0])
        if self.predictor_type == BINARY:
            return score, (score >= self.threshold).astype(np.int64)
        return score, None

    def columns(self, features: Any) -> dict[str, Array]:
        """The response's keys as whole columns, as the spec's inference table shows."""
        scores, labels = self.predict(features)
        if labels is None:
            return {"score": scores}
        return {"score": scores, "predicted_label": labels}

    def save(self, model_dir: Path) -> Path:
        meta = {
            "format": FORMAT_VERSION,
            "predictor_type": self.predictor_type,
            "loss": self.loss,
            "threshold": self.threshold,
            "info": self.info,
        }
        return save_model(model_dir, {"weights": self.weights, "bias": self.bias}, meta)

    @classmethod
    def load(cls, model_dir: Path) -> LinearModel:
        arrays, meta = load_model(model_dir)
        if meta.get("predictor_type") not in PREDICTOR_TYPES or "weights" not in arrays:
            raise ValueError(f"{model_dir} does not hold a Linear Learner model")
        weights = np.asarray(arrays["weights"], dtype=np.float64)
        bias = np.asarray(arrays["bias"], dtype=np.float64)
        if weights.ndim != 2 or bias.shape != (weights.shape[1],):
            raise ValueError(f"{model_dir}: weights {weights.shape} and bias {bias.shape} differ")
        return cls(
            predictor_type=str(meta["predictor_type"]),
            loss=str(meta["loss"]),
            weights=weights,
            bias=bias,
            threshold=float(meta.get("threshold", 0.5)),
            info=dict(meta.get("info", {})),
        )
