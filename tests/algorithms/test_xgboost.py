"""The built-in XGBoost training program, run as the platform runs it: a subprocess on a job tree.

Each end-to-end test writes a temporary `/opt/ml` tree (`MLPaths(tmp_path)`), runs
`python -m opensage.algorithms.xgboost train` with `SAGEMAKER_BASE_DIR` pointing at it, and
compares the saved model with a plain `xgb.train` on the same data, parameters and seed.
Training runs are few and tiny (sklearn toy data sets, a handful of rounds) because each
subprocess pays xgboost's import time.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.metrics import accuracy_score

from opensage.algorithms.xgboost import channels, metrics, train
from opensage.algorithms.xgboost.errors import UserError
from opensage.algorithms.xgboost.hyperparameters import (
    ALIASES,
    BY_NAME,
    HYPERPARAMETERS,
    HyperparameterError,
    Interval,
    validate,
)
from opensage.contract import MLPaths
from opensage.formats.tensors import encode_dense, encode_sparse

Array = np.ndarray[Any, Any]
UNKNOWN = "is not a hyperparameter of the XGBoost algorithm"
ROUND_LINE = re.compile(r"^\[(\d+)\]\t")


@dataclass
class Result:
    """What a finished training process left behind."""

    paths: MLPaths
    returncode: int
    stdout: str
    stderr: str

    @property
    def failure(self) -> str:
        return self.paths.failure_file.read_text() if self.paths.failure_file.exists() else ""

    @property
    def round_lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if ROUND_LINE.match(line)]

    def booster(self) -> xgb.Booster:
        """The model, loaded the plain way (xgboost guesses the format of a bare file name)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return xgb.Booster(model_file=str(self.paths.model / "xgboost-model"))


JobSpec = tuple[dict[str, str], dict[str, str | bytes], dict[str, dict[str, str]] | None]
Job = Callable[..., MLPaths]


def write_job(
    base: Path,
    hyperparameters: dict[str, str],
    files: dict[str, str | bytes],
    config: dict[str, dict[str, str]] | None = None,
) -> MLPaths:
    """Write a job tree under `base`: hyperparameters, channel config and channel files."""
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    channel_names = {name.split("/", 1)[0] for name in files}
    default = {name: {"TrainingInputMode": "File"} for name in channel_names}
    paths.input_data_config_file.write_text(json.dumps(config or default))
    for name, content in files.items():
        target = paths.data / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return paths


@pytest.fixture
def job(tmp_path: Path) -> Job:
    """`job(hyperparameters, files, config)` writes a job tree in this test's folder."""
    return functools.partial(write_job, tmp_path)


class Launch:
    """The program started the way the platform starts it (`... train`, `SAGEMAKER_BASE_DIR`)."""

    def __init__(self, paths: MLPaths, *args: str) -> None:
        self.paths = paths
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opensage.algorithms.xgboost", *(args or ("train",))],
            # One thread: toy data gains nothing from more; spinning OpenMP threads slow a busy CI.
            env={**os.environ, "SAGEMAKER_BASE_DIR": str(paths.base), "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._result: Result | None = None

    def result(self) -> Result:
        if self._result is None:
            stdout, stderr = self.proc.communicate(timeout=120)
            self._result = Result(self.paths, self.proc.returncode, stdout, stderr)
        return self._result


def run_job(paths: MLPaths, *args: str) -> Result:
    return Launch(paths, *args).result()


def csv_text(y: Array, x: Array, weights: Array | None = None) -> str:
    """Headerless CSV, label first (then the weight), full float64 precision."""
    columns = [y, x] if weights is None else [y, weights, x]
    rows = np.column_stack(columns)
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)


def libsvm_text(y: Array, x: Array, weights: Array | None = None) -> str:
    """LIBSVM lines with 0-based indices; zeros left out, as LIBSVM writers do."""
    lines = []
    for i, row in enumerate(x):
        label = repr(float(y[i])) + (f":{float(weights[i])!r}" if weights is not None else "")
        features = " ".join(f"{j}:{float(v)!r}" for j, v in enumerate(row) if v != 0)
        lines.append(f"{label} {features}\n")
    return "".join(lines)


