"""The training program's body: stream the `train` channel in mini-batches once per epoch (File
mode re-reads the files, Pipe mode reads FIFO `train_<epoch>`), fit, save, and log the `test:`
metrics of the final model (spec §7(c)).

Records are checked as they come: wider than `feature_dim`, unlabelled, or (binary classifier)
labelled anything but 0 or 1, the job fails with a ClientError saying so.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from opensage.algorithms.base import UserError
from opensage.algorithms.env import Batch, ChannelReader, TrainingEnv
from opensage.algorithms.factorization_machines.fit import Settings, fit, from_values
from opensage.algorithms.factorization_machines.model import FMModel
from opensage.algorithms.factorization_machines.spec import SPEC


def train(env: TrainingEnv) -> None:
    s = from_values(env.hyperparameters)
    reader = env.channel("train")
    if reader is None:
        raise UserError("Channel 'train' is required by the Factorization Machines algorithm.")
    host = env.current_host
    objective = "binary_classification_cross_entropy" if s.is_binary else "rmse"

    def on_epoch(epoch: int, loss: float, rows: int) -> None:
        if rows == 0:
            raise UserError("No data in channel 'train': its files hold no records.")
        value = loss if s.is_binary else math.sqrt(2.0 * loss)
        env.log.info(
            f"#quality_metric: host={host}, epoch={epoch}, train {objective} <loss>={value!r}"
        )
        env.log.progress(epoch + 1, s.epochs)

    model = fit(lambda e: checked_batches(reader, s, e), s, on_epoch)
    model.save(env.model_dir)
    test = env.channel("test")
    if test is not None:
        for name, value in evaluate(model, checked_batches(test, s, 0), s).items():
            direction = next(m.direction for m in SPEC.metrics if m.name == f"test:{name}")
            if direction is not None and math.isfinite(value):
                env.log.quality("test", name, value, direction)


def checked_batches(reader: ChannelReader, s: Settings, epoch: int) -> Iterator[tuple[Any, Any]]:
    """The channel's mini-batches as (features, float32 labels), each checked."""
    for batch in reader.batches(s.mini_batch_size, epoch):
        yield check(batch, reader.name, s)


def check(batch: Batch, channel: str, s: Settings) -> tuple[Any, Any]:
    if batch.width > s.feature_dim:
        raise UserError(
            f"Channel '{channel}' has records of {batch.width} features but feature_dim is "
            f"{s.feature_dim}; set feature_dim to the records' width (their sparse shape)."
        )
    if batch.width < s.feature_dim and not _is_sparse(batch.features):
        raise UserError(
            f"Channel '{channel}' has dense records of {batch.width} features but feature_dim "
            f"is {s.feature_dim}; every record needs feature_dim values."
        )
    if batch.labels is None:
        raise UserError(
            f"Channel '{channel}' has records without a label; Factorization Machines needs a "
            "label per record (the RecordIO record's label['values'])."
        )
    labels = np.asarray(batch.labels, dtype=np.float32)
    if labels.ndim != 1:
        raise UserError(f"Channel '{channel}' has records with several labels; give one each.")
    if not np.isfinite(labels).all():
        raise UserError(f"Channel '{channel}' has a label that is not a finite number.")
    if s.is_binary and not np.isin(labels, (0.0, 1.0)).all():
        bad = labels[~np.isin(labels, (0.0, 1.0))][0]
        raise UserError(
            f"Channel '{channel}' has the label {float(bad):g}; a binary_classifier needs labels "
            "0 or 1."
        )
    return batch.features, labels


def _is_sparse(features: Any) -> bool:
    import scipy.sparse as sp

    return bool(sp.issparse(features))


def evaluate(model: FMModel, batches: Iterator[tuple[Any, Any]], s: Settings) -> dict[str, float]:
    """The spec's test metrics of the predictor type: rmse, or accuracy, cross-entropy and F1
    at the 0.5 threshold."""
    parts = [(model.raw(x), np.asarray(y, dtype=np.float64)) for x, y in batches]
    if not parts:
        return {}
    y = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return metrics(y, labels, s.is_binary)


def metrics(y: Any, labels: Any, binary: bool) -> dict[str, float]:
    """Metrics from raw outputs `y` and the labels."""
    if not binary:
        return {"rmse": float(np.sqrt(np.mean((y - labels) ** 2)))}
    predicted = (y >= 0.0).astype(np.float64)  # sigmoid(y) >= 0.5
    tp = float(np.sum(predicted * labels))
    fp = float(np.sum(predicted * (1 - labels)))
    fn = float(np.sum((1 - predicted) * labels))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0
    cross_entropy = float(np.mean(np.logaddexp(0.0, y) - labels * y))
    return {
        "binary_classification_accuracy": float(np.mean(predicted == labels)),
        "binary_classification_cross_entropy": cross_entropy,
        "binary_f_beta": f1,
    }
