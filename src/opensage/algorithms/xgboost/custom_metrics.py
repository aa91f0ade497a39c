"""The metrics the container computes itself (accuracy, f1, mse, r2, ...), as scikit-learn scores.

xgboost has no such eval metrics, so they are passed to `xgb.train` as one `custom_metric`
function. With a built-in objective xgboost hands it transformed predictions (probabilities,
class ids, or one probability per class for `multi:softprob`), which `class_labels` turns into
class ids. Values are printed after xgboost's own metrics on each round's log line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import xgboost as xgb
from sklearn import metrics as sk

Score = Callable[..., Any]
CustomMetric = Callable[[npt.NDArray[Any], xgb.DMatrix], list[tuple[str, float]]]

CLASSIFICATION: Final[dict[str, Score]] = {
    "accuracy": sk.accuracy_score,
    "balanced_accuracy": sk.balanced_accuracy_score,
    "f1": partial(sk.f1_score, average="macro", zero_division=0),
    "f1_binary": partial(sk.f1_score, average="binary", zero_division=0),
    "f1_macro": partial(sk.f1_score, average="macro", zero_division=0),
    "precision": partial(sk.precision_score, average="binary", zero_division=0),
    "precision_macro": partial(sk.precision_score, average="macro", zero_division=0),
    "precision_micro": partial(sk.precision_score, average="micro", zero_division=0),
    "recall": partial(sk.recall_score, average="binary", zero_division=0),
    "recall_macro": partial(sk.recall_score, average="macro", zero_division=0),
    "recall_micro": partial(sk.recall_score, average="micro", zero_division=0),
}
REGRESSION: Final[dict[str, Score]] = {
    "mse": sk.mean_squared_error,
    "r2": sk.r2_score,
}


def class_labels(predictions: npt.NDArray[Any], objective: str) -> npt.NDArray[np.int64]:
    """Class ids from what xgboost predicts for `objective`."""
    ids: npt.NDArray[np.int64]
    if predictions.ndim == 2:
        ids = np.argmax(predictions, axis=1).astype(np.int64)
    elif objective == "multi:softmax":
        ids = np.rint(predictions).astype(np.int64)
    else:
        threshold = 0.0 if objective == "binary:logitraw" else 0.5
        ids = (predictions > threshold).astype(np.int64)
    return ids


def make_custom_metric(names: Sequence[str], objective: str) -> CustomMetric | None:
    """One function computing `names` in order, or None when none of them is ours."""
    chosen = [name for name in names if name in CLASSIFICATION or name in REGRESSION]
    if not chosen:
        return None

    def custom_metric(predictions: npt.NDArray[Any], data: xgb.DMatrix) -> list[tuple[str, float]]:
        labels = data.get_label()
        weights = data.get_weight()
        weight = weights if weights.size else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. r2 on a constant label: a value, not an error
            return [(name, _score(name, labels, predictions, objective, weight)) for name in chosen]

    return custom_metric


def _score(
    name: str,
    labels: npt.NDArray[Any],
    predictions: npt.NDArray[Any],
    objective: str,
    weight: npt.NDArray[Any] | None,
) -> float:
    if name in REGRESSION:
        return float(REGRESSION[name](labels, predictions, sample_weight=weight))
    truth = np.rint(labels).astype(np.int64)
    return float(
        CLASSIFICATION[name](truth, class_labels(predictions, objective), sample_weight=weight)
    )
