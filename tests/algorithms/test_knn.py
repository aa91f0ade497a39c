"""The k-NN built-in's core against scikit-learn, and its files, table and handler.

Quality target (the issue): with the flat index, the same predictions, hence the same accuracy,
as scikit-learn's brute-force KNeighborsClassifier with the same k on digits, wine and iris
splits. IVF indexes must find >= 95 % of the exact neighbours with the nprobe they calibrate.
Training runs in-process through the runner (`runner.run` on a temporary `/opt/ml` tree); the
conformance suite runs the real subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.linalg import hadamard
from scipy.spatial.distance import cdist
from sklearn.datasets import load_digits, load_iris, load_wine, make_blobs, make_regression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors

from opensage.algorithms.base import HyperparameterError
from opensage.algorithms.knn import bound as knn_bound
from opensage.algorithms.knn import index as knn_index
from opensage.algorithms.knn import ivf as knn_ivf
from opensage.algorithms.knn.bound import PrincipalBound
from opensage.algorithms.knn.index import FlatIndex, Sieve, kth_bound
from opensage.algorithms.knn.ivf import IVFIndex
from opensage.algorithms.knn.model import (
    META_FILE,
    IndexConfig,
    KNNModel,
    Reservoir,
    Settings,
    build,
    majority,
)
from opensage.algorithms.knn.projection import Projection, walsh_hadamard
from opensage.algorithms.knn.serve import load
from opensage.algorithms.knn.spec import SPEC
from opensage.algorithms.knn.train import train
from opensage.algorithms.runner import run
from opensage.contract import MLPaths
from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, read_record_messages
from opensage.serving.errors import InferenceError

Array = np.ndarray[Any, Any]


def fit(
    x: Array,
    y: Array,
    k: int,
    predictor: str = "classifier",
    index_type: str = "faiss.Flat",
    metric: str = "L2",
    nlists: int = 16,
    pq_m: int | None = None,
) -> KNNModel:
    settings = Settings(k, predictor, metric, index_type)
    config = IndexConfig(index_type, metric, nlists, pq_m)
    return build(np.asarray(x, np.float32), np.asarray(y, np.float32), settings, config, x.shape[1])


# --- quality against scikit-learn ----------------------------------------------------------------


def exact_vote(x_train: Any, y_train: Any, x_test: Any, k: int) -> Any:
    """scikit-learn's brute-force classifier, with distances computed directly: its own
    ||x||^2 - 2xy + ||y||^2 in BLAS rounds differently with BLAS's thread count, which changes
    its pick among exactly tied neighbours (digits' integer pixels tie often)."""
    distances = cdist(x_test, x_train, "sqeuclidean")
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]  # ties: the lower position
    return np.array([np.bincount(votes).argmax() for votes in y_train[nearest].astype(int)])


@pytest.mark.parametrize("loader", [load_digits, load_wine, load_iris])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_flat_classifier_matches_sklearn_brute(loader: Any, k: int) -> None:
    x, y = loader(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.3, random_state=0)
    ours = fit(x_train, y_train, k).predict(x_test.astype(np.float32)).predicted
    reference = exact_vote(x_train, y_train, x_test, k)
    np.testing.assert_array_equal(ours, reference)
    sklearn = KNeighborsClassifier(k, algorithm="brute").fit(x_train, y_train).predict(x_test)
    assert np.mean(sklearn != reference) <= 0.01  # the same answer but for BLAS-rounded ties


def test_flat_regressor_matches_sklearn_brute() -> None:
    x, y = make_regression(n_samples=600, n_features=8, noise=1.0, random_state=1)
    ours = fit(x[:500], y[:500], 7, "regressor").predict(x[500:].astype(np.float32)).predicted
    reference = KNeighborsRegressor(7, algorithm="brute").fit(x[:500], y[:500]).predict(x[500:])
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-3)


def test_flat_neighbours_are_exact_squared_l2() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 20)).astype(np.float32) * 50 + 1000  # far from the origin
    q = rng.normal(size=(300, 20)).astype(np.float32) * 50 + 1000
    found = fit(x, np.zeros(len(x)), 8).neighbours(q)
    distances, positions = NearestNeighbors(n_neighbors=8, algorithm="brute").fit(x).kneighbors(q)
    np.testing.assert_array_equal(found.positions, positions)
    np.testing.assert_allclose(found.distances, distances**2, rtol=1e-4)
    assert np.all(np.diff(found.distances, axis=1) >= 0)


