"""The algorithm contract's shared parts: value parsing, channels in batches, log lines that the
declared regexes read, model files, request parsing and Accept negotiation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.algorithms import artifacts, inference
from opensage.algorithms.base import (
    AUTO,
    CSV,
    JSON,
    JSONLINES,
    RECORDIO,
    Algorithm,
    ChannelSpec,
    Hyperparameter,
    HyperparameterError,
    HyperparameterTable,
    Interval,
    Kind,
    Value,
    quality_metric,
    score_metric,
)
from opensage.algorithms.env import Batch, ChannelReader, TrainingEnv, concat
from opensage.algorithms.logs import MetricsLog
from opensage.algorithms.registry import algorithms, by_repository
from opensage.contract import MLPaths
from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, encode_sparse, read_record_messages
from opensage.serving.errors import InferenceError

H = Hyperparameter


def _needs_k(values: dict[str, Value]) -> None:
    if values.get("mode") == "fancy" and "k" not in values:
        raise HyperparameterError("k", "is required with mode fancy")


TABLE = HyperparameterTable(
    "Toy algorithm",
    (
        H("feature_dim", Kind.INT, interval=Interval(1), required=True),
        H("k", Kind.INT, interval=Interval(1)),
        H("rate", Kind.FLOAT, "auto", Interval(0, low_open=True), auto=True),
        H("mode", Kind.CHOICE, "plain", options=("plain", "fancy")),
        H("flag", Kind.BOOL, "true"),
        H("metrics", Kind.LIST, '["msd"]', options=("msd", "ssd")),
    ),
    checks=(_needs_k,),
)
TOY = Algorithm(
    name="toy",
    title="Toy",
    repositories=("toy",),
    hyperparameters=TABLE,
    metrics=(quality_metric("test", "msd", "Minimize"), score_metric("test", "accuracy", None)),
    channels=(ChannelSpec("train", required=True), ChannelSpec("test", csv_label_size=0)),
)


# --- hyperparameters ---------------------------------------------------------------------------


def test_values_are_read_as_sagemaker_clients_write_them() -> None:
    values = TABLE.resolved(
        {"feature_dim": "4", "flag": "False", "metrics": '["msd", "ssd"]', "sagemaker_x": "y"}
    )
    assert values == {
        "feature_dim": 4,
        "flag": False,
        "metrics": ("msd", "ssd"),
        "rate": AUTO,
        "mode": "plain",
    }
    assert TABLE.validate({"feature_dim": "4.0", "rate": "0.5", "metrics": "msd, ssd"}) == {
        "feature_dim": 4,
        "rate": 0.5,
        "metrics": ("msd", "ssd"),
    }
    assert TABLE.validate({"feature_dim": "1", "flag": "True"})["flag"] is True
    tuning = TABLE.validate({"feature_dim": "1", "_tuning_objective_metric": "test:msd"})
    assert tuning["_tuning_objective_metric"] == "test:msd"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "Hyperparameter 'feature_dim' is required"),
        ({"feature_dim": "0"}, "Hyperparameter 'feature_dim': value '0' is not in [1, inf)"),
        ({"feature_dim": "x"}, "Hyperparameter 'feature_dim': value 'x' is not an integer"),
        ({"feature_dim": "2", "rate": "-1"}, "Hyperparameter 'rate': value '-1' is not in (0"),
        ({"feature_dim": "2", "rate": "fast"}, "is not a finite number or 'auto'"),
        ({"feature_dim": "2", "flag": "yes"}, "Hyperparameter 'flag': value 'yes' is not one"),
        ({"feature_dim": "2", "mode": "odd"}, "Hyperparameter 'mode': value 'odd' is not one"),
        ({"feature_dim": "2", "metrics": '["rmse"]'}, "has 'rmse', which is not one of: msd, ssd"),
        ({"feature_dim": "2", "mode": "fancy"}, "Hyperparameter 'k' is required with mode fancy"),
        ({"feature_dim": "2", "kk": "1"}, "Hyperparameter 'kk' is not a hyperparameter of the Toy"),
    ],
)
def test_bad_values_are_refused_naming_the_hyperparameter(
    raw: dict[str, str], message: str
) -> None:
    with pytest.raises(HyperparameterError) as caught:
        TABLE.validate(raw)
    assert message in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10**9), st.floats(1e-9, 1e9), st.booleans())
def test_numbers_and_bools_round_trip_through_their_strings(
    dim: int, rate: float, flag: bool
) -> None:
    values = TABLE.validate({"feature_dim": str(dim), "rate": repr(rate), "flag": str(flag)})
    assert values == {"feature_dim": dim, "rate": rate, "flag": flag}


# --- metrics and log lines ---------------------------------------------------------------------


def test_log_lines_are_read_by_the_declared_regexes(capsys: pytest.CaptureFixture[str]) -> None:
    log = MetricsLog("algo-1")
    log.quality("test", "msd", 0.0657, "Minimize")
    log.score("test", "accuracy", 0.9867)
    log.quality("validation", "binary_f_beta", 1.5e-05, "Maximize")
    log.progress(1, 2)
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"^\[\d\d/\d\d/\d{4} \d\d:\d\d:\d\d INFO \d+\] #quality_metric: ", lines[0])
    assert lines[0].endswith("#quality_metric: host=algo-1, test msd <loss>=0.0657")
    assert lines[1].endswith("#test_score (algo-1) : ('accuracy', 0.9867)")
    assert lines[2].endswith("validation binary_f_beta <score>=1.5e-05")
    assert lines[3].endswith("#progress_metric: host=algo-1, completed 50 % of epochs")
    msd, accuracy = TOY.metrics
    assert re.search(msd.regex, lines[0]).group(1) == "0.0657"  # type: ignore[union-attr]
    assert re.search(accuracy.regex, lines[1]).group(1) == "0.9867"  # type: ignore[union-attr]
    f_beta = quality_metric("validation", "binary_f_beta", "Maximize")
    assert float(re.search(f_beta.regex, lines[2]).group(1)) == 1.5e-05  # type: ignore[union-attr]
    assert TOY.tunable_objectives() == {"test:msd": "Minimize"}


def test_the_registry_maps_repositories_to_builtins() -> None:
    assert "xgboost" in algorithms()
    assert by_repository("sagemaker-xgboost") is algorithms()["xgboost"]
    assert by_repository("no-such-repository") is None


# --- channels ----------------------------------------------------------------------------------


def _job(tmp_path: Path, files: dict[str, bytes], config: dict[str, dict[str, str]]) -> MLPaths:
    paths = MLPaths(tmp_path)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps({"feature_dim": "3"}))
    paths.input_data_config_file.write_text(json.dumps(config))
    for name, body in files.items():
        target = paths.data / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return paths


def test_channels_read_csv_and_recordio_in_exact_batches(tmp_path: Path) -> None:
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10, dtype=np.float32)
    files = {
        "train/a.pbr": encode_dense(x[:4], y[:4]),
        "train/sub/b.pbr": encode_sparse(sp.csr_matrix(x[4:]), y[4:]),
        "train/.hidden": b"junk",
        "test/t.csv": encode_csv(x),
    }
    config = {"train": {}, "test": {"ContentType": "text/csv"}}
    env = TrainingEnv.load(_job(tmp_path, files, config), TOY)
    train = env.channel("train")
    assert train is not None
    assert train.content_type == RECORDIO
    batches = list(train.batches(3))
    assert [b.n for b in batches] == [3, 3, 3, 1]
    np.testing.assert_array_equal(np.vstack([b.dense() for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), y)
    test = env.channel("test")
    assert test is not None
    assert test.label_size == 0
    whole = test.read_all()
    np.testing.assert_array_equal(whole.features, x)
    assert whole.labels is None


@pytest.mark.parametrize(
    ("files", "config", "message"),
    [
        ({"test/a": b"1,2\n"}, {"test": {}}, "Channel 'train' is required"),
        ({"train/a": b"1,2\n", "extra/b": b"1\n"}, {"train": {}, "extra": {}}, "'extra' is not"),
        ({"train/a": b"1\n"}, {"train": {"ContentType": "image/png"}}, "'image/png' of channel"),
    ],
)
def test_channel_problems_are_user_errors(
    tmp_path: Path, files: dict[str, bytes], config: dict[str, dict[str, str]], message: str
) -> None:
    from opensage.algorithms.base import UserError

    with pytest.raises(UserError, match=re.escape(message)):
        TrainingEnv.load(_job(tmp_path, files, config), TOY)


def test_a_broken_record_names_channel_file_and_record(tmp_path: Path) -> None:
    from opensage.algorithms.base import UserError

    config = {"train": {"ContentType": "text/csv"}}
    env = TrainingEnv.load(_job(tmp_path, {"train/d/x.csv": b"1,2\n3,oops\n"}, config), TOY)
    reader = env.channel("train")
    assert isinstance(reader, ChannelReader)
    with pytest.raises(UserError) as caught:
        reader.read_all()
    assert str(caught.value).startswith(
        "Could not read file 'd/x.csv' of channel 'train': record 1 at byte 4"
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=6), st.integers(1, 9), st.booleans())
def test_concat_keeps_rows_in_order(sizes: list[int], size: int, sparse: bool) -> None:
    rng = np.random.default_rng(len(sizes))
    parts = []
    for n in sizes:
        rows = rng.random((n, 4)).astype(np.float32)
        parts.append(Batch(sp.csr_matrix(rows) if sparse else rows, np.arange(n, dtype=np.float32)))
    joined = concat(parts)
    assert joined.n == sum(sizes)
    np.testing.assert_array_equal(joined.dense(), np.vstack([p.dense() for p in parts]))


# --- model files -------------------------------------------------------------------------------


def test_model_files_round_trip_without_pickle(tmp_path: Path) -> None:
    arrays = {"centroids": np.eye(3, dtype=np.float32), "counts": np.arange(3)}
    artifacts.save_model(tmp_path, arrays, {"k": 3, "note": "x"})
    loaded, meta = artifacts.load_model(tmp_path)
    assert meta == {"k": 3, "note": "x"}
    assert set(loaded) == {"centroids", "counts"}
    np.testing.assert_array_equal(loaded["centroids"], arrays["centroids"])
    (tmp_path / "model_algo-1").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="is not an opensage model file"):
        artifacts.load_model(tmp_path)


# --- serving -----------------------------------------------------------------------------------


class SumHandler(inference.BuiltinHandler):
    """Answers each row's sum, and its width with verbose=true."""

    def predict(
        self, features: inference.Features, params: dict[str, str]
    ) -> list[dict[str, float]]:
        rows = inference.dense(features)
        out: list[dict[str, float]] = [{"score": float(row.sum())} for row in rows]
        if params.get("verbose") == "true":
            for row in out:
                row["width"] = float(rows.shape[1])
        return out


