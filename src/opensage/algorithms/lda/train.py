"""LDA training: two passes over the `train` channel (pair moments, then the whitened third
moment), the tensor decomposition, `model_algo-1`, and `test:pwll` when a `test` channel is given.

The documents are kept from the first pass while they fit in `env.CACHE_BYTES`, so small corpora are
parsed once; larger ones are re-read from the files (File mode) or the next epoch's FIFO (Pipe
mode). Every block is checked: word counts must be non-negative integers and no wider than
`feature_dim`. CSV is read in File mode only, as SageMaker's LDA does.
"""

from __future__ import annotations

from typing import Any, Final

from opensage.algorithms.base import UserError
from opensage.algorithms.env import ChannelReader, Passes, TrainingEnv

BLOCK_ROWS: Final = 4096
"""Documents per block: the moments do not depend on it (they are sums over documents)."""


def train(env: TrainingEnv) -> None:
    from opensage.algorithms.lda.model import Settings, fit

    for reader in env.channels.values():
        _check_mode(reader)
    documents = env.channel("train")
    assert documents is not None  # the spec makes it required; TrainingEnv checked it
    feature_dim: int = env["feature_dim"]
    source = Documents(documents, feature_dim)
    settings = Settings(
        num_topics=env["num_topics"],
        alpha0=env["alpha0"],
        max_restarts=env["max_restarts"],
        max_iterations=env["max_iterations"],
        tol=env["tol"],
    )
    try:
        model = fit(source.epoch(0), source.epoch(1), feature_dim, settings)
    except ValueError as exc:
        raise UserError(f"Channel 'train' cannot train LDA: {exc}.") from None
    if model.documents != env["mini_batch_size"]:
        env.log.info(
            f"mini_batch_size is {env['mini_batch_size']} but the train channel holds "
            f"{model.documents} documents (LDA reads mini_batch_size as the corpus size)"
        )
    model.save(env.model_dir)
    env.log.info(
        f"LDA: {model.documents} documents, {feature_dim} words, {model.num_topics} topics; "
        f"alpha {[round(float(a), 6) for a in model.alpha]}"
    )
    test = env.channel("test")
    if test is not None:
        words = 0
        total = 0.0
        for block in Documents(test, feature_dim, keep=False).epoch(0):
            pwll, count = model.pwll(block)
            total += pwll * count
            words += count
        env.log.quality("test", "pwll", total / words if words else 0.0, "Maximize")


def _check_mode(reader: ChannelReader) -> None:
    if reader.pipe and reader.is_csv:
        raise UserError(
            f"Channel '{reader.name}' is CSV in Pipe mode: the LDA algorithm reads CSV in File "
            "mode only; use File mode or application/x-recordio-protobuf."
        )


class Documents(Passes):
    """The channel's documents as checked blocks of `feature_dim` word counts, per pass."""

    def __init__(self, reader: ChannelReader, feature_dim: int, keep: bool = True) -> None:
        super().__init__(reader, BLOCK_ROWS, keep)
        self.feature_dim = feature_dim

    def check(self, features: Any, before: int) -> Any:
        import numpy as np
        import scipy.sparse as sp

        width = int(features.shape[1])
        if width > self.feature_dim or (width < self.feature_dim and not sp.issparse(features)):
            raise UserError(
                f"Channel '{self.reader.name}': a record among records {before}-"
                f"{before + features.shape[0] - 1} has {width} words (columns) but feature_dim "
                f"is {self.feature_dim}; set feature_dim to the vocabulary size."
            )
        matrix = sp.csr_matrix(features, dtype=np.float64)
        matrix = sp.csr_matrix(
            (matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], self.feature_dim)
        )
        values = matrix.data
        bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
        if bad.any():
            row = int(np.searchsorted(matrix.indptr, int(np.flatnonzero(bad)[0]), side="right"))
            raise UserError(
                f"Channel '{self.reader.name}': record {before + row - 1} has the word count "
                f"{float(values[bad][0])!r}; LDA reads documents as non-negative integer word "
                "counts."
            )
        return matrix
