"""Factorization Machines' conformance cases: a binary classifier and a regressor on sparse
one-hot user x item rows with the test channel, so together they log every declared metric.
FM takes RecordIO only: the suite checks that CSV training fails with a clear reason."""

from __future__ import annotations

import numpy as np

from tests.algorithms.conformance import RECORDIO, Array, Case

USERS, ITEMS = 12, 18
FEATURES = USERS + ITEMS
FAST = {
    "feature_dim": str(FEATURES),
    "num_factors": "4",
    "epochs": "3",
    "mini_batch_size": "32",
    "bias_lr": "0.05",
    "linear_lr": "0.05",
    "factors_lr": "0.05",
}


def _click_rows(seed: int) -> tuple[Array, Array]:
    """One-hot (user, item) rows and a planted rank-2 interaction score."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, USERS, 160)
    items = rng.integers(0, ITEMS, 160)
    x = np.zeros((160, FEATURES), dtype=np.float32)
    x[np.arange(160), users] = 1.0
    x[np.arange(160), USERS + items] = 1.0
    u, v = rng.normal(size=(USERS, 2)), rng.normal(size=(ITEMS, 2))
    score = np.einsum("rk,rk->r", u[users], v[items])
    return x, score.astype(np.float32)


def _binary() -> tuple[Array, Array]:
    x, score = _click_rows(0)
    return x, (score > 0).astype(np.float32)


def _regression() -> tuple[Array, Array]:
    return _click_rows(1)


CASES = [
    Case(
        name="factorization-machines-binary",
        algorithm="factorization_machines",
        hyperparameters={"predictor_type": "binary_classifier", **FAST},
        data=_binary,
        response_keys=("score", "predicted_label"),
        channels=("train", "test"),
        metrics=(
            "test:binary_classification_accuracy",
            "test:binary_classification_cross_entropy",
            "test:binary_f_beta",
        ),
        sparse=True,
        training_content_types=(RECORDIO,),
    ),
    Case(
        name="factorization-machines-regressor",
        algorithm="factorization_machines",
        hyperparameters={
            "predictor_type": "regressor",
            **FAST,
            "factors_init_method": "uniform",
            "factors_init_scale": "0.05",
            "linear_init_method": "constant",
            "linear_init_value": "0",
            "clip_gradient": "10",
        },
        data=_regression,
        response_keys=("score",),
        channels=("train", "test"),
        metrics=("test:rmse",),
        sparse=True,
        training_content_types=(RECORDIO,),
    ),
]