def _handler() -> SumHandler:
    return SumHandler(TOY, width=3, environ={})


def test_every_request_shape_gives_the_same_rows() -> None:
    x = np.array([[1, 0, 2], [0, 3, 0]], dtype=np.float32)
    sparse_json = {
        "instances": [
            {"data": {"features": {"keys": [0, 2], "shape": [3], "values": [1, 2]}}},
            {"data": {"features": {"keys": [1], "shape": [3], "values": [3]}}},
        ]
    }
    bodies = [
        (encode_csv(x), CSV),
        (encode_csv(x, np.zeros(2)), "text/csv;label_size=1"),
        (json.dumps({"instances": [{"features": r} for r in x.tolist()]}).encode(), JSON),
        (json.dumps(sparse_json).encode(), JSON),
        (
            json.dumps(
                {"instances": [{"data": {"features": {"values": r}}} for r in x.tolist()]}
            ).encode(),
            JSON,
        ),
        (b"".join(json.dumps({"features": r}).encode() + b"\n" for r in x.tolist()), JSONLINES),
        (encode_dense(x), RECORDIO),
        (encode_sparse(sp.csr_matrix(x)), RECORDIO),
    ]
    for body, content_type in bodies:
        result = _handler().invoke(body, content_type, JSON, None)
        assert json.loads(result.body) == {"predictions": [{"score": 3.0}, {"score": 3.0}]}, (
            content_type
        )


