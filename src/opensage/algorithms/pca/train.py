"""PCA training: read the `train` channel in blocks, fit, write `model_algo-1`, and describe the
fit (and the `test` channel's explained variance, when given) in informational log lines.

Regular mode reads the channel once. Randomized mode reads it once per pass (1 + `REFINEMENTS`);
while the rows fit in `env.CACHE_BYTES` they are kept from the first read, so small data sets are
parsed once, and larger ones are re-read from the files (File mode) or the next epoch's FIFO
(Pipe mode), never held whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from opensage.algorithms.base import UserError
from opensage.algorithms.env import ChannelReader, Passes, TrainingEnv
from opensage.algorithms.pca.spec import RANDOMIZED

if TYPE_CHECKING:
    from opensage.algorithms.pca.model import PCAModel

BLOCK_ROWS: Final = 4096
"""Rows per block at least: the maths does not depend on the block size (the sketch's random
signs are one stream over the rows), and large blocks keep BLAS busy."""


def train(env: TrainingEnv) -> None:
    from opensage.algorithms.pca.model import fit_randomized, fit_regular

    reader = env.channel("train")
    assert reader is not None  # the spec makes it required; TrainingEnv checked it
    randomized = env["algorithm_mode"] == RANDOMIZED
    block_rows = max(env["mini_batch_size"], BLOCK_ROWS)
    source = Blocks(reader, env["feature_dim"], block_rows, keep=randomized)
    k: int = env["num_components"]
    if randomized:
        model = fit_randomized(source.epoch, k, env["extra_components"], env["subtract_mean"])
    else:
        if "extra_components" in env.given:
            env.log.info("extra_components applies to randomized mode only; ignored")
        model = fit_regular(source.epoch(0), k, env["subtract_mean"])
    model.save(env.model_dir)
    _describe(env, model)


class Blocks(Passes):
    """The channel's rows as float32 blocks of `feature_dim` columns, for each pass."""

    def __init__(
        self, reader: ChannelReader, feature_dim: int, block_rows: int, keep: bool = True
    ) -> None:
        super().__init__(reader, block_rows, keep)
        self.feature_dim = feature_dim

    def check(self, features: Any, before: int) -> Any:
        import scipy.sparse as sp

        width = int(features.shape[1])
        if sp.issparse(features) and width < self.feature_dim:
            m = features
            return sp.csr_matrix(
                (m.data, m.indices, m.indptr), shape=(m.shape[0], self.feature_dim)
            )
        if width != self.feature_dim:
            raise UserError(
                f"Channel '{self.reader.name}': record {before} has {width} features but "
                f"feature_dim is {self.feature_dim}; set feature_dim to the number of columns."
            )
        return features


def _describe(env: TrainingEnv, model: PCAModel) -> None:
    """Informational lines (PCA declares no tunable metric, as SageMaker's)."""
    variance = model.explained_variance
    env.log.info(
        f"PCA ({model.mode}): {model.rows} rows, {model.feature_dim} features, "
        f"{model.num_components} components; singular values {_rounded(model.s)}"
    )
    env.log.info(f"explained variance of the components: {_rounded(variance)}")
    test = env.channel("test")
    if test is not None:
        share = _test_share(model, Blocks(test, model.feature_dim, BLOCK_ROWS, keep=False))
        env.log.info(f"test: share of variance the components explain {share!r}")


def _test_share(model: PCAModel, blocks: Blocks) -> float:
    """Projected over total (centred on the training mean) sum of squares of the test rows."""
    import numpy as np
    import scipy.sparse as sp

    projected = total = 0.0
    for block in blocks.epoch(0):
        x = block.toarray() if sp.issparse(block) else np.asarray(block, np.float64)
        if model.mean is not None:
            x = x - model.mean
        projected += float(np.square(model.project(block).astype(np.float64)).sum())
        total += float(np.square(x).sum())
    return projected / total if total else 0.0


def _rounded(values: Any) -> list[float]:
    return [round(float(value), 6) for value in values]
