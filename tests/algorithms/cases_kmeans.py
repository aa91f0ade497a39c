"""K-Means conformance cases: blobs with a test channel (every metric), and sparse rows with
k-means++ seeding and decay."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_blobs

from tests.algorithms.conformance import Array, Case

KEYS = ("closest_cluster", "distance_to_cluster")


def _blobs() -> tuple[Array, None]:
    x, _ = make_blobs(n_samples=150, n_features=4, centers=3, random_state=0)
    return x.astype(np.float32), None


def _sparse() -> tuple[Array, None]:
    rng = np.random.default_rng(0)
    x = rng.random((120, 8)).astype(np.float32)
    x[x < 0.6] = 0.0
    return x, None


CASES = [
    Case(
        name="kmeans-blobs-test-channel",
        algorithm="kmeans",
        hyperparameters={
            "k": "3",
            "feature_dim": "4",
            "mini_batch_size": "50",
            "epochs": "2",
            "eval_metrics": '["msd", "ssd"]',
        },
        data=_blobs,
        response_keys=KEYS,
        channels=("train", "test"),
        metrics=("train:msd", "test:msd", "test:ssd"),
        csv_content_type="text/csv;label_size=0",
    ),
    Case(
        name="kmeans-sparse-kmeans++",
        algorithm="kmeans",
        hyperparameters={
            "k": "4",
            "feature_dim": "8",
            "mini_batch_size": "40",
            "init_method": "kmeans++",
            "local_lloyd_init_method": "random",
            "extra_center_factor": "3",
            "local_lloyd_num_trials": "2",
            "half_life_time_size": "100",
        },
        data=_sparse,
        response_keys=KEYS,
        metrics=("train:msd",),
        csv_content_type="text/csv;label_size=0",
        sparse=True,
    ),
]