@pytest.mark.parametrize("metric", ["INNER_PRODUCT", "COSINE"])
def test_flat_inner_product_and_cosine_are_exact(metric: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 12)).astype(np.float32)
    q = rng.normal(size=(100, 12)).astype(np.float32)
    prediction = fit(x, np.arange(len(x)), 6, metric=metric).predict(q)
    if metric == "COSINE":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        expected = 1.0 - qn.astype(np.float64) @ xn.T.astype(np.float64)
    else:
        expected = -(q.astype(np.float64) @ x.T.astype(np.float64))
    best = np.argsort(expected, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(prediction.labels, best)  # labels are the row numbers here
    np.testing.assert_allclose(
        prediction.distances, np.take_along_axis(expected, best, axis=1), atol=1e-5
    )


def test_ties_go_to_the_lower_position_and_the_smaller_label() -> None:
    x = np.zeros((6, 2), np.float32)  # all equally far from any query
    model = fit(x, np.array([3, 3, 1, 1, 2, 2]), 4)
    prediction = model.predict(np.ones((1, 2), np.float32))
    np.testing.assert_array_equal(prediction.labels, [[3, 3, 1, 1]])
    assert prediction.predicted.tolist() == [1.0]
    votes = np.array([[2.0, 2.0, 5.0, 5.0, 7.0], [9.0, 1.0, 9.0, 1.0, 9.0]])
    assert majority(votes).tolist() == [2.0, 9.0]


def test_many_duplicates_stay_exact_and_bounded() -> None:
    x = np.concatenate([np.zeros((20_000, 4)), np.ones((5, 4))]).astype(np.float32)
    found = fit(x, np.zeros(len(x)), 3).neighbours(np.full((300, 4), 0.9, np.float32))
    assert found.positions.tolist() == [[20_000, 20_001, 20_002]] * 300


# --- the flat search's selection ------------------------------------------------------------------


def brute_force(x: Array, q: Array, k: int, metric: str) -> tuple[Array, Array]:
    """The k smallest float64 distances per query, ties to the lower position (stable sort)."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "L2":
        distances = ((q64[:, None, :] - x64[None, :, :]) ** 2).sum(axis=2)
    else:
        distances = -(q64 @ x64.T)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, order, axis=1), order


@pytest.fixture(params=[False, True], ids=["exact-product", "reduced-bound"])
def reduced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every flat index in the test bounds distances first, from its loosest bound (one
    principal coordinate and the residual norm), or never does."""
    if request.param:
        monkeypatch.setattr(knn_bound, "TAIL", 1.0)
        monkeypatch.setattr(knn_bound, "MAX_SHARE", 1.0)
    else:
        monkeypatch.setattr(knn_bound, "MAX_SHARE", 0.0)
    return bool(request.param)


@pytest.mark.parametrize("metric", ["L2", "INNER_PRODUCT"])
@pytest.mark.parametrize(("block", "tile"), [(1, 8), (3, 24), (7, 40), (512, 512), (64, 4096)])
def test_flat_search_equals_a_stable_brute_force_with_many_ties(
    metric: str, block: int, tile: int, reduced: bool
) -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(-2, 3, size=(1003, 5)).astype(np.float32)  # integer distances: many ties
    q = rng.integers(-2, 3, size=(37, 5)).astype(np.float32)
    index = FlatIndex(x, metric)
    assert (index.bound is not None) == reduced
    for k in (1, 2, 10, 90, 400, 1003, 2000):  # up to more than any query's candidates
        found = index.search(q, k, block=block, tile=tile)
        distances, positions = brute_force(x, q, min(k, len(x)), metric)
        np.testing.assert_array_equal(found.positions, positions)
        np.testing.assert_array_equal(found.distances, distances)


def test_flat_search_cut_back_at_every_tile_stays_exact(
    monkeypatch: pytest.MonkeyPatch, reduced: bool
) -> None:
    monkeypatch.setattr(knn_index, "CANDIDATE_BUDGET", 16)  # shortlist after every tile
    rng = np.random.default_rng(12)
    x = rng.integers(0, 3, size=(700, 3)).astype(np.float32)
    q = rng.integers(0, 3, size=(20, 3)).astype(np.float32)
    for k in (1, 5, 50):
        found = FlatIndex(x, "L2").search(q, k, block=8, tile=16)
        distances, positions = brute_force(x, q, k, "L2")
        np.testing.assert_array_equal(found.positions, positions)
        np.testing.assert_array_equal(found.distances, distances)


@settings(max_examples=60, deadline=None)
@given(
    rows=arrays(
        np.float32,
        st.tuples(st.integers(2, 40), st.integers(2, 9)),
        elements=st.floats(-100, 100, width=32),
    ),
    query=st.lists(st.floats(-100, 100, width=32), min_size=9, max_size=9),
    m=st.integers(1, 8),
)
def test_reduced_scores_never_exceed_the_exact_ones(
    rows: Array, query: list[float], m: int
) -> None:
    dim = rows.shape[1]
    bound = PrincipalBound.fit(rows, min(m, dim))
    q = np.asarray(query[:dim], np.float32)[None, :]
    p_rows, p_q = bound.reduce(rows).astype(np.float64), bound.reduce(q).astype(np.float64)
    x64, q64 = rows.astype(np.float64), q.astype(np.float64)
    scale = 1e-5 * (1.0 + np.abs(x64).sum() * np.abs(q64).sum() + (x64**2).sum(axis=1))
    inner_bound = p_rows @ p_q[0]  # the reduced inner product bounds q.y from above
    assert np.all(inner_bound >= x64 @ q64[0] - scale)
    reduced_l2 = (x64**2).sum(axis=1) + (q64**2).sum() - 2 * inner_bound
    assert np.all(reduced_l2 <= ((x64 - q64) ** 2).sum(axis=1) + scale)


def test_the_bound_is_taken_where_variance_lies_in_few_directions() -> None:
    rng = np.random.default_rng(15)
    isotropic = rng.normal(size=(4000, 40)).astype(np.float32)
    assert FlatIndex(isotropic, "L2").bound is None
    mixing = rng.normal(size=(6, 40))
    low_rank = rng.normal(size=(4000, 6)) * 10 @ mixing + rng.normal(size=(4000, 40)) * 0.1
    x, q = low_rank[:3500].astype(np.float32), low_rank[3500:].astype(np.float32)
    for metric in ("L2", "INNER_PRODUCT"):
        index = FlatIndex(x, metric)
        assert index.bound is not None
        assert index.bound.width < 40 / 2
        found = index.search(q, 7)
        expected = FlatIndex(x, metric, reduce=False).search(q, 7)
        np.testing.assert_array_equal(found.positions, expected.positions)
        np.testing.assert_array_equal(found.distances, expected.distances)


def test_flat_search_of_no_queries_and_of_fewer_rows_than_k() -> None:
    index = FlatIndex(np.eye(3, dtype=np.float32), "L2")
    assert index.search(np.zeros((0, 3), np.float32), 2).positions.shape == (0, 2)
    assert index.search(np.zeros((2, 3), np.float32), 5).positions.tolist() == [[0, 1, 2]] * 2


@pytest.mark.parametrize("k", [1, 3, 10])
def test_kth_bound_is_never_below_the_kth_smallest(k: int) -> None:
    rng = np.random.default_rng(13)
    for scores in (
        rng.normal(size=(50, 1000)).astype(np.float32),
        rng.integers(0, 4, size=(50, 1000)).astype(np.float32),  # ties
        rng.normal(size=(50, 2 * k)).astype(np.float32),  # too few for groups: exact
    ):
        kth = np.partition(scores, k - 1, axis=1)[:, k - 1]
        bound = kth_bound(scores, k)
        assert np.all(bound >= kth)
        if scores.shape[1] < 2 * knn_index.PROBE_GROUPS * k:
            np.testing.assert_array_equal(bound, kth)


def test_sieve_keeps_exactly_the_non_positive_products() -> None:
    rng = np.random.default_rng(14)
    sieve = Sieve(6, 16)
    offsets = np.arange(6, dtype=np.float32)
    expected: list[tuple[int, int, float]] = []
    for start in (0, 16, 32):
        products = rng.integers(-1, 6, size=(6, 16)).astype(np.float32)
        products[0, 0], products[1, 1], products[2, 2] = -0.0, np.nan, 0.0
        sieve.products[:] = products
        sieve.scan(start)
        for row, column in zip(*np.nonzero(products <= 0), strict=True):
            expected.append((int(row), start + int(column), float(products[row, column] + row)))
    found = sieve.candidates(offsets)
    got = sorted(
        zip(found.rows.tolist(), found.positions.tolist(), found.scores.tolist(), strict=True)
    )
    assert got == sorted(expected)
    assert sieve.held == 0
    assert len(sieve.candidates(offsets).rows) == 0


# --- approximate indexes -------------------------------------------------------------------------


def _clustered() -> tuple[Array, Array, Array]:
    x, y = make_blobs(n_samples=6000, centers=40, n_features=16, random_state=4)
    return x[:5000].astype(np.float32), y[:5000], x[5000:].astype(np.float32)


def recall(found: list[set[Any]], exact: list[set[Any]]) -> float:
    return float(np.mean([len(a & b) / len(b) for a, b in zip(found, exact, strict=True)]))


@pytest.mark.parametrize("metric", ["L2", "INNER_PRODUCT", "COSINE"])
def test_ivf_flat_reaches_the_recall_target(metric: str) -> None:
    x, y, q = _clustered()
    ivf = fit(x, y, 10, index_type="faiss.IVFFlat", metric=metric, nlists=70)
    flat = fit(x, y, 10, metric=metric)
    assert isinstance(ivf.index, IVFIndex)
    assert ivf.settings.nprobe is not None
    assert 1 <= ivf.settings.nprobe < 70
    assert isinstance(flat.index, FlatIndex)
    stored = ivf.index.rows
    assert stored is not None
    # positions differ (IVF stores rows by list): compare the rows themselves
    found = [{tuple(r) for r in stored[p]} for p in ivf.neighbours(q).positions]
    exact = [{tuple(r) for r in flat.index.rows[p]} for p in flat.neighbours(q).positions]
    assert recall(found, exact) >= 0.95


def test_ivf_pq_finds_most_neighbours_and_predicts_well() -> None:
    x, y, q = _clustered()
    _, y_all = make_blobs(n_samples=6000, centers=40, n_features=16, random_state=4)
    pq = fit(x, y, 10, index_type="faiss.IVFPQ", nlists=70, pq_m=8)
    flat = fit(x, y, 10)
    assert pq.describe()["index_type"] == "faiss.IVFPQ"
    agreement = np.mean(pq.predict(q).predicted == flat.predict(q).predicted)
    assert agreement >= 0.95
    assert np.mean(pq.predict(q).predicted == y_all[5000:]) >= 0.9


@pytest.mark.parametrize("metric", ["L2", "INNER_PRODUCT"])
@pytest.mark.parametrize("buffer", [1 << 19, 40])
def test_ivf_flat_finds_the_exact_best_of_each_querys_lists(
    metric: str, buffer: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The k best of the rows in a query's nprobe nearest lists, ties to the lower position,
    whether the list scores share a buffer or fill one each (and cut back on the way)."""
    monkeypatch.setattr(knn_ivf, "LIST_BUFFER", buffer)
    if buffer < 100:
        monkeypatch.setattr(knn_ivf, "CANDIDATE_BUDGET", 64)
    rng = np.random.default_rng(16)
    x = rng.integers(-3, 4, size=(1500, 6)).astype(np.float32)  # many ties
    q = rng.integers(-3, 4, size=(60, 6)).astype(np.float32)
    index, order = IVFIndex.build(x, metric, 24, seed=1)
    stored = x[order]
    coarse = index.scorer.queries(q) @ index.centroid_operand.T  # as the index ranks lists
    checked = 0
    for nprobe, k in ((1, 3), (3, 10), (5, 120)):
        found = index.search(q, k, nprobe)
        for i in range(len(q)):
            lists = np.argsort(coarse[i], kind="stable")[:nprobe]
            rows = np.concatenate(
                [np.arange(index.offsets[c], index.offsets[c + 1]) for c in lists]
            )
            if len(rows) < k:  # the search looks further for these
                continue
            rows.sort()
            distances, at = brute_force(stored[rows], q[i : i + 1], k, metric)
            np.testing.assert_array_equal(found.positions[i], rows[at[0]])
            np.testing.assert_array_equal(found.distances[i], distances[0])
            checked += 1
    assert checked > 150


def test_ivf_with_more_neighbours_than_small_lists_hold() -> None:
    x, y, q = _clustered()
    ivf = fit(x[:400], y[:400], 50, index_type="faiss.IVFFlat", nlists=100)
    found = ivf.neighbours(q[:50])
    assert (found.positions >= 0).all()
    exact = fit(x[:400], y[:400], 50).neighbours(q[:50])
    assert np.mean(found.distances[:, -1] / exact.distances[:, -1]) < 1.05


# --- sampling and projections --------------------------------------------------------------------


@given(st.lists(st.integers(1, 40), min_size=1, max_size=8), st.integers(1, 200))
@settings(max_examples=40, deadline=None)
def test_reservoir_keeps_everything_that_fits_and_is_deterministic(
    batches: list[int], size: int
) -> None:
    def sample() -> tuple[Array, Array]:
        reservoir = Reservoir(size)
        start = 0
        for n in batches:
            rows = np.arange(start, start + n, dtype=np.float32)[:, None]
            reservoir.add(rows, rows[:, 0].copy())
            start += n
        return reservoir.sample()

    rows, labels = sample()
    total = sum(batches)
    assert len(rows) == min(size, total)
    assert len(set(rows[:, 0].tolist())) == len(rows)  # no row twice
    np.testing.assert_array_equal(rows[:, 0], labels)  # labels travel with their rows
    if total <= size:
        np.testing.assert_array_equal(rows[:, 0], np.arange(total))
    again, _ = sample()
    np.testing.assert_array_equal(rows, again)


def test_reservoir_sample_is_uniform() -> None:
    counts = np.zeros(1000)
    for seed in range(200):
        reservoir = Reservoir(100, seed)
        for start in range(0, 1000, 64):
            rows = np.arange(start, min(start + 64, 1000), dtype=np.float32)[:, None]
            reservoir.add(rows, rows[:, 0])
        counts[reservoir.sample()[0][:, 0].astype(int)] += 1
    # each row is kept with probability 0.1: 20 of 200 draws, by decile well within noise
    deciles = counts.reshape(10, 100).sum(axis=1) / (200 * 100 / 10)
    assert np.all(np.abs(deciles - 1.0) < 0.1)


def test_walsh_hadamard_matches_scipy() -> None:
    x = np.random.default_rng(5).normal(size=(7, 16)).astype(np.float32)
    np.testing.assert_allclose(walsh_hadamard(x), x @ hadamard(16).T, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["sign", "fjlt"])
def test_projections_preserve_distances_on_average(kind: str) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(400, 100)).astype(np.float32)
    projection = Projection.draw(kind, 100, 40)
    reduced = projection.apply(x)
    assert reduced.shape == (400, 40)
    ratio = np.linalg.norm(reduced[1:] - reduced[:-1], axis=1) / np.linalg.norm(
        x[1:] - x[:-1], axis=1
    )
    assert abs(np.mean(ratio**2) - 1.0) < 0.1
    np.testing.assert_array_equal(Projection.draw(kind, 100, 40).apply(x), reduced)


# --- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index_type", "reduction"),
    [("faiss.Flat", None), ("faiss.IVFFlat", "sign"), ("faiss.IVFPQ", "fjlt")],
)
def test_model_files_round_trip_and_json_edits_apply(
    tmp_path: Path, index_type: str, reduction: str | None
) -> None:
    x, y, q = _clustered()
    projection = Projection.draw(reduction, 16, 8) if reduction else None
    rows = projection.apply(x) if projection else x
    model = build(
        rows,
        y.astype(np.float32),
        Settings(5, "classifier", "L2", index_type),
        IndexConfig(index_type, "L2", 20, 4 if index_type == "faiss.IVFPQ" else None),
        16,
        projection,
    )
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model_algo-1",
        "model_algo-1.json",
        "model_algo-1.labels",
    ]
    assert (tmp_path / "model_algo-1.labels").stat().st_size == 4 * len(x)
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["k"] == 5
    assert meta["predictor_type"] == "classifier"
    assert meta["normalize"] is False
    assert meta["version"] == "1.0"
    if reduction:
        assert meta["dimension_reduction"] == {
            "type": reduction,
            "seed": 3,
            "target_dim": 8,
            "input_dim": 16,
        }
    loaded = KNNModel.load(tmp_path)
    before = model.predict(q)
    after = loaded.predict(q)
    np.testing.assert_array_equal(after.predicted, before.predicted)
    np.testing.assert_array_equal(after.distances, before.distances)

    meta.update(k=1, predictor_type="regressor")
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    edited = KNNModel.load(tmp_path).predict(q)
    assert edited.labels.shape == (len(q), 1)
    np.testing.assert_array_equal(edited.predicted, edited.labels[:, 0])


def test_broken_model_files_say_which(tmp_path: Path) -> None:
    x, y, _ = _clustered()
    fit(x[:100], y[:100], 3).save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    (tmp_path / META_FILE).write_text(json.dumps({**meta, "k": "many"}))
    with pytest.raises(ValueError, match="integer k"):
        KNNModel.load(tmp_path)
    (tmp_path / META_FILE).write_text(json.dumps({**meta, "predictor_type": "ranker"}))
    with pytest.raises(ValueError, match="predictor_type"):
        KNNModel.load(tmp_path)
    (tmp_path / "model_algo-1.labels").write_bytes(b"\0" * 8)
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="labels"):
        KNNModel.load(tmp_path)


# --- the hyperparameter table --------------------------------------------------------------------

BASE = {"feature_dim": "10", "k": "5", "predictor_type": "classifier", "sample_size": "100"}


def test_table_defaults_and_auto() -> None:
    values = SPEC.hyperparameters.resolved(BASE)
    assert values["index_type"] == "faiss.Flat"
    assert values["index_metric"] == "L2"
    assert values["faiss_index_ivf_nlists"] == "auto"
    assert values["mini_batch_size"] == 5000
    assert "dimension_reduction_type" not in values
    assert (
        SPEC.hyperparameters.validate({**BASE, "faiss_index_ivf_nlists": "12"})[
            "faiss_index_ivf_nlists"
        ]
        == 12
    )
    assert [m.name for m in SPEC.metrics] == ["test:accuracy", "test:mse"]
    assert SPEC.tunable_objectives() == {"test:accuracy": "Maximize", "test:mse": "Minimize"}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"dimension_reduction_type": "sign"}, "dimension_reduction_target"),
        ({"dimension_reduction_target": "4"}, "dimension_reduction_target"),
        ({"dimension_reduction_type": "fjlt", "dimension_reduction_target": "10"},
         "dimension_reduction_target"),
        ({"index_type": "faiss.IVFPQ", "index_metric": "COSINE"}, "index_metric"),
        ({"k": "101"}, "k"),
        ({"faiss_index_pq_m": "5"}, "faiss_index_pq_m"),
        ({"faiss_index_ivf_nlists": "0"}, "faiss_index_ivf_nlists"),
        ({"predictor_type": "ranker"}, "predictor_type"),
    ],
)  # fmt: skip
def test_table_refuses_bad_combinations(extra: dict[str, str], named: str) -> None:
    with pytest.raises(HyperparameterError, match=f"^Hyperparameter '{named}'"):
        SPEC.hyperparameters.validate({**BASE, **extra})


# --- training, in-process ------------------------------------------------------------------------


def job(
    tmp_path: Path, hyperparameters: dict[str, str], channels: dict[str, tuple[bytes, str]]
) -> MLPaths:
    paths = MLPaths(tmp_path)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    config = {}
    for name, (body, content_type) in channels.items():
        paths.channel(name).mkdir(parents=True, exist_ok=True)
        (paths.channel(name) / "part-0").write_bytes(body)
        config[name] = {"ContentType": content_type, "TrainingInputMode": "File"}
    paths.input_data_config_file.write_text(json.dumps(config))
    return paths


def test_training_samples_and_scores_like_sklearn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    hyperparameters = {**BASE, "feature_dim": "64", "k": "5", "sample_size": "800",
                       "mini_batch_size": "100"}  # fmt: skip
    paths = job(
        tmp_path,
        hyperparameters,
        {"train": (encode_csv(x_train, y_train), "text/csv"),
         "test": (encode_dense(x_test.astype(np.float32), y_test.astype(np.float32)), "")},
    )  # fmt: skip
    assert run(SPEC, train, paths) == 0, paths.failure_file.read_text()
    model = KNNModel.load(paths.model)
    assert model.index.size == 800  # a sample of the 1257 training rows
    accuracy = float(np.mean(model.predict(x_test.astype(np.float32)).predicted == y_test))
    log = capsys.readouterr().out
    assert f"#test_score (algo-1) : ('accuracy', {accuracy!r})" in log
    assert accuracy > 0.95


def test_training_refuses_unlabelled_mismatched_and_non_finite_data(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    with_nan = np.column_stack([x, np.full(len(x), np.nan)]).astype(np.float32)
    jobs = {
        "no labels": ({"feature_dim": "4"}, encode_csv(x, y), "text/csv;label_size=0"),
        "feature_dim is 7": ({"feature_dim": "7"}, encode_csv(x, y), "text/csv"),
        "finite": (
            {"feature_dim": "5"},
            encode_dense(with_nan, y.astype(np.float32)),
            "application/x-recordio-protobuf",
        ),
    }
    for number, (problem, (hyperparameters, body, content_type)) in enumerate(jobs.items()):
        paths = job(tmp_path / str(number), {**BASE, **hyperparameters},
                    {"train": (body, content_type)})  # fmt: skip
        assert run(SPEC, train, paths) == 1
        failure = paths.failure_file.read_text()
        assert failure.startswith("ClientError:"), failure
        assert problem in failure


# --- serving -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> Any:
    x, y = load_iris(return_X_y=True)
    model_dir = tmp_path_factory.mktemp("knn-model")
    fit(x, y, 5).save(model_dir)
    return load(model_dir, {})


def test_verbose_answers_carry_sorted_distances_and_labels(handler: Any) -> None:
    x, _ = load_iris(return_X_y=True)
    body = json.dumps({"instances": [{"features": row} for row in x[:3].tolist()]}).encode()
    plain = json.loads(handler.invoke(body, "application/json", None, None).body)
    assert list(plain) == ["predictions"]
    assert [list(p) for p in plain["predictions"]] == [["predicted_label"]] * 3
    verbose = handler.invoke(body, "application/json", "application/json; verbose=true", None)
    for row in json.loads(verbose.body)["predictions"]:
        assert set(row) == {"predicted_label", "distances", "labels"}
        assert len(row["distances"]) == len(row["labels"]) == 5
        assert row["distances"] == sorted(row["distances"])
        assert row["distances"][0] == 0.0  # the row itself is in the index
    records = read_record_messages(
        handler.invoke(body, "application/json", "application/x-recordio-protobuf;verbose=true",
                       None).body
    )  # fmt: skip
    assert sorted(records[0].label) == ["distances", "labels", "predicted_label"]
    lines = handler.invoke(body, "application/json", "application/jsonlines", None).body
    assert [json.loads(line) for line in lines.splitlines()] == plain["predictions"]


@given(arrays(np.float32, st.tuples(st.integers(1, 12), st.just(4)),
              elements=st.floats(-10, 10, width=32)))  # fmt: skip
@settings(max_examples=40, deadline=None)
def test_every_request_format_predicts_alike(handler: Any, rows: Array) -> None:
    expected = handler.model.predict(rows).predicted.tolist()
    bodies = {
        "text/csv": encode_csv(rows),
        "application/json": json.dumps({"instances": [{"features": r} for r in rows.tolist()]}),
        "application/jsonlines": "".join(json.dumps({"features": r}) + "\n" for r in rows.tolist()),
        "application/x-recordio-protobuf": encode_dense(rows),
    }  # fmt: skip
    for content_type, body in bodies.items():
        data = body.encode() if isinstance(body, str) else body
        result = handler.invoke(data, content_type, "application/json", None)
        got = [p["predicted_label"] for p in json.loads(result.body)["predictions"]]
        assert got == expected, content_type


def test_wrong_width_and_types_are_refused(handler: Any) -> None:
    with pytest.raises(InferenceError) as caught:
        handler.invoke(b"1,2,3\n", "text/csv", None, None)
    assert caught.value.status_code == 400
    with pytest.raises(InferenceError) as caught:
        handler.invoke(b"1,2,3,4\n", "text/csv", "text/csv", None)
    assert caught.value.status_code == 406
