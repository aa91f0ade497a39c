"""The K-Means built-in: the core's maths, its quality against scikit-learn, the training
program's errors and metric lines, and the serving handler's formats."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from opensage.algorithms.artifacts import save_model
from opensage.algorithms.base import HyperparameterError
from opensage.algorithms.kmeans import model as core
from opensage.algorithms.kmeans.model import (
    KMeansModel,
    MiniBatchKMeans,
    Settings,
    TooFewRows,
    fit,
    lloyd,
    reduce_centers,
)
from opensage.algorithms.kmeans.serve import load
from opensage.algorithms.kmeans.spec import SPEC, TABLE
from opensage.algorithms.kmeans.train import train
from opensage.algorithms.runner import run
from opensage.contract import MLPaths
from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, encode_sparse, read_record_messages
from opensage.serving.errors import InferenceError

Array = np.ndarray

REQUIRED = {"k": "3", "feature_dim": "4"}


def batches(x: Array, size: int) -> list[Array]:
    return [x[start : start + size] for start in range(0, len(x), size)]


# --- distances and the update rule ------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float32, (7, 3), elements=st.floats(-100, 100, width=32)),
    arrays(np.float32, (4, 3), elements=st.floats(-100, 100, width=32)),
)
def test_squared_distances_match_the_direct_formula(x: Array, c: Array) -> None:
    direct = ((x[:, None, :].astype(np.float64) - c[None, :, :]) ** 2).sum(axis=2)
    got = core.squared_distances(x, c)
    scale = 1 + (x.astype(np.float64) ** 2).sum(1)[:, None] + (c.astype(np.float64) ** 2).sum(1)
    assert np.all(got >= 0)
    tolerance = float(scale.max()) * 1e-5  # float32 cancellation in ||x||² - 2x·c + ||c||²
    np.testing.assert_allclose(got, direct, atol=tolerance)
    np.testing.assert_allclose(core.squared_distances(sp.csr_matrix(x), c), direct, atol=tolerance)


def test_nearest_works_in_blocks_and_on_sparse_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((50, 6)).astype(np.float32)
    x[x < 0.5] = 0
    c = rng.random((5, 6)).astype(np.float32)
    labels, d2 = core.nearest(x, c)
    monkeypatch.setattr(core, "BLOCK_ROWS", 7)
    blocked = core.nearest(sp.csr_matrix(x), c)
    np.testing.assert_array_equal(blocked[0], labels)
    np.testing.assert_allclose(blocked[1], d2, rtol=1e-5, atol=1e-6)


def test_a_batch_update_is_sculleys_per_point_update_with_rate_one_over_count() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    learner = MiniBatchKMeans(Settings(k=2, extra_center_factor=2, mini_batch_size=20), 3)
    learner.partial_fit(x[:20])
    centers = learner.centers.astype(np.float64).copy()  # type: ignore[union-attr]
    counts = learner.counts.copy()
    batch = x[20:40]
    labels, _ = core.nearest(batch, learner.centers)  # type: ignore[arg-type]
    for row, label in zip(batch.astype(np.float64), labels, strict=True):  # Sculley, Alg. 1
        counts[label] += 1
        rate = 1.0 / counts[label]
        centers[label] = (1 - rate) * centers[label] + rate * row
    learner.partial_fit(batch)
    np.testing.assert_allclose(learner.centers, centers, rtol=1e-5, atol=1e-5)  # type: ignore[arg-type]
    np.testing.assert_array_equal(learner.counts, counts)


def test_half_life_halves_the_weight_of_old_points_after_that_many_new_ones() -> None:
    x = np.zeros((20, 2), np.float32)
    x[10:] = 1.0
    learner = MiniBatchKMeans(
        Settings(k=1, extra_center_factor=1, mini_batch_size=10, half_life_time_size=10), 2
    )
    learner.partial_fit(x[:10])  # the one centre: 10 points at 0
    learner.partial_fit(x[10:])  # 10 new points at 1: the old 10 now weigh 5
    np.testing.assert_allclose(learner.counts, [15.0])
    np.testing.assert_allclose(learner.centers, [[10 / 15, 10 / 15]], rtol=1e-6)  # type: ignore[arg-type]


def test_weighted_lloyd_equals_lloyd_on_repeated_points() -> None:
    rng = np.random.default_rng(3)
    points = rng.normal(size=(30, 2)).astype(np.float32)
    weights = rng.integers(1, 4, size=30).astype(np.float32)
    start = points[:3].copy()
    weighted = lloyd(points, weights, start, 100, 0.0)
    repeated = np.repeat(points, weights.astype(int), axis=0)
    plain = lloyd(repeated, np.ones(len(repeated), np.float32), start, 100, 0.0)
    np.testing.assert_allclose(weighted[0], plain[0], rtol=1e-5, atol=1e-5)
    assert weighted[1] == pytest.approx(plain[1], rel=1e-5)


def test_kmeans_plus_plus_never_picks_a_zero_weight_point_or_a_duplicate() -> None:
    points = np.arange(20, dtype=np.float32).reshape(10, 2)
    weights = np.ones(10, np.float32)
    weights[::2] = 0
    seeds = core.kmeans_plus_plus(points, 5, np.random.default_rng(0), weights=weights)
    assert {tuple(s) for s in seeds} == {tuple(p) for p in points[1::2]}


def test_reduction_keeps_the_used_centres_when_there_are_no_more_than_k() -> None:
    centers = np.arange(8, dtype=np.float32).reshape(4, 2)
    kept = reduce_centers(
        centers, np.array([0, 3, 0, 1], np.float32), Settings(k=3), np.random.default_rng(0)
    )
    np.testing.assert_array_equal(kept, centers[[1, 3, 0]])


def test_too_few_rows_for_k_is_refused() -> None:
    with pytest.raises(TooFewRows, match="k=5 is more than the 3 records"):
        fit([np.ones((3, 2), np.float32)], Settings(k=5), 2)


@pytest.mark.parametrize(
    ("batch", "factor"), [(5000, 9), (15000, 10), (10, 4), (3000, 9), (100, 5)]
)
def test_auto_extra_center_factor_is_ceil_ln_batch_within_4_to_10(batch: int, factor: int) -> None:
    assert Settings(k=3, mini_batch_size=batch).center_factor == factor
    assert Settings(k=3, extra_center_factor=2, mini_batch_size=batch).center_factor == 2


def test_auto_trials_are_ten_for_small_reductions_and_fewer_for_large_ones() -> None:
    assert Settings(k=10).trials(90, 64) == 10
    assert Settings(k=100).trials(900, 784) == 1
    assert Settings(k=100, local_lloyd_num_trials=3).trials(900, 784) == 3


# --- quality against scikit-learn -------------------------------------------------------------


@functools.cache
def dataset(name: str) -> tuple[Array, int, float]:
    """Rows, k and scikit-learn's KMeans inertia (k-means++, 10 inits, seed 0): the anchor."""
    if name == "blobs":
        x, _ = make_blobs(3000, n_features=10, centers=8, cluster_std=2.0, random_state=0)
        k = 8
    else:
        x, k = load_digits().data, 10
    x = x.astype(np.float32)
    anchor = KMeans(k, init="k-means++", n_init=10, random_state=0).fit(x).inertia_
    return x, k, float(anchor)


