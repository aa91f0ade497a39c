"""The K-Means training program: mini-batches of the `train` channel through the core
(`model.py`) for `epochs` passes, the reduction to k centres, the metrics, the model file.

Logged, in SageMaker's line format (spec algorithms §1.6, §4(c)):

* `train msd`: the final k centres' mean squared distance over the training rows (one more pass
  over them: from memory when they were cached, else the files again, or the next Pipe epoch);
* `test msd` / `test ssd` per `eval_metrics`, when a `test` channel is given.

In File mode the rows of the first epoch are kept in memory (up to `CACHE_BYTES`) so later
epochs and the metric pass do not parse the files again; Pipe mode reads one FIFO per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from opensage.algorithms.base import AUTO, UserError
from opensage.algorithms.env import Batch, ChannelReader, TrainingEnv

if TYPE_CHECKING:
    from opensage.algorithms.kmeans.model import KMeansModel, Rows, Settings

CACHE_BYTES: Final = 2 << 30
"""Training rows kept in memory across epochs (File mode); larger data is read again."""


def settings(env: TrainingEnv) -> Settings:
    from opensage.algorithms.kmeans.model import Settings

    return Settings(
        k=int(env["k"]),
        extra_center_factor=_auto_or_int(env["extra_center_factor"]),
        init_method=str(env["init_method"]),
        half_life_time_size=int(env["half_life_time_size"]),
        local_lloyd_init_method=str(env["local_lloyd_init_method"]),
        local_lloyd_max_iter=int(env["local_lloyd_max_iter"]),
        local_lloyd_num_trials=_auto_or_int(env["local_lloyd_num_trials"]),
        local_lloyd_tol=float(env["local_lloyd_tol"]),
        mini_batch_size=int(env["mini_batch_size"]),
    )


def _auto_or_int(value: Any) -> int | None:
    return None if value == AUTO else int(value)


def train(env: TrainingEnv) -> None:
    from opensage.algorithms.kmeans.model import KMeansModel, MiniBatchKMeans, TooFewRows

    reader = env.channel("train")
    if reader is None:  # the spec makes it required; the runner has already refused this
        raise UserError("Channel 'train' is required.")
    config = settings(env)
    dim = int(env["feature_dim"])
    epochs = int(env["epochs"])
    rows = ChannelRows(reader, config.mini_batch_size, dim)
    learner = MiniBatchKMeans(config, dim)
    for epoch in range(epochs):
        for x in rows.epoch(epoch):
            try:
                learner.partial_fit(x)
            except TooFewRows as exc:
                raise UserError(f"Channel 'train': {exc}.") from None
        env.log.progress(epoch + 1, epochs)
    if learner.rows_seen == 0:
        raise UserError("No data in channel 'train': its files hold no records.")
    model = KMeansModel(learner.reduce())
    env.log.info(f"Reduced {learner.counts.size} centres to k={model.k}.")
    total, count = _squared_error(model, rows.epoch(epochs))
    env.log.quality("train", "msd", total / max(count, 1), "Minimize")
    _evaluate(env, model, dim)
    model.save(env.model_dir)


def _evaluate(env: TrainingEnv, model: KMeansModel, dim: int) -> None:
    test = env.channel("test")
    if test is None:
        return
    total, count = _squared_error(model, ChannelRows(test, 1 << 16, dim).epoch(0))
    if count == 0:
        raise UserError("No data in channel 'test': its files hold no records.")
    values = {"msd": total / count, "ssd": total}
    for name in env["eval_metrics"]:
        env.log.quality("test", name, values[name], "Minimize")


def _squared_error(model: KMeansModel, batches: Iterator[Rows]) -> tuple[float, int]:
    total, count = 0.0, 0
    for x in batches:
        part, n = model.squared_error(x)
        total += part
        count += n
    return total, count


class ChannelRows:
    """A channel's rows as `feature_dim`-wide mini-batches, cached in memory in File mode."""

    def __init__(self, reader: ChannelReader, size: int, dim: int) -> None:
        self.reader = reader
        self.size = size
        self.dim = dim
        self.cache: list[Rows] | None = None if reader.pipe else []
        self.cache_complete = False

    def epoch(self, epoch: int) -> Iterator[Rows]:
        if self.cache_complete and self.cache is not None:
            yield from self.cache
            return
        held = 0
        for batch in self.reader.batches(self.size, epoch):
            x = _checked(batch, self.dim, self.reader.name)
            if self.cache is not None:
                held += _nbytes(x)
                if held <= CACHE_BYTES:
                    self.cache.append(x)
                else:
                    self.cache = None
            yield x
        self.cache_complete = self.cache is not None


def _checked(batch: Batch, dim: int, channel: str) -> Rows:
    """Finite float32 rows exactly `feature_dim` wide (sparse records narrower are widened):
    one NaN would silently turn its centre, and every later distance, into NaN."""
    import numpy as np
    import scipy.sparse as sp

    x = batch.features
    if not np.isfinite(x.data if sp.issparse(x) else x).all():
        raise UserError(
            f"Channel '{channel}' has a missing or non-finite value (NaN or infinity); "
            "K-Means needs every feature of every record."
        )
    if sp.issparse(x) and x.shape[1] <= dim:
        return sp.csr_matrix((x.data, x.indices, x.indptr), shape=(x.shape[0], dim))
    if x.shape[1] != dim:
        raise UserError(
            f"Channel '{channel}' has records of {x.shape[1]} features but feature_dim is {dim}; "
            "set feature_dim to the number of features."
        )
    return x


def _nbytes(x: Rows) -> int:
    import scipy.sparse as sp

    if sp.issparse(x):
        return int(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes)
    return int(x.nbytes)
