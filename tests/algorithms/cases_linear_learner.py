"""Linear Learner's conformance cases: binary, multiclass and regression, each with validation
and test channels, so that together they log every declared metric."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_classification, make_regression

from tests.algorithms.conformance import Array, Case

CHANNELS = ("train", "validation", "test")
FAST = {"epochs": "4", "mini_batch_size": "40", "num_models": "4"}
BINARY_METRICS = (
    "binary_classification_accuracy",
    "binary_f_beta",
    "precision",
    "recall",
    "roc_auc_score",
)
MULTICLASS_METRICS = (
    "multiclass_accuracy",
    "multiclass_top_k_accuracy",
    "macro_f_beta",
    "macro_precision",
    "macro_recall",
    "dcg",
)


def _both(*names: str) -> tuple[str, ...]:
    return tuple(f"{channel}:{name}" for channel in ("validation", "test") for name in names)


def _binary() -> tuple[Array, Array]:
    x, y = make_classification(n_samples=160, n_features=6, random_state=0)
    return x.astype(np.float32), y.astype(np.float32)


def _multiclass() -> tuple[Array, Array]:
    x, y = make_classification(
        n_samples=200, n_features=6, n_informative=4, n_classes=4, random_state=0
    )
    return x.astype(np.float32), y.astype(np.float32)


def _regression() -> tuple[Array, Array]:
    x, y = make_regression(n_samples=150, n_features=5, noise=0.1, random_state=0)
    return x.astype(np.float32), y.astype(np.float32)


CASES = [
    Case(
        name="linear-learner-binary",
        algorithm="linear_learner",
        hyperparameters={"predictor_type": "binary_classifier", "feature_dim": "6", **FAST},
        data=_binary,
        response_keys=("score", "predicted_label"),
        channels=CHANNELS,
        metrics=_both("objective_loss", *BINARY_METRICS),
    ),
    Case(
        name="linear-learner-multiclass",
        algorithm="linear_learner",
        hyperparameters={
            "predictor_type": "multiclass_classifier",
            "num_classes": "4",
            "accuracy_top_k": "2",
            "balance_multiclass_weights": "True",
            **FAST,
        },
        data=_multiclass,
        response_keys=("score", "predicted_label"),
        channels=CHANNELS,
        metrics=_both("objective_loss", *MULTICLASS_METRICS),
    ),
    Case(
        name="linear-learner-regression",
        algorithm="linear_learner",
        hyperparameters={"predictor_type": "regressor", "loss": "huber_loss", **FAST},
        data=_regression,
        response_keys=("score",),
        channels=CHANNELS,
        metrics=(*_both("objective_loss", "mse", "absolute_loss"), "validation:rmse"),
    ),
]