@pytest.mark.parametrize(
    ("name", "options"),
    [("blobs", {}), ("blobs", {"init_method": "kmeans++"}), ("blobs", {"mini_batch_size": 500}),
     ("blobs", {"local_lloyd_init_method": "random"}), ("digits", {}),
     ("digits", {"init_method": "kmeans++"}), ("digits", {"mini_batch_size": 500})],
)  # fmt: skip
def test_inertia_is_within_2_percent_of_sklearn_kmeans(
    name: str, options: dict[str, object]
) -> None:
    x, k, anchor = dataset(name)
    config = Settings(k=k, **options)  # type: ignore[arg-type]
    ours = fit(batches(x, config.mini_batch_size), config, x.shape[1]).squared_error(x)[0]
    assert ours <= 1.02 * anchor


def test_training_is_bit_reproducible_and_sparse_rows_give_the_dense_model() -> None:
    x, _ = make_blobs(600, n_features=5, centers=4, random_state=1)
    x = x.astype(np.float32)
    config = Settings(k=4, mini_batch_size=100, init_method="kmeans++")
    first = fit(batches(x, 100), config, 5).centroids
    np.testing.assert_array_equal(fit(batches(x, 100), config, 5).centroids, first)
    sparse = fit([sp.csr_matrix(b) for b in batches(x, 100)], config, 5).centroids
    np.testing.assert_allclose(sparse, first, rtol=1e-4, atol=1e-4)


# --- the hyperparameter table -----------------------------------------------------------------