def test_answers_in_every_accept_type() -> None:
    body = encode_csv(np.array([[1, 2, 3]], dtype=np.float32))
    handler = _handler()
    assert handler.invoke(body, CSV, None, None).content_type == JSON
    assert handler.invoke(body, CSV, "*/*", None).content_type == JSON
    assert handler.invoke(body, CSV, "application/*", None).content_type == JSON
    lines = handler.invoke(body, CSV, JSONLINES, None)
    assert lines.body == b'{"score": 6.0}\n'
    verbose = handler.invoke(body, CSV, "application/json; verbose=true", None)
    assert json.loads(verbose.body) == {"predictions": [{"score": 6.0, "width": 3.0}]}
    records = read_record_messages(handler.invoke(body, CSV, RECORDIO, None).body)
    assert [list(r.label["score"].float32_tensor.values) for r in records] == [[6.0]]
    assert handler.invoke(b"", CSV, JSON, None).status == 204


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status"),
    [
        (b"1,2,3\n", "image/png", JSON, 415),
        (b"1,2,3\n", CSV, "text/html", 406),
        (b"1,2\n", CSV, JSON, 400),
        (b"1,x,3\n", CSV, JSON, 400),
        (b'{"instances": 3}', JSON, JSON, 400),
        (b"{not json", JSON, JSON, 400),
        (b"\x0a\xd7\x23\xce", RECORDIO, JSON, 400),
    ],
)
def test_bad_requests_get_the_status_a_client_can_act_on(
    body: bytes, content_type: str, accept: str, status: int
) -> None:
    with pytest.raises(InferenceError) as caught:
        _handler().invoke(body, content_type, accept, None)
    assert caught.value.status_code == status
