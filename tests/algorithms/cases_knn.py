"""k-NN's conformance cases: a flat classifier and an IVF-Flat regressor with a sign projection,
both scored on a test channel, an IVF-PQ classifier with FJLT and a cosine IVF classifier (both
also trained and asked with sparse records)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_classification, make_regression

from tests.algorithms.conformance import Array, Case


def _classes() -> tuple[Array, Array]:
    x, y = make_classification(
        n_samples=200, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    return x.astype(np.float32), y.astype(np.float32)


def _regression() -> tuple[Array, Array]:
    x, y = make_regression(n_samples=200, n_features=8, noise=0.1, random_state=0)
    return x.astype(np.float32), y.astype(np.float32)


_VERBOSE = ("distances", "labels")

CASES = [
    Case(
        name="knn-classifier-flat",
        algorithm="knn",
        hyperparameters={
            "feature_dim": "6",
            "k": "5",
            "predictor_type": "classifier",
            "sample_size": "200",
        },
        data=_classes,
        response_keys=("predicted_label",),
        verbose_keys=_VERBOSE,
        channels=("train", "test"),
        metrics=("test:accuracy",),
    ),
    Case(
        name="knn-regressor-ivf-sign",
        algorithm="knn",
        hyperparameters={
            "feature_dim": "8",
            "k": "4",
            "predictor_type": "regressor",
            "sample_size": "150",
            "dimension_reduction_type": "sign",
            "dimension_reduction_target": "5",
            "index_type": "faiss.IVFFlat",
            "faiss_index_ivf_nlists": "4",
            "mini_batch_size": "64",
        },
        data=_regression,
        response_keys=("predicted_label",),
        verbose_keys=_VERBOSE,
        channels=("train", "test"),
        metrics=("test:mse",),
        tolerance=1e-3,
    ),
    Case(
        name="knn-classifier-ivfpq-fjlt",
        algorithm="knn",
        hyperparameters={
            "feature_dim": "6",
            "k": "3",
            "predictor_type": "classifier",
            "sample_size": "200",
            "dimension_reduction_type": "fjlt",
            "dimension_reduction_target": "4",
            "index_type": "faiss.IVFPQ",
            "faiss_index_pq_m": "2",
        },
        data=_classes,
        response_keys=("predicted_label",),
        verbose_keys=_VERBOSE,
        sparse=True,
    ),
    Case(
        name="knn-classifier-cosine",
        algorithm="knn",
        hyperparameters={
            "feature_dim": "6",
            "k": "7",
            "predictor_type": "classifier",
            "sample_size": "300",
            "index_type": "faiss.IVFFlat",
            "index_metric": "COSINE",
        },
        data=_classes,
        response_keys=("predicted_label",),
        verbose_keys=_VERBOSE,
        sparse=True,
    ),
]