@given(
    st.lists(st.sampled_from(["msd", "ssd"]), min_size=1, max_size=2, unique=True), st.booleans()
)
def test_eval_metrics_read_as_json_or_comma_lists(names: list[str], as_json: bool) -> None:
    text = json.dumps(names) if as_json else ",".join(names)
    assert TABLE.validate({**REQUIRED, "eval_metrics": text})["eval_metrics"] == tuple(names)


@given(st.one_of(st.integers(1, 10**6).map(str), st.sampled_from(["auto", "AUTO", " auto "])))
def test_auto_or_positive_integer_hyperparameters(text: str) -> None:
    values = TABLE.validate(
        {**REQUIRED, "extra_center_factor": text, "local_lloyd_num_trials": text}
    )
    expected = "auto" if text.strip().lower() == "auto" else int(text)
    assert values["extra_center_factor"] == values["local_lloyd_num_trials"] == expected


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [("k", "0", "is not in"), ("eval_metrics", '["mse"]', "not one of: msd, ssd"),
     ("init_method", "k-means++", "not one of: random, kmeans++"),
     ("local_lloyd_tol", "1.5", "is not in [0, 1]"), ("extra_center_factor", "two", "or 'auto'"),
     ("half_life_time_size", "-1", "is not in")],
)  # fmt: skip
def test_bad_values_are_refused_naming_the_hyperparameter(
    name: str, value: str, problem: str
) -> None:
    with pytest.raises(HyperparameterError, match=rf"^Hyperparameter '{name}'") as caught:
        TABLE.validate({**REQUIRED, name: value})
    assert problem in str(caught.value)


def test_resolved_defaults_are_sagemakers() -> None:
    values = TABLE.resolved(REQUIRED)
    assert values["epochs"] == 1
    assert values["eval_metrics"] == ("msd",)
    assert values["extra_center_factor"] == "auto"
    assert values["local_lloyd_num_trials"] == "auto"
    assert values["init_method"] == "random"
    assert values["local_lloyd_init_method"] == "kmeans++"
    assert values["local_lloyd_max_iter"] == 300
    assert values["local_lloyd_tol"] == 1e-4
    assert values["mini_batch_size"] == 5000
    assert values["half_life_time_size"] == 0
    assert SPEC.tunable_objectives() == {"test:msd": "Minimize", "test:ssd": "Minimize"}


# --- the training program, in process ---------------------------------------------------------


def job(
    base: Path, hyperparameters: dict[str, str], channels: dict[str, tuple[bytes, str]]
) -> MLPaths:
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    config = {}
    for name, (body, content_type) in channels.items():
        paths.channel(name).mkdir(parents=True, exist_ok=True)
        (paths.channel(name) / "part-0").write_bytes(body)
        config[name] = {"ContentType": content_type, "TrainingInputMode": "File"}
    paths.input_data_config_file.write_text(json.dumps(config))
    return paths


CSV0 = "text/csv;label_size=0"


def test_metric_lines_match_the_declared_regexes_and_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, _ = make_blobs(200, n_features=4, centers=3, random_state=0)
    x = x.astype(np.float32)
    test = x[:50]
    hps = {**REQUIRED, "epochs": "3", "eval_metrics": "msd,ssd"}
    paths = job(tmp_path, hps, {"train": (encode_csv(x), CSV0), "test": (encode_dense(test), "")})
    assert run(SPEC, train, paths) == 0, paths.failure_file.read_text()
    out = capsys.readouterr().out
    values = {}
    for metric in SPEC.metrics:
        found = re.search(metric.regex, out)
        assert found, metric.name
        values[metric.name] = float(found.group(1))
    model = KMeansModel.load(paths.model)
    total, n = model.squared_error(test)
    assert values["test:ssd"] == pytest.approx(total, rel=1e-6)
    assert values["test:msd"] == pytest.approx(total / n, rel=1e-6)
    assert values["train:msd"] == pytest.approx(model.squared_error(x)[0] / len(x), rel=1e-6)
    assert "completed 100 % of epochs" in out