def plain_booster(
    params: dict[str, Any],
    dtrain: xgb.DMatrix,
    rounds: int,
    dvalid: xgb.DMatrix | None = None,
    early_stopping_rounds: int | None = None,
) -> xgb.Booster:
    evals = [(dtrain, "train")] + ([(dvalid, "validation")] if dvalid is not None else [])
    return xgb.train(
        {**params, "seed": 0, "nthread": 1},
        dtrain,
        num_boost_round=rounds,
        evals=evals,
        verbose_eval=False,
        early_stopping_rounds=early_stopping_rounds,
    )


def assert_same_predictions(result: Result, reference: xgb.Booster, data: xgb.DMatrix) -> None:
    np.testing.assert_allclose(result.booster().predict(data), reference.predict(data), rtol=1e-6)


def parse_round_line(line: str) -> dict[str, float]:
    """`[3]\\ttrain-auc:0.9\\t...` -> {"train:auc": 0.9, ...}."""
    fields = line.split("\t")[1:]
    pairs = (field.rsplit(":", 1) for field in fields)
    return {key.replace("-", ":", 1): float(value) for key, value in pairs}


# --- end to end -------------------------------------------------------------------------------
# The four training runs start together (module fixture `started`): each pays about two seconds
# of imports, and overlapping them keeps this file fast.


def csv_early_stopping_job() -> JobSpec:
    x, y = load_breast_cancer(return_X_y=True)
    hps = {
        "num_round": "200",
        "objective": "binary:logistic",
        "eval_metric": "auc,logloss",
        "early_stopping_rounds": "3",
        "eta": "0.5",
        "max_depth": "3",
    }
    config = {
        "train": {"ContentType": "text/csv; label_size=1", "TrainingInputMode": "File"},
        "validation": {"ContentType": "csv", "TrainingInputMode": "File"},
    }
    files: dict[str, str | bytes] = {
        "train/part-0.csv": csv_text(y[:300], x[:300]),
        "train/part-1.csv": csv_text(y[300:450], x[300:450]),
        "validation/data.csv": csv_text(y[450:], x[450:]),
    }
    return hps, files, config


def libsvm_default_job() -> JobSpec:
    x, y = load_diabetes(return_X_y=True)
    half = len(y) // 2
    files: dict[str, str | bytes] = {
        "train/a.libsvm": libsvm_text(y[:half], x[:half]),
        "train/deeper/b.libsvm.gz": gzip.compress(libsvm_text(y[half:], x[half:]).encode()),
        "train/.hidden": "not data",
        "train/_SUCCESS": "not data",
    }
    config = {"train": {"TrainingInputMode": "File"}}  # no ContentType: libsvm
    return {"num_round": "4", "max_depth": "3"}, files, config


def libsvm_weights_job() -> JobSpec:
    x, y = load_breast_cancer(return_X_y=True)
    files: dict[str, str | bytes] = {
        "train/data": libsvm_text(y[:400], x[:400], cancer_weights(y)[:400]),
        "validation/data": libsvm_text(y[400:], x[400:]),
    }
    config = {"train": {"ContentType": "text/x-libsvm"}, "validation": {}}
    return {"num_round": "3", "objective": "binary:logistic"}, files, config


def cancer_weights(y: Array) -> Array:
    return np.where(y == 1, 2.0, 0.5)


def multiclass_job() -> JobSpec:
    x, y = load_iris(return_X_y=True)
    hps = {
        "num_round": "3",
        "objective": "multi:softprob",
        "num_class": "3",
        "csv_weights": "1",
        "eval_metric": "mlogloss,accuracy",
    }
    files: dict[str, str | bytes] = {"train/iris.csv": csv_text(y, x, iris_weights(y))}
    return hps, files, {"train": {"ContentType": "text/csv"}}


def iris_weights(y: Array) -> Array:
    return np.linspace(0.5, 1.5, len(y))


def recordio_job() -> JobSpec:
    """What `Estimator.record_set` writes: RecordIO-protobuf shards (here one dense, one gzip,
    one sparse), labels as float32 and no content type on the channel... except that XGBoost's
    default is libsvm, so the type is named."""
    x, y = load_breast_cancer(return_X_y=True)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    files: dict[str, str | bytes] = {
        "train/shard-0": encode_dense(x32[:200], y32[:200]),
        "train/shard-1.gz": gzip.compress(encode_dense(x32[200:400], y32[200:400])),
        "train/shard-2": encode_sparse(sp.csr_matrix(x32[400:])[:, :20], y32[400:]),
    }
    config = {"train": {"ContentType": "application/x-recordio-protobuf"}}
    return {"num_round": "3", "objective": "binary:logistic"}, files, config


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Launch]]:
    specs = {
        "csv": csv_early_stopping_job(),
        "libsvm": libsvm_default_job(),
        "libsvm_weights": libsvm_weights_job(),
        "multiclass": multiclass_job(),
        "recordio": recordio_job(),
    }
    launches = {
        name: Launch(write_job(tmp_path_factory.mktemp(name), *spec))
        for name, spec in specs.items()
    }
    yield launches
    for launch in launches.values():
        launch.result()  # reap every process, even those of deselected tests


