"""The fitted k-NN model: a projection (optional), an index over the sampled training rows and
their labels; it predicts by majority vote (classifier) or mean (regressor) of the k nearest.

On disk it is SageMaker's three files (spec algorithms §1.8):

* `model_algo-1`: the index (an opensage npz: the stored rows, or centroids and PQ codes, and
  the projection), where SageMaker writes a serialized FAISS index;
* `model_algo-1.labels`: the labels of the stored rows, raw float32 in the index's order;
* `model_algo-1.json`: `{"k": 5, "predictor_type": "classifier", "dimension_reduction": {...},
  "normalize": false, "version": "1.0", ...}`. It is read at every load, so editing `k`,
  `predictor_type` or `nprobe` there changes how the model predicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.artifacts import MODEL_FILE, load_model, save_model
from opensage.algorithms.knn.index import INNER_PRODUCT, L2, FlatIndex, Neighbours
from opensage.algorithms.knn.ivf import IVFIndex, training_subset
from opensage.algorithms.knn.projection import Projection

Index = FlatIndex | IVFIndex
LABELS_FILE: Final = MODEL_FILE + ".labels"
META_FILE: Final = MODEL_FILE + ".json"
VERSION: Final = "1.0"
CLASSIFIER: Final = "classifier"
REGRESSOR: Final = "regressor"
COSINE: Final = "COSINE"
SAMPLE_SEED: Final = 17
"""Seeds of the reservoir sample and of the k-means / PQ training (no seed hyperparameter:
the same data and hyperparameters give the same model)."""
INDEX_SEED: Final = 11
RECALL_TARGET: Final = 0.95
"""IVF indexes search the fewest lists (`nprobe`) that find this share of the exact k nearest
(for IVF-PQ: of what a search of every list finds), measured at training ..."""
CALIBRATION_MARGIN: Final = 0.01
"""... on 512 held-out rows, with this margin for their sampling error."""
CALIBRATION_QUERIES: Final = 512

Floats = npt.NDArray[np.float32]


class Reservoir:
    """A uniform sample of `size` rows of a stream (Vitter's algorithm R), vectorised per
    batch; deterministic for a given seed and batch sequence."""

    def __init__(self, size: int, seed: int = SAMPLE_SEED) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.seen = 0
        self._parts: list[tuple[Floats, Floats]] = []
        self._rows: Floats | None = None
        self._labels: Floats | None = None

    def add(self, rows: Floats, labels: Floats) -> None:
        if self._rows is None:
            take = min(self.size - self.seen, len(rows))
            self._parts.append((rows[:take], labels[:take]))
            self.seen += take
            rows, labels = rows[take:], labels[take:]
            if self.seen == self.size:
                self._consolidate()
        if len(rows) == 0:
            return
        assert self._rows is not None
        assert self._labels is not None
        seen = self.seen + np.arange(len(rows), dtype=np.int64)
        slots = self.rng.integers(0, seen + 1)
        kept = np.flatnonzero(slots < self.size)
        # Within a batch a later row replaces an earlier one drawn for the same slot.
        reversed_slots = slots[kept][::-1]
        targets, first = np.unique(reversed_slots, return_index=True)
        sources = kept[::-1][first]
        self._rows[targets] = rows[sources]
        self._labels[targets] = labels[sources]
        self.seen += len(rows)

    def _consolidate(self) -> None:
        self._rows = np.concatenate([p[0] for p in self._parts]).astype(np.float32)
        self._labels = np.concatenate([p[1] for p in self._parts]).astype(np.float32)
        self._parts = []

    def sample(self) -> tuple[Floats, Floats]:
        if self._rows is None:
            self._consolidate()
        assert self._rows is not None
        assert self._labels is not None
        return self._rows, self._labels


@dataclass(frozen=True)
class Settings:
    """What the model JSON says: editable after training."""

    k: int
    predictor_type: str
    metric: str
    index_type: str
    nprobe: int | None = None

    def check(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be a positive integer, not {self.k}")
        if self.predictor_type not in (CLASSIFIER, REGRESSOR):
            raise ValueError(
                f"predictor_type must be classifier or regressor, not {self.predictor_type!r}"
            )


@dataclass
class Prediction:
    """Per query: the prediction, and the k neighbours' distances and labels."""

    predicted: npt.NDArray[np.float64]
    distances: npt.NDArray[np.float64]
    labels: npt.NDArray[np.float64]


class KNNModel:
    """A projection, an index and the stored rows' labels (in the index's order)."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        labels: Floats,
        feature_dim: int,
        projection: Projection | None = None,
        center: Floats | None = None,
    ) -> None:
        settings.check()
        self.settings = settings
        self.index = index
        self.labels = np.asarray(labels, dtype=np.float32)
        self.feature_dim = feature_dim
        self.projection = projection
        self.center = center

    @property
    def normalize(self) -> bool:
        return self.settings.metric == COSINE

    @property
    def index_metric(self) -> str:
        return L2 if self.settings.metric == L2 else INNER_PRODUCT

    def prepare(self, features: Floats) -> Floats:
        """Request rows as the index stores them: projected, normalised, centred."""
        x = np.asarray(features, dtype=np.float32)
        if self.projection is not None:
            x = self.projection.apply(x)
        return prepare_rows(x, self.normalize, self.center)

    def neighbours(self, features: Floats) -> Neighbours:
        queries = self.prepare(features)
        k = self.settings.k
        if isinstance(self.index, IVFIndex):
            return self.index.search(queries, k, self.settings.nprobe)
        return self.index.search(queries, k)

    def predict(self, features: Floats) -> Prediction:
        found = self.neighbours(features)
        labels = self.labels[found.positions].astype(np.float64)
        distances = found.distances + (1.0 if self.normalize else 0.0)
        if self.settings.predictor_type == CLASSIFIER:
            predicted = majority(labels)
        else:
            predicted = labels.mean(axis=1)
        return Prediction(predicted, distances, labels)

    # --- files --------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The model JSON."""
        meta: dict[str, Any] = {
            "k": self.settings.k,
            "predictor_type": self.settings.predictor_type,
        }
        if self.projection is not None:
            meta["dimension_reduction"] = self.projection.describe()
        meta.update(
            normalize=self.normalize,
            version=VERSION,
            index_type=self.index.kind,
            index_metric=self.settings.metric,
            feature_dim=self.feature_dim,
        )
        if isinstance(self.index, IVFIndex):
            meta["nprobe"] = self.settings.nprobe or self.index.nprobe
            meta["nlists"] = self.index.nlists
        return meta

    def save(self, model_dir: Path) -> None:
        arrays = dict(self.index.arrays())
        if self.projection is not None:
            arrays.update(self.projection.arrays())
        if self.center is not None:
            arrays["center"] = self.center
        index_meta: dict[str, Any] = {"kind": self.index.kind, "metric": self.index_metric}
        if isinstance(self.index, IVFIndex):
            index_meta["nprobe"] = self.index.nprobe
        save_model(model_dir, arrays, index_meta)
        (model_dir / LABELS_FILE).write_bytes(self.labels.astype("<f4").tobytes())
        (model_dir / META_FILE).write_text(json.dumps(self.describe()))

    @classmethod
    def load(cls, model_dir: Path) -> KNNModel:
        """The three files; ValueError naming the file when one is missing or inconsistent."""
        arrays, index_meta = load_model(model_dir)
        meta_path = model_dir / META_FILE
        labels_path = model_dir / LABELS_FILE
        for path in (meta_path, labels_path):
            if not path.is_file():
                raise ValueError(f"no {path.name} in {model_dir}: a k-NN model has three files")
        meta = json.loads(meta_path.read_text())
        index: Index
        if index_meta["kind"] == FlatIndex.kind:
            index = FlatIndex.from_arrays(arrays, index_meta)
        else:
            index = IVFIndex.from_arrays(arrays, index_meta)
        labels = np.frombuffer(labels_path.read_bytes(), dtype="<f4").astype(np.float32)
        if len(labels) != index.size:
            raise ValueError(
                f"{LABELS_FILE} holds {len(labels)} labels but the index {index.size} rows"
            )
        described = meta.get("dimension_reduction")
        projection = Projection.from_arrays(described, arrays) if described else None
        if projection is None and any(name.startswith("projection_") for name in arrays):
            raise ValueError(f"{META_FILE} has no dimension_reduction but the index was reduced")
        settings = _settings(meta, index)
        return cls(
            settings, index, labels, int(meta["feature_dim"]), projection, arrays.get("center")
        )


def _settings(meta: dict[str, Any], index: Index) -> Settings:
    try:
        k = int(meta["k"])
        nprobe = int(meta["nprobe"]) if "nprobe" in meta else None
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{META_FILE} needs an integer k (and nprobe, if given)") from None
    if nprobe is not None and nprobe < 1:
        raise ValueError(f"{META_FILE}: nprobe must be at least 1, not {nprobe}")
    return Settings(
        k=k,
        predictor_type=str(meta.get("predictor_type", CLASSIFIER)),
        metric=str(meta.get("index_metric", L2)),
        index_type=index.kind,
        nprobe=nprobe,
    )


def majority(labels: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The most frequent label per row; a tie goes to the smallest label (scikit-learn's rule).

    Rows are sorted, run lengths counted column by column (k steps, vectorised over rows), and
    the first longest run taken: in sorted order that is the smallest of the tied labels.
    """
    ordered = np.sort(labels, axis=1)
    runs = np.ones(ordered.shape, np.int64)
    for j in range(1, ordered.shape[1]):
        same = ordered[:, j] == ordered[:, j - 1]
        runs[:, j] = np.where(same, runs[:, j - 1] + 1, 1)
    best = np.argmax(runs, axis=1)
    modes: npt.NDArray[np.float64] = ordered[np.arange(len(ordered)), best]
    return modes


def training_center(rows: Floats) -> Floats:
    """The training mean rounded to integers: subtracting it keeps integer-valued rows (pixel
    values, counts) exact in float32, so exactly tied distances stay tied and break by position
    as scikit-learn's do; it still brings the norms down where the data sit far from 0."""
    center: Floats = np.round(rows.mean(axis=0, dtype=np.float64)).astype(np.float32)
    return center


def prepare_rows(x: Floats, normalize: bool, center: Floats | None) -> Floats:
    if normalize:
        norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float32))
        x = np.asarray(x / np.where(norms > 0, norms, np.float32(1.0))[:, None], np.float32)
    if center is not None:
        x = x - center
    return np.ascontiguousarray(x, dtype=np.float32)


# --- building ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexConfig:
    """The hyperparameters that shape the index."""

    index_type: str
    metric: str
    nlists: int
    pq_m: int | None = None


def build(
    rows: Floats,
    labels: Floats,
    settings: Settings,
    config: IndexConfig,
    feature_dim: int,
    projection: Projection | None = None,
) -> KNNModel:
    """The model over `rows` (already projected, as `Reservoir` holds them)."""
    normalize = config.metric == COSINE
    metric = L2 if config.metric == L2 else INNER_PRODUCT
    center = training_center(rows) if metric == L2 else None
    prepared = prepare_rows(rows, normalize, center)
    index: Index
    if config.index_type == FlatIndex.kind:
        index = FlatIndex(prepared, metric)
    else:
        nlists = max(1, min(config.nlists, len(prepared)))
        pq_m = config.pq_m if config.index_type == "faiss.IVFPQ" else None
        picks = training_subset(len(prepared), CALIBRATION_QUERIES, INDEX_SEED + 1)
        index, order = IVFIndex.build(prepared, metric, nlists, INDEX_SEED, pq_m, picks)
        labels = labels[order]
        stored_at = np.empty_like(order)
        stored_at[order] = np.arange(len(order))
        index.nprobe = calibrate_nprobe(index, prepared[picks], stored_at[picks], settings.k)
        settings = replace(settings, nprobe=index.nprobe)
    return KNNModel(settings, index, labels, feature_dim, projection, center)


def calibrate_nprobe(index: IVFIndex, queries: Floats, picks: npt.NDArray[np.int64], k: int) -> int:
    """The fewest lists to search for `RECALL_TARGET` (+ margin) recall (doubling, then
    bisection), measured with stored rows the k-means did not see as queries, each not counting
    itself (at `picks`) among its neighbours: as good as unseen queries."""
    want = min(k + 1, index.size)
    if index.rows is not None:
        truth = FlatIndex(index.rows, index.scorer.metric).search(queries, want).positions
    else:
        truth = index.search(queries, want, index.nlists).positions
    target = RECALL_TARGET + CALIBRATION_MARGIN

    def enough(nprobe: int) -> bool:
        found = index.search(queries, want, nprobe).positions
        counted = (truth != picks[:, None]) & (truth >= 0)
        hits = (truth[:, :, None] == found[:, None, :]).any(axis=2) & counted
        return bool(hits.sum() >= target * max(1, counted.sum()))

    high = 1
    while high < index.nlists and not enough(high):
        high = min(index.nlists, high * 2)
    low = high // 2 + 1 if high > 1 else 1
    while low < high:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle + 1
    return high