@pytest.mark.parametrize(
    ("hyperparameters", "body", "reason"),
    [({"k": "3", "feature_dim": "5"}, encode_csv(np.ones((10, 4))), "feature_dim is 5"),
     ({"k": "30", "feature_dim": "4"}, encode_csv(np.ones((10, 4))), "k=30 is more than the 10"),
     ({"k": "3", "feature_dim": "4"}, b"1,2,3,4\n5,6,x,8\n", "record 1"),
     ({"k": "1", "feature_dim": "2"}, b"1,2\n5,nan\n", "non-finite value")],
)  # fmt: skip
def test_bad_data_fails_the_job_with_a_client_error(
    tmp_path: Path, hyperparameters: dict[str, str], body: bytes, reason: str
) -> None:
    paths = job(tmp_path, hyperparameters, {"train": (body, CSV0)})
    assert run(SPEC, train, paths) == 1
    failure = paths.failure_file.read_text()
    assert failure.startswith("ClientError:"), failure
    assert reason in failure


def test_narrower_sparse_records_are_widened_to_feature_dim(tmp_path: Path) -> None:
    x = sp.csr_matrix(np.eye(6, 3, dtype=np.float32))
    paths = job(tmp_path, {"k": "2", "feature_dim": "5"}, {"train": (encode_sparse(x), "")})
    assert run(SPEC, train, paths) == 0, paths.failure_file.read_text()
    assert KMeansModel.load(paths.model).width == 5


# --- serving ----------------------------------------------------------------------------------


CENTROIDS = np.array([[0, 0], [3, 4], [10, 10]], np.float32)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    KMeansModel(CENTROIDS).save(tmp_path)
    return tmp_path


def test_responses_have_sagemakers_shape_in_every_accept_type(model_dir: Path) -> None:
    handler = load(model_dir)
    body = b"3,4\n0,1\n"
    expected = [
        {"closest_cluster": 1.0, "distance_to_cluster": 0.0},
        {"closest_cluster": 0.0, "distance_to_cluster": 1.0},
    ]
    as_json = handler.invoke(body, "text/csv", "application/json", None)
    assert json.loads(as_json.body) == {"predictions": expected}
    assert isinstance(json.loads(as_json.body)["predictions"][0]["closest_cluster"], float)
    lines = handler.invoke(body, "text/csv", "application/jsonlines", None).body
    assert [json.loads(line) for line in lines.splitlines()] == expected
    assert handler.invoke(body, "text/csv", "text/csv", None).body == b"1.0,0.0\n0.0,1.0\n"
    records = read_record_messages(
        handler.invoke(body, "text/csv", "application/x-recordio-protobuf", None).body
    )
    assert [
        {key: list(r.label[key].float32_tensor.values) for key in r.label} for r in records
    ] == [{k: [v] for k, v in row.items()} for row in expected]
    assert handler.invoke(body, "text/csv", None, None).content_type == "application/json"


@pytest.fixture(scope="module")
def shared_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Module-scoped: hypothesis runs many examples in one test call."""
    folder = tmp_path_factory.mktemp("kmeans-model")
    KMeansModel(CENTROIDS).save(folder)
    return folder


@settings(max_examples=30, deadline=None)
@given(
    arrays(
        np.float32, st.tuples(st.integers(1, 6), st.just(2)), elements=st.floats(-50, 50, width=32)
    )
)
def test_every_request_type_gives_the_same_answer(shared_model_dir: Path, rows: Array) -> None:
    handler = load(shared_model_dir)
    requests = {
        "text/csv": encode_csv(rows),
        "application/json": json.dumps({"instances": [{"features": r} for r in rows.tolist()]}),
        "application/jsonlines": "".join(json.dumps({"features": r}) + "\n" for r in rows.tolist()),
        "application/x-recordio-protobuf": encode_dense(rows),
    }
    answers = [
        json.loads(handler.invoke(_bytes(body), kind, "application/json", None).body)
        for kind, body in requests.items()
    ]
    assert all(answer == answers[0] for answer in answers)
    clusters, distances = KMeansModel(CENTROIDS).predict(rows)
    assert answers[0]["predictions"] == [
        {"closest_cluster": float(c), "distance_to_cluster": float(d)}
        for c, d in zip(clusters, distances, strict=True)
    ]


def _bytes(body: bytes | str) -> bytes:
    return body if isinstance(body, bytes) else body.encode()


def test_wrong_width_and_foreign_models_are_refused(model_dir: Path, tmp_path: Path) -> None:
    handler = load(model_dir)
    with pytest.raises(InferenceError, match="trained on 2"):
        handler.invoke(b"1,2,3\n", "text/csv", "application/json", None)
    other = tmp_path / "other"
    save_model(other, {"weights": np.ones(3, np.float32)}, {"algorithm": "pca"})
    with pytest.raises(ValueError, match="not a K-Means model"):
        KMeansModel.load(other)