def test_csv_with_validation_stops_early_and_matches_plain_xgboost(
    started: dict[str, Launch],
) -> None:
    result = started["csv"].result()
    x, y = load_breast_cancer(return_X_y=True)

    assert result.returncode == 0, result.stderr
    assert not result.failure
    params = {"objective": "binary:logistic", "eval_metric": ["auc", "logloss"], "eta": 0.5}
    dtrain = xgb.DMatrix(x[:450], label=y[:450])
    dvalid = xgb.DMatrix(x[450:], label=y[450:])
    reference = plain_booster({**params, "max_depth": 3}, dtrain, 200, dvalid, 3)
    booster = result.booster()
    assert booster.num_boosted_rounds() == reference.num_boosted_rounds() < 200
    assert len(result.round_lines) == booster.num_boosted_rounds()
    assert_same_predictions(result, reference, dvalid)
    assert_log_lines_match_regexes(result.round_lines)


def assert_log_lines_match_regexes(lines: Sequence[str]) -> None:
    """The platform's view: tabs rendered as `#011`, values scraped by the definitions."""
    definitions = {d["Name"]: re.compile(d["Regex"]) for d in metrics.metric_definitions()}
    for line in lines:
        assert ROUND_LINE.match(line)
        expected = parse_round_line(line)
        assert set(expected) == {
            "train:auc",
            "train:logloss",
            "validation:auc",
            "validation:logloss",
        }
        rendered = line.replace("\t", "#011")
        for name, value in expected.items():
            match = definitions[name].match(rendered)
            assert match is not None, (name, rendered)
            assert float(match.group(1)) == value


def test_libsvm_is_the_default_and_reads_every_file(started: dict[str, Launch]) -> None:
    result = started["libsvm"].result()
    x, y = load_diabetes(return_X_y=True)

    assert result.returncode == 0, result.stderr
    dtrain = xgb.DMatrix(sp.csr_matrix(x), label=y)
    reference = plain_booster({"max_depth": 3}, dtrain, 4)
    assert_same_predictions(result, reference, dtrain)
    assert [parse_round_line(line).keys() for line in result.round_lines] == [{"train:rmse"}] * 4


def test_libsvm_weights_with_validation(started: dict[str, Launch]) -> None:
    result = started["libsvm_weights"].result()
    x, y = load_breast_cancer(return_X_y=True)
    weights = cancer_weights(y)

    assert result.returncode == 0, result.stderr
    dtrain = xgb.DMatrix(sp.csr_matrix(x[:400]), label=y[:400], weight=weights[:400])
    reference = plain_booster({"objective": "binary:logistic"}, dtrain, 3)
    assert_same_predictions(result, reference, xgb.DMatrix(sp.csr_matrix(x[400:])))
    assert all("validation-logloss:" in line for line in result.round_lines)


def test_multiclass_csv_with_weights_and_container_metrics(started: dict[str, Launch]) -> None:
    result = started["multiclass"].result()
    x, y = load_iris(return_X_y=True)
    weights = iris_weights(y)

    assert result.returncode == 0, result.stderr
    dtrain = xgb.DMatrix(x, label=y, weight=weights)
    params = {"objective": "multi:softprob", "num_class": 3, "eval_metric": "mlogloss"}
    reference = plain_booster(params, dtrain, 3)
    assert_same_predictions(result, reference, dtrain)
    predicted = reference.predict(dtrain).argmax(axis=1)
    logged = parse_round_line(result.round_lines[-1])
    expected = accuracy_score(y, predicted, sample_weight=weights)
    assert logged["train:accuracy"] == pytest.approx(expected, abs=1e-5)


# --- failures ---------------------------------------------------------------------------------


