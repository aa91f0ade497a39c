"""XGBoost's conformance cases: binary with validation, and regression."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_classification, make_regression

from tests.algorithms.conformance import Array, Case


def _binary() -> tuple[Array, Array]:
    x, y = make_classification(n_samples=120, n_features=6, random_state=0)
    return x.astype(np.float32), y.astype(np.float32)


def _regression() -> tuple[Array, Array]:
    x, y = make_regression(n_samples=120, n_features=5, noise=0.1, random_state=0)
    return x.astype(np.float32), y.astype(np.float32)


CASES = [
    Case(
        name="xgboost-binary",
        algorithm="xgboost",
        hyperparameters={
            "num_round": "3",
            "objective": "binary:logistic",
            "eval_metric": "auc,logloss",
            "max_depth": "3",
        },
        data=_binary,
        response_keys=("score",),
        channels=("train", "validation"),
        metrics=("train:auc", "validation:auc", "validation:logloss"),
    ),
    Case(
        name="xgboost-regression",
        algorithm="xgboost",
        hyperparameters={"num_round": "3", "max_depth": "3"},
        data=_regression,
        response_keys=("score",),
        channels=("train", "validation"),
        metrics=("train:rmse", "validation:rmse"),
    ),
]
