"""The k-NN training program: sample, reduce, index, score the test channel.

1. Stream the `train` channel in `mini_batch_size` batches, project each batch (when
   `dimension_reduction_type` is set) and keep a reservoir sample of `sample_size` rows.
2. Build the index (`index_type`, `index_metric`; IVF lists `faiss_index_ivf_nlists`, `auto`
   = sqrt(sample_size); IVF-PQ codes `faiss_index_pq_m`) and write the three model files.
3. With a `test` channel: predict it batch by batch and log `test:accuracy` (classifier) or
   `test:mse` (regressor) as `#test_score (algo-1) : ('accuracy', 0.98)`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from opensage.algorithms.base import AUTO, UserError
from opensage.algorithms.env import Batch, ChannelReader, TrainingEnv
from opensage.algorithms.knn.spec import CLASSIFIER, IVF_PQ, PQ_M_OPTIONS

if TYPE_CHECKING:
    from opensage.algorithms.knn.model import KNNModel, Reservoir
    from opensage.algorithms.knn.projection import Projection


def train(env: TrainingEnv) -> None:
    from opensage.algorithms.knn.model import Reservoir, Settings, build
    from opensage.algorithms.knn.projection import Projection

    feature_dim = int(env["feature_dim"])
    projection = None
    if env.get("dimension_reduction_type") is not None:
        projection = Projection.draw(
            str(env["dimension_reduction_type"]),
            feature_dim,
            int(env["dimension_reduction_target"]),
        )
    reader = env.channel("train")
    assert reader is not None  # required by the spec: the runner refused the job otherwise
    reservoir = Reservoir(int(env["sample_size"]))
    _sample(reader, int(env["mini_batch_size"]), feature_dim, projection, reservoir)
    rows, labels = reservoir.sample()
    env.log.info(
        f"Sampled {len(rows)} of {reservoir.seen} training records"
        + (
            f", reduced to {projection.target_dim} dimensions by {projection.kind}"
            if projection
            else ""
        )
    )
    settings = Settings(
        k=int(env["k"]),
        predictor_type=str(env["predictor_type"]),
        metric=str(env["index_metric"]),
        index_type=str(env["index_type"]),
    )
    width = projection.target_dim if projection else feature_dim
    model = build(rows, labels, settings, _index_config(env, width), feature_dim, projection)
    model.save(env.model_dir)
    env.log.info(f"Built a {model.index.kind} index of {model.index.size} records")
    test = env.channel("test")
    if test is not None:
        _score(env, model, test, int(env["mini_batch_size"]))


def _index_config(env: TrainingEnv, width: int) -> Any:
    from opensage.algorithms.knn.ivf import default_pq_m
    from opensage.algorithms.knn.model import IndexConfig

    nlists_value = env["faiss_index_ivf_nlists"]
    nlists = (
        max(1, int(math.sqrt(int(env["sample_size"]))))
        if nlists_value == AUTO
        else int(nlists_value)
    )
    pq_m = None
    if env["index_type"] == IVF_PQ:
        given = env.get("faiss_index_pq_m")
        options = tuple(int(m) for m in PQ_M_OPTIONS)
        pq_m = int(given) if given is not None else default_pq_m(width, options)
    return IndexConfig(str(env["index_type"]), str(env["index_metric"]), nlists, pq_m)


def _sample(
    reader: ChannelReader,
    batch_size: int,
    feature_dim: int,
    projection: Projection | None,
    reservoir: Reservoir,
) -> None:
    for batch in reader.batches(batch_size):
        features, labels = _checked(batch, reader.name, feature_dim)
        if projection is not None:
            features = projection.apply(features)
        reservoir.add(features, labels)
    if reservoir.seen == 0:
        raise UserError("No data in channel 'train': its files hold no records.")


def _checked(batch: Batch, channel: str, feature_dim: int) -> tuple[Any, Any]:
    """Dense float32 features of `feature_dim` columns and 1-D labels, or a UserError."""
    import numpy as np

    if batch.labels is None:
        raise UserError(
            f"The records of channel '{channel}' have no labels: k-NN needs one label per "
            "record (CSV: the first column; RecordIO-protobuf: label['values'])."
        )
    labels = np.asarray(batch.labels, dtype=np.float32)
    if labels.ndim != 1:
        raise UserError(
            f"The records of channel '{channel}' have {labels.shape[1]} label values each; "
            "k-NN needs one (for CSV use label_size=1)."
        )
    features = batch.dense()
    if _sparse(batch) and features.shape[1] < feature_dim:
        features = np.pad(features, ((0, 0), (0, feature_dim - features.shape[1])))
    if features.shape[1] != feature_dim:
        raise UserError(
            f"Hyperparameter feature_dim is {feature_dim} but the records of channel "
            f"'{channel}' have {features.shape[1]} features."
        )
    if not np.isfinite(features).all() or not np.isfinite(labels).all():
        raise UserError(
            f"Channel '{channel}' has a missing or infinite value; k-NN needs finite numbers."
        )
    return features, labels


def _sparse(batch: Batch) -> bool:
    import scipy.sparse as sp

    return bool(sp.issparse(batch.features))


def _score(env: TrainingEnv, model: KNNModel, test: ChannelReader, batch_size: int) -> None:
    import numpy as np

    correct = 0.0
    squared = 0.0
    count = 0
    for batch in test.batches(batch_size):
        features, labels = _checked(batch, test.name, model.feature_dim)
        predicted = model.predict(features).predicted
        correct += float(np.sum(predicted == labels))
        squared += float(np.sum((predicted - labels.astype(np.float64)) ** 2))
        count += len(labels)
    if count == 0:
        raise UserError("No data in channel 'test': its files hold no records.")
    if model.settings.predictor_type == CLASSIFIER:
        env.log.score("test", "accuracy", correct / count)
    else:
        env.log.score("test", "mse", squared / count)