def test_multiclass_needs_num_class(job: Job) -> None:
    x, y = load_iris(return_X_y=True)
    hps = {"num_round": "3", "objective": "multi:softmax"}
    config = {"train": {"ContentType": "csv"}}
    result = run_job(job(hps, {"train/iris.csv": csv_text(y, x)}, config))

    assert result.returncode == 1
    assert result.failure.startswith("ClientError: Hyperparameter 'objective'")
    assert "num_class" in result.failure
    assert result.failure in result.stderr
    assert not (result.paths.model / "xgboost-model").exists()


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"num_round": "3", "eta": "2"}, "Hyperparameter 'eta': value '2' is not in [0, 1]"),
        ({"eta": "0.1"}, "Hyperparameter 'num_round' is required"),
        ({"num_round": "0"}, "Hyperparameter 'num_round': value '0' is not in [1, inf)"),
        ({"num_round": "ten"}, "Hyperparameter 'num_round': value 'ten' is not an integer"),
        ({"num_round": "3", "subsample": "0"}, "Hyperparameter 'subsample'"),
        ({"num_round": "3", "num_class": "3"}, "Hyperparameter 'num_class'"),
        ({"num_round": "3", "eval_metric": "auc"}, "Hyperparameter 'eval_metric'"),
        ({"num_round": "3", "objective": "reg:nope"}, "Hyperparameter 'objective'"),
        ({"num_round": "3", "max_dept": "3"}, "Hyperparameter 'max_dept' is not a hyper"),
        ({"num_round": "3", "early_stopping_rounds": "2"}, "Hyperparameter 'early_stopping_"),
        ({"num_round": "3", "_kfold": "3"}, "Hyperparameter '_kfold'"),
    ],
)
def test_bad_hyperparameters_fail_with_a_reason(
    job: Job, hyperparameters: dict[str, str], message: str
) -> None:
    result = run_job(job(hyperparameters, {"train/data.csv": "1,2\n"}, {"train": {}}))

    assert result.returncode == 1
    assert result.failure.startswith(f"ClientError: {message}")
    assert "Traceback" not in result.stderr


def test_missing_train_channel_fails_clearly(job: Job) -> None:
    result = run_job(job({"num_round": "3"}, {"validation/data.csv": "1,2\n"}))

    assert result.returncode == 1
    assert result.failure.startswith("ClientError: Channel 'train' is required")


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"ContentType": "application/x-parquet"}, "not supported yet"),
        ({"ContentType": "text/csv;label_size=2"}, "label_size must be 1"),
        ({"ContentType": "application/json"}, "not accepted"),
    ],
)
def test_unsupported_channels_fail_clearly(job: Job, channel: dict[str, str], message: str) -> None:
    result = run_job(job({"num_round": "3"}, {"train/data": "1,2\n"}, {"train": channel}))

    assert result.returncode == 1
    assert result.failure.startswith("ClientError: ")
    assert message in result.failure


def test_usage_error_for_other_arguments(job: Job) -> None:
    result = run_job(job({"num_round": "3"}, {"train/data.csv": "1,2\n"}), "serve")

    assert result.returncode == 2
    assert "usage" in result.stderr
    assert not result.failure


def test_unreadable_csv_names_the_file(job: Job) -> None:
    config = {"train": {"ContentType": "text/csv"}}
    paths = job({"num_round": "3"}, {"train/sub/data.csv": "label,x\n1,2\n"}, config)

    assert train.run(paths) == 1
    failure = paths.failure_file.read_text()
    assert failure.startswith("ClientError: Could not read file 'sub/data.csv' of channel 'train'")


def test_empty_channel_fails_clearly(job: Job) -> None:
    paths = job({"num_round": "3"}, {"train/.keep": ""}, {"train": {"ContentType": "csv"}})

    assert train.run(paths) == 1
    assert paths.failure_file.read_text().startswith("ClientError: No data in channel 'train'")


