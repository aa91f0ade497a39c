"""The training program's body: read the channels, fit (`core.fit`), save, log the metrics.

`train` is read whole into memory once (File mode re-reads files per epoch and Pipe mode reads
FIFO `train_0` only, so holding the rows is what makes several passes possible), as are
`validation` (model selection, early stopping, threshold calibration, and the `validation:`
metrics of the final model) and `test` (the `test:` metrics of the final model).
"""

from __future__ import annotations

import math
from typing import Any

from opensage.algorithms.base import UserError
from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.linear_learner.config import Settings, from_values
from opensage.algorithms.linear_learner.spec import SPEC

Data = tuple[Any, Any]


def train(env: TrainingEnv) -> None:
    s = from_values(env.hyperparameters)
    x, y = read_channel(env, "train", s, s.feature_dim)
    width = int(x.shape[1])
    validation = read_channel(env, "validation", s, width) if env.channel("validation") else None
    test = read_channel(env, "test", s, width) if env.channel("test") else None
    from opensage.algorithms.linear_learner import core

    for name, data in (("validation", validation), ("test", test)):
        if data is not None:
            core.check_labels(data[1].astype("float64"), s, name)
    selection = "validation" if validation is not None else "train"
    host = env.current_host

    def on_epoch(epoch: int, loss: float) -> None:
        env.log.info(
            f"#quality_metric: host={host}, epoch={epoch}, {selection} objective_loss "
            f"<loss>={loss!r}"
        )
        env.log.progress(epoch + 1, s.epochs)

    fitted = core.fit(x, y, s, validation, on_epoch)
    env.log.progress(s.epochs, s.epochs)
    info = fitted.model.info
    how = (
        "exactly (squared loss: one pass, closed form)"
        if info.get("solver") == "exact"
        else f"for {fitted.epochs} epochs"
    )
    env.log.info(
        f"Trained {fitted.models} models {how}; chose model {info['model']} "
        f"(learning_rate={info['learning_rate']:g}, wd={info['wd']:g}, l1={info['l1']:g}); "
        f"threshold {fitted.model.threshold:g}"
    )
    fitted.model.save(env.model_dir)
    for name, data in (("validation", validation), ("test", test)):
        if data is not None:
            log_metrics(env, name, fitted.model, data, s)


def read_channel(env: TrainingEnv, name: str, s: Settings, width: int | None) -> Data:
    """A channel's rows as (float32 features: dense C-ordered or CSR, float32 labels)."""
    import numpy as np
    import scipy.sparse as sp

    reader = env.channel(name)
    if reader is None:
        raise UserError(f"Channel '{name}' is required by the Linear Learner algorithm.")
    batch = reader.read_all()
    if batch.labels is None:
        raise UserError(
            f"Channel '{name}' has records without labels; the Linear Learner needs a label per "
            "record (the first CSV column, or the RecordIO record's label)."
        )
    labels = np.asarray(batch.labels, dtype=np.float32)
    if labels.ndim != 1:
        raise UserError(f"Channel '{name}' has records with several labels; give one per record.")
    features = batch.features
    if sp.issparse(features):
        features = sp.csr_matrix(features, dtype=np.float32)
        if width is not None and features.shape[1] < width:
            m = features
            features = sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))
    else:
        features = np.ascontiguousarray(features, dtype=np.float32)
    if width is not None and features.shape[1] != width:
        what = "feature_dim" if name == "train" else "the train channel"
        raise UserError(
            f"Channel '{name}' has {features.shape[1]} features per record but {what} says {width}."
        )
    return features, labels


def log_metrics(env: TrainingEnv, channel: str, model: Any, data: Data, s: Settings) -> None:
    """The final model's metrics on a channel, as `#quality_metric` lines (spec §2(c))."""
    directions = {m.name: m.direction for m in SPEC.metrics}
    for name, value in metrics(model, data, s, channel).items():
        direction = directions.get(f"{channel}:{name}")
        if direction is not None and math.isfinite(value):
            env.log.quality(channel, name, value, direction)


def metrics(model: Any, data: Data, s: Settings, channel: str = "test") -> dict[str, float]:
    """Every metric the spec declares for the predictor type, objective_loss first."""
    import numpy as np

    from opensage.algorithms.linear_learner import evaluate, losses

    x, labels = data
    y = np.asarray(labels, dtype=np.float64)
    z = model.outputs(x)
    shaped = z[:, None, :] if s.outputs > 1 else z
    params = losses.LossParams(s.margin, s.quantile, s.huber_delta, s.loss_insensitivity)
    with np.errstate(over="ignore", invalid="ignore"):
        out = {"objective_loss": float(losses.values(s.loss, shaped, y, params).mean())}
    scores, _ = model.predict(x)
    if s.is_binary:
        out |= evaluate.binary_metrics(scores, y, model.threshold, s.f_beta)
    elif s.is_regressor:
        out |= evaluate.regression_metrics(scores, y)
        if channel != "validation":
            out.pop("rmse")
    else:
        out |= evaluate.multiclass_metrics(scores, y, s.accuracy_top_k, s.f_beta)
    return out
