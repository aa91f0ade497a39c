"""PCA's conformance cases: regular and randomized, centred and not, dense and sparse."""

from __future__ import annotations

import numpy as np

from tests.algorithms.conformance import Array, Case


def _correlated() -> tuple[Array, None]:
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(200, 3))
    mixing = rng.normal(size=(3, 8))
    x = latent @ mixing + 0.05 * rng.normal(size=(200, 8)) + 3.0
    return x.astype(np.float32), None


def _sparse() -> tuple[Array, None]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 10)) * (rng.random((150, 10)) < 0.3)
    return x.astype(np.float32), None


def _case(name: str, data: object, **hyperparameters: str) -> Case:
    return Case(
        name=f"pca-{name}",
        algorithm="pca",
        hyperparameters={"feature_dim": "8", "mini_batch_size": "50", **hyperparameters},
        data=data,  # type: ignore[arg-type]
        response_keys=("projection",),
        channels=("train", "test"),
        envelope="projections",
        csv_content_type="text/csv;label_size=0",
    )


CASES = [
    _case("regular", _correlated, num_components="3"),
    _case(
        "randomized",
        _correlated,
        num_components="2",
        algorithm_mode="randomized",
        extra_components="2",
    ),
    _case("uncentred", _correlated, num_components="4", subtract_mean="false"),
    Case(
        name="pca-sparse-randomized",
        algorithm="pca",
        hyperparameters={
            "feature_dim": "10",
            "mini_batch_size": "32",
            "num_components": "3",
            "algorithm_mode": "randomized",
        },
        data=_sparse,
        response_keys=("projection",),
        envelope="projections",
        csv_content_type="text/csv;label_size=0",
        sparse=True,
    ),
]