def test_unexpected_errors_become_algorithm_errors(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opensage.algorithms.xgboost import data

    def explode(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(data, "load", explode)
    paths = job({"num_round": "3"}, {"train/data.csv": "1,2\n"}, {"train": {"ContentType": "csv"}})

    assert train.run(paths) == 1
    failure = paths.failure_file.read_text()
    assert failure.startswith("AlgorithmError: RuntimeError: disk on fire (at test_xgboost.py:")


def test_recordio_protobuf_dense_sparse_and_gzip_shards(started: dict[str, Launch]) -> None:
    result = started["recordio"].result()
    x, y = load_breast_cancer(return_X_y=True)
    x32 = x.astype(np.float32)
    x32[400:, 20:] = 0  # the sparse shard holds the first 20 features only
    features = sp.csr_matrix(x32)  # zeros absent, as in the sparse shard

    assert result.returncode == 0, result.stderr
    dtrain = xgb.DMatrix(features, label=y.astype(np.float32))
    reference = plain_booster({"objective": "binary:logistic"}, dtrain, 3)
    assert_same_predictions(result, reference, xgb.DMatrix(x32))


def _corrupt(data: bytes, at: int, patch: bytes) -> bytes:
    return data[:at] + patch + data[at + len(patch) :]


def _recordio_cases() -> list[tuple[str, bytes, str]]:
    rows = encode_dense(np.ones((3, 4), np.float32), np.zeros(3, np.float32))
    size = len(rows) // 3
    return [
        ("truncated frame", rows[:-5], f"record 2 at byte {2 * size}"),
        ("bad magic", _corrupt(rows, size, b"\x00\x00\x00\x00"), f"record 1 at byte {size}"),
        ("garbage payload", _corrupt(rows, 2 * size + 8, b"\xff\xff\xff"), "record 2"),
    ]


@pytest.mark.parametrize(("case", "content", "where"), _recordio_cases())
def test_malformed_recordio_names_channel_file_and_record(
    job: Job, case: str, content: bytes, where: str
) -> None:
    config = {"train": {"ContentType": "application/x-recordio-protobuf"}}
    result = run_job(job({"num_round": "2"}, {"train/part/shard-0": content}, config))

    assert result.returncode == 1, case
    assert result.failure.startswith(
        "ClientError: Could not read file 'part/shard-0' of channel 'train': " + where
    ), result.failure
    assert "Traceback" not in result.stderr


def test_unlabelled_recordio_fails_clearly(job: Job) -> None:
    config = {"train": {"ContentType": "application/x-recordio-protobuf"}}
    content = encode_dense(np.ones((3, 4), np.float32))
    result = run_job(job({"num_round": "2"}, {"train/shard": content}, config))

    assert result.returncode == 1
    assert "have no label" in result.failure


# --- metric definitions -----------------------------------------------------------------------


def test_metric_definitions_cover_both_channels_and_all_metrics() -> None:
    names = {d["Name"] for d in metrics.metric_definitions()}
    for metric in ("rmse", "logloss", "error", "auc", "aucpr", "merror", "mlogloss", "mae"):
        assert {f"train:{metric}", f"validation:{metric}"} <= names
    for metric in ("mape", "ndcg", "map", "accuracy", "f1", "mse", "r2"):
        assert f"validation:{metric}" in names
    objectives = metrics.tunable_objectives()
    assert objectives["validation:auc"] == "Maximize"
    assert objectives["validation:rmse"] == "Minimize"
    assert objectives["validation:f1"] == "Maximize"
    assert set(objectives) == {name for name in names if name.startswith("validation:")}


def test_metric_regex_reads_rendered_tabs_and_exponents() -> None:
    line = "[12]\ttrain-rmse:1.5e-05\tvalidation-rmse:0.45000\tvalidation-rmsle:-2"
    rendered = line.replace("\t", "#011")
    values = {
        name: re.match(metrics.metric_regex(*name.split(":")), rendered)
        for name in ("train:rmse", "validation:rmse", "validation:rmsle", "validation:mae")
    }
    assert values["validation:mae"] is None
    found = {name: float(m.group(1)) for name, m in values.items() if m is not None}
    assert found == {"train:rmse": 1.5e-05, "validation:rmse": 0.45, "validation:rmsle": -2.0}


# --- hyperparameter parsing -------------------------------------------------------------------


def test_validate_types_aliases_and_reserved_keys() -> None:
    values = validate(
        {
            "num_round": "10.0",
            "learning_rate": "0.1",
            "eval_metric": '["auc", "error@0.7"]',
            "objective": "binary:logistic",
            "save_model_on_termination": "True",
            "monotone_constraints": "[1, -1]",
            "sagemaker_program": '"train.py"',
            "_tuning_objective_metric": "validation:auc",
        }
    )
    assert values["num_round"] == 10
    assert values["eta"] == 0.1
    assert values["eval_metric"] == ("auc", "error@0.7")
    assert values["save_model_on_termination"] is True
    assert values["monotone_constraints"] == "(1,-1)"
    assert "sagemaker_program" not in values


def test_alias_and_name_together_is_an_error() -> None:
    with pytest.raises(HyperparameterError, match=r"^Hyperparameter 'eta' is given twice"):
        validate({"num_round": "1", "eta": "0.1", "learning_rate": "0.2"})


def test_interval_rendering() -> None:
    assert str(Interval(0, 1)) == "[0, 1]"
    assert str(Interval(0, 1, low_open=True)) == "(0, 1]"
    assert str(Interval(1)) == "[1, inf)"
    assert 0.5 in Interval(0, 1)
    assert 0 not in Interval(0, 1, low_open=True)


def test_table_is_consistent() -> None:
    assert len(BY_NAME) == len(HYPERPARAMETERS)
    assert [hp.name for hp in HYPERPARAMETERS if hp.required] == ["num_round"]
    for hp in HYPERPARAMETERS:
        assert hp.kind.api_type in {"Integer", "Continuous", "Categorical", "FreeText"}
        if hp.default is not None and hp.kind.api_type != "FreeText":
            validate({"num_round": "1", hp.name: hp.default})


VALUES = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["true", "False", "auc,logloss", "[[0,1]]", "(1,-1)", "multi:softmax"]),
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(BY_NAME)), text=VALUES)
def test_any_value_is_accepted_or_refused_naming_the_hyperparameter(name: str, text: str) -> None:
    refusal = refusal_of({"num_round": "1", name: text})
    assert refusal is None or refusal.startswith(f"Hyperparameter '{name}'")


