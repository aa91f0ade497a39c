"""Types of the compiled module `_fasttext.c` (see there and `native`)."""

import numpy as np
import numpy.typing as npt

def word2vec(
    *,
    input: npt.NDArray[np.float32],
    output: npt.NDArray[np.float32],
    subword_rows: npt.NDArray[np.int32],
    subword_offsets: npt.NDArray[np.int64],
    corpus: npt.NDArray[np.int32],
    line_starts: npt.NDArray[np.int64],
    keep: npt.NDArray[np.float32],
    table: npt.NDArray[np.int32],
    counter: npt.NDArray[np.int64],
    mode: int,
    dim: int,
    window: int,
    negatives: int,
    batch_size: int,
    learning_rate: float,
    min_lr_fraction: float,
    epochs: int,
    threads: int,
    seed: int,
) -> None: ...
def supervised(
    *,
    input: npt.NDArray[np.float32],
    output: npt.NDArray[np.float32],
    rows: npt.NDArray[np.int32],
    offsets: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int32],
    label_offsets: npt.NDArray[np.int64],
    order: npt.NDArray[np.int64],
    counter: npt.NDArray[np.int64],
    total: int,
    dim: int,
    learning_rate: float,
    min_lr_fraction: float,
    threads: int,
    seed: int,
) -> None: ...
