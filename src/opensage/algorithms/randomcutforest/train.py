"""Random Cut Forest training: reservoir-sample the `train` channel as it streams by, grow the
trees, write `model_algo-1`, and score the labelled `test` channel (when given) for the
`test:f1` objective and the metrics `eval_metrics` asks for (spec algorithms §8(c)).

The channel is never held whole: blocks of `mini_batch_size` rows (at least `BLOCK_ROWS`) go
through the reservoir one after the other. The test channel's scores and labels (one number
each per row) are kept, since the three-sigma threshold needs all the scores first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from opensage.algorithms.base import UserError
from opensage.algorithms.env import ChannelReader, TrainingEnv
from opensage.algorithms.randomcutforest.spec import ACCURACY, PRECISION_RECALL_FSCORE

if TYPE_CHECKING:
    from opensage.algorithms.randomcutforest.model import Forest

BLOCK_ROWS: Final = 4096
MODEL_BYTES: Final = 1 << 30
"""The largest forest we build, in bounding boxes: two float32 corners per node (about
2 x samples nodes per tree), held twice while scoring (as saved, and laid out for the walk).
Beyond it the job fails and says what to lower, rather than being killed for memory; the
defaults (100 trees of 256) allow about 2,600 features."""
SIGMAS: Final = 3.0


def train(env: TrainingEnv) -> None:
    from opensage.algorithms.randomcutforest.model import Reservoir, grow

    reader = env.channel("train")
    assert reader is not None  # the spec makes it required; TrainingEnv checked it
    width: int = env["feature_dim"]
    trees: int = env["num_trees"]
    samples: int = env["num_samples_per_tree"]
    check_size(trees, samples, width)
    reservoir = Reservoir(trees * samples, width)
    for block in blocks(reader, width, max(env["mini_batch_size"], BLOCK_ROWS)):
        reservoir.add(block)
    if reservoir.seen == 0:
        raise UserError(f"No data in channel '{reader.name}': its files hold no records.")
    forest = grow(reservoir.points, trees, reservoir.seen)
    forest.save(env.model_dir)
    env.log.info(
        f"Random Cut Forest: {trees} trees of {samples} points sampled from {reservoir.seen} "
        f"rows of {width} features; {forest.num_nodes} nodes"
    )
    test = env.channel("test")
    if test is not None:
        evaluate(env, forest, test)


def check_size(trees: int, samples: int, width: int) -> None:
    need = 2 * trees * (2 * samples - 1) * width * 4
    if need > MODEL_BYTES:
        raise UserError(
            f"A forest of {trees} trees of {samples} samples over {width} features needs about "
            f"{need / 2**30:.1f} GiB of bounding boxes, more than the {MODEL_BYTES / 2**30:.0f} "
            "GiB supported; lower num_trees, num_samples_per_tree or feature_dim (for example "
            "by shingling fewer values)."
        )


def blocks(reader: ChannelReader, width: int, rows: int, labelled: bool = False) -> Any:
    """The channel's rows as dense float32 blocks of `width` columns (with their labels when
    `labelled`); UserError for a record of another width or a value that is not finite."""
    import numpy as np
    import scipy.sparse as sp

    from opensage.algorithms.randomcutforest.model import dense_rows

    seen = 0
    for batch in reader.batches(rows):
        features = batch.features
        narrower = sp.issparse(features) and features.shape[1] < width
        if features.shape[1] != width and not narrower:
            raise UserError(
                f"Channel '{reader.name}': record {seen} has {features.shape[1]} features but "
                f"feature_dim is {width}; set feature_dim to the number of columns."
            )
        x = dense_rows(features)
        if x.shape[1] < width:  # sparse records whose last columns are all zero
            x = np.pad(x, ((0, 0), (0, width - x.shape[1])))
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            bad = seen + int(np.argmin(finite))
            raise UserError(
                f"Channel '{reader.name}': record {bad} has a value that is not a finite number."
            )
        seen += len(x)
        yield (x, batch.labels) if labelled else x


def evaluate(env: TrainingEnv, forest: Forest, reader: ChannelReader) -> None:
    """Label the test rows anomalous above mean + 3 sigma of their scores; log the metrics."""
    import numpy as np

    scores: list[Any] = []
    labels: list[Any] = []
    for x, y in blocks(reader, forest.feature_dim, BLOCK_ROWS, labelled=True):
        if y is None or np.ndim(y) != 1:
            raise UserError(
                f"Channel '{reader.name}' needs one label per record (1 = anomaly, 0 = normal): "
                "use text/csv;label_size=1 or RecordIO-protobuf records with a label."
            )
        scores.append(forest.score(x))
        labels.append(y)
    if not scores:
        raise UserError(f"No data in channel '{reader.name}': its files hold no records.")
    score = np.concatenate(scores)
    truth = np.concatenate(labels)
    if not np.isin(truth, (0.0, 1.0)).all():
        raise UserError(
            f"Channel '{reader.name}': labels must be 1 (anomaly) or 0 (normal); found "
            f"{sorted({float(v) for v in truth[~np.isin(truth, (0.0, 1.0))][:5]})}."
        )
    threshold = float(score.mean() + SIGMAS * score.std())
    values = metrics(score > threshold, truth == 1.0)
    env.log.info(f"test: {len(score)} rows; anomaly threshold (mean + 3 sigma) {threshold!r}")
    requested = env["eval_metrics"]
    env.log.quality("test", "f1", values["f1"], "Maximize")
    if ACCURACY in requested:
        env.log.quality("test", "accuracy", values["accuracy"], "Maximize")
    if PRECISION_RECALL_FSCORE in requested:
        env.log.quality("test", "precision", values["precision"], "Maximize")
        env.log.quality("test", "recall", values["recall"], "Maximize")


def metrics(predicted: Any, actual: Any) -> dict[str, float]:
    """Accuracy, and precision, recall and F1 of the anomaly class (0 where undefined, as
    scikit-learn's `zero_division=0`)."""
    true_positive = float((predicted & actual).sum())
    precision = true_positive / float(predicted.sum()) if predicted.any() else 0.0
    recall = true_positive / float(actual.sum()) if actual.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float((predicted == actual).mean()) if len(actual) else 0.0
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}
