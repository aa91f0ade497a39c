"""The PCA built-in on the algorithm contract: its table, channels and content types.

Plain data: the API server imports this to check a CreateTrainingJob before any process starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    AT_LEAST_1,
    CSV,
    RECORDIO,
    Algorithm,
    ChannelSpec,
    Hyperparameter,
    HyperparameterError,
    HyperparameterTable,
    Interval,
    Kind,
    Value,
)

REGULAR: Final = "regular"
RANDOMIZED: Final = "randomized"
AUTO_EXTRA: Final = -1
"""`extra_components=-1`: max(10, num_components) extra sketch rows, SageMaker's default."""


def _components_fit_features(values: Mapping[str, Value]) -> None:
    """More components than features cannot be found; SageMaker refuses it before training."""
    k, d = values.get("num_components"), values.get("feature_dim")
    if isinstance(k, int) and isinstance(d, int) and k > d:
        raise HyperparameterError(
            "num_components", f"({k}) must not exceed feature_dim ({d})", None
        )


TABLE: Final = HyperparameterTable(
    "PCA algorithm",
    (
        Hyperparameter("feature_dim", Kind.INT, interval=AT_LEAST_1, required=True),
        Hyperparameter("mini_batch_size", Kind.INT, interval=AT_LEAST_1, required=True),
        Hyperparameter("num_components", Kind.INT, interval=AT_LEAST_1, required=True),
        Hyperparameter(
            "algorithm_mode", Kind.CHOICE, default=REGULAR, options=(REGULAR, RANDOMIZED)
        ),
        Hyperparameter("subtract_mean", Kind.BOOL, default="true"),
        Hyperparameter(
            "extra_components", Kind.INT, default=str(AUTO_EXTRA), interval=Interval(AUTO_EXTRA)
        ),
    ),
    checks=(_components_fit_features,),
)

SPEC: Final = Algorithm(
    name="pca",
    title="PCA",
    repositories=("pca",),
    hyperparameters=TABLE,
    metrics=(),
    channels=(
        ChannelSpec("train", required=True, content_types=(RECORDIO, CSV), csv_label_size=0),
        ChannelSpec("test", content_types=(RECORDIO, CSV), csv_label_size=0),
    ),
)
