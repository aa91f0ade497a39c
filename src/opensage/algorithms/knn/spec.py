"""The k-NN built-in on the algorithm contract: its table, metrics, channels and types
(spec algorithms §5). Plain data: the API server imports it to check a CreateTrainingJob."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    AT_LEAST_1,
    Algorithm,
    ChannelSpec,
    Hyperparameter,
    HyperparameterError,
    HyperparameterTable,
    Interval,
    Kind,
    Value,
    score_metric,
)

CLASSIFIER: Final = "classifier"
REGRESSOR: Final = "regressor"
FLAT: Final = "faiss.Flat"
IVF_FLAT: Final = "faiss.IVFFlat"
IVF_PQ: Final = "faiss.IVFPQ"
L2: Final = "L2"
INNER_PRODUCT: Final = "INNER_PRODUCT"
COSINE: Final = "COSINE"
PQ_M_OPTIONS: Final = (
    "1", "2", "3", "4", "8", "12", "16", "20", "24", "28", "32", "40", "48", "56", "64", "96",
)  # fmt: skip


def _reduction_target_rules(values: Mapping[str, Value]) -> None:
    """The target is required with a reduction type, meaningless without one, and must
    actually reduce: 0 < target < feature_dim."""
    kind = values.get("dimension_reduction_type")
    target = values.get("dimension_reduction_target")
    if kind is not None and target is None:
        raise HyperparameterError(
            "dimension_reduction_target", f"is required when dimension_reduction_type is {kind}"
        )
    if kind is None and target is not None:
        raise HyperparameterError(
            "dimension_reduction_target",
            "is set but dimension_reduction_type is not; set it to sign or fjlt",
        )
    feature_dim = values.get("feature_dim")
    if isinstance(target, int) and isinstance(feature_dim, int) and target >= feature_dim:
        raise HyperparameterError(
            "dimension_reduction_target",
            f"must be less than feature_dim ({feature_dim})",
            str(target),
        )


def _pq_is_l2_only(values: Mapping[str, Value]) -> None:
    metric = values.get("index_metric", L2)
    if values.get("index_type") == IVF_PQ and metric != L2:
        raise HyperparameterError(
            "index_metric",
            f"must be L2 with index_type {IVF_PQ} (it supports L2 only)",
            str(metric),
        )


def _k_within_sample(values: Mapping[str, Value]) -> None:
    k, sample_size = values.get("k"), values.get("sample_size")
    if isinstance(k, int) and isinstance(sample_size, int) and k > sample_size:
        raise HyperparameterError(
            "k", f"must not exceed sample_size ({sample_size}): the index holds no more points"
        )


TABLE: Final = HyperparameterTable(
    "k-NN algorithm",
    (
        Hyperparameter("feature_dim", Kind.INT, interval=AT_LEAST_1, required=True),
        Hyperparameter(
            "k", Kind.INT, interval=AT_LEAST_1, required=True, tunable_range=Interval(1, 1024)
        ),
        Hyperparameter(
            "predictor_type", Kind.CHOICE, options=(CLASSIFIER, REGRESSOR), required=True
        ),
        Hyperparameter(
            "sample_size",
            Kind.INT,
            interval=AT_LEAST_1,
            required=True,
            tunable_range=Interval(256, 20_000_000),
        ),
        Hyperparameter("dimension_reduction_type", Kind.CHOICE, options=("sign", "fjlt")),
        Hyperparameter("dimension_reduction_target", Kind.INT, interval=AT_LEAST_1),
        Hyperparameter("index_type", Kind.CHOICE, FLAT, options=(FLAT, IVF_FLAT, IVF_PQ)),
        Hyperparameter("index_metric", Kind.CHOICE, L2, options=(L2, INNER_PRODUCT, COSINE)),
        Hyperparameter("faiss_index_ivf_nlists", Kind.INT, "auto", AT_LEAST_1, auto=True),
        Hyperparameter("faiss_index_pq_m", Kind.CHOICE, options=PQ_M_OPTIONS),
        Hyperparameter("mini_batch_size", Kind.INT, "5000", AT_LEAST_1),
    ),
    checks=(_reduction_target_rules, _pq_is_l2_only, _k_within_sample),
)

SPEC: Final = Algorithm(
    name="knn",
    title="k-NN",
    repositories=("knn",),
    hyperparameters=TABLE,
    metrics=(
        score_metric("test", "accuracy", "Maximize"),
        score_metric("test", "mse", "Minimize"),
    ),
    channels=(ChannelSpec("train", required=True), ChannelSpec("test")),
)