@settings(max_examples=100, deadline=None)
@given(key=st.text(min_size=1, max_size=20))
def test_unknown_names_are_refused_by_name(key: str) -> None:
    known = key in BY_NAME or key in ALIASES or key.startswith("sagemaker_")
    refusal = refusal_of({"num_round": "1", key: "1"})
    if not known:
        assert refusal == f"Hyperparameter '{key}' {UNKNOWN}"


def refusal_of(raw: dict[str, str]) -> str | None:
    """The validator's message, or None when it accepts `raw`."""
    try:
        validate(raw)
    except HyperparameterError as exc:
        return str(exc)
    return None


# --- channels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, "libsvm"),
        ("", "libsvm"),
        ("csv", "csv"),
        ("text/csv", "csv"),
        ("Text/CSV ; label_size = 1 ; charset=utf8", "csv"),
        ('text/csv;label_size="1"', "csv"),
        ("libsvm", "libsvm"),
        ("text/libsvm", "libsvm"),
        ("text/x-libsvm; charset=utf-8", "libsvm"),
    ],
)
def test_content_types(content_type: str | None, expected: str) -> None:
    assert channels.parse_content_type(content_type) == expected


def test_bad_content_types_are_user_errors() -> None:
    for content_type in ("text/csv;label_size=0", "parquet", "image/png"):
        with pytest.raises(UserError):
            channels.parse_content_type(content_type)


def test_data_files_skip_hidden_and_stop_at_depth_three(tmp_path: Path) -> None:
    for name in ("a", ".b", "_c", "d/e", "d/.f/g", "1/2/3/h", "1/2/3/4/i", "empty"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("" if name == "empty" else "x")
    found = [str(p.relative_to(tmp_path)) for p in channels.data_files(tmp_path)]
    assert found == ["1/2/3/h", "a", "d/e"]


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ("1,2,3\n0,abc,4\n", "record 1 at byte 6", "abc"),
        ("1,2,3\n0,1,2\n1,2,x3\n", "record 2 at byte 12", "x3"),
        ("1,2,3\n0,1,2\n1,2,3,4\n", "record 2 at byte 12", "expected 3 columns, found 4"),
    ],
)
def test_malformed_csv_names_channel_file_and_record(
    job: Job, content: str, where: str, what: str
) -> None:
    """(Short rows are not malformed for XGBoost: their missing cells are missing values.)"""
    result = run_job(job({"num_round": "2"}, {"train/data.csv": content},
                         {"train": {"ContentType": "text/csv"}}))  # fmt: skip

    assert result.returncode == 1
    assert result.failure.startswith(
        "ClientError: Could not read file 'data.csv' of channel 'train'"
    )
    assert where in result.failure
    assert what in result.failure
