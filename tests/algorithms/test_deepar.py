"""DeepAR: the frequency lags and date features, each likelihood against scipy.stats, the test
metrics against hand computations, scaling and NaN masking, time_freq and record checks, the
serving rules, determinism, and the quality bar: on a generated daily panel (weekly season,
trend, noise, categories shifting the level) DeepAR's mean wQuantileLoss clearly beats the
seasonal-naive forecast's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")

from opensage.algorithms.base import UserError  # noqa: E402
from opensage.algorithms.deepar.data import (  # noqa: E402
    Layout,
    check_record,
    date_features,
    frequency_lags,
    parse_record,
    read_channel,
    resolve_layout,
)
from opensage.algorithms.deepar.evaluation import (  # noqa: E402
    rmse,
    score,
    seasonal_naive,
    weighted_quantile_loss,
)
from opensage.algorithms.deepar.likelihood import output  # noqa: E402
from opensage.algorithms.deepar.model import Architecture, DeepARModel, DeepARNet, batch  # noqa: E402
from opensage.algorithms.deepar.serve import DeepARHandler, load, read_configuration  # noqa: E402
from opensage.algorithms.deepar.spec import (  # noqa: E402
    SPEC,
    Frequency,
    parse_cardinality,
    parse_dynamic_feat,
    parse_frequency,
)
from opensage.algorithms.deepar.train import train  # noqa: E402
from opensage.algorithms.runner import run  # noqa: E402
from opensage.contract import MLPaths  # noqa: E402
from opensage.serving.errors import InferenceError  # noqa: E402

JSON = "application/json"
JSONLINES = "application/jsonlines"
HORIZON = 7
SEASON = 7

# --- lags, date features, time_freq -----------------------------------------------------------


def test_time_freq_grammar() -> None:
    assert parse_frequency("D") == Frequency(1, "D")
    assert parse_frequency("5min") == Frequency(5, "min")
    assert parse_frequency("2H") == Frequency(2, "H")
    assert parse_frequency("M") == Frequency(1, "M")
    for bad in ("", "0D", "3X", "min5", "1.5H", "d"):
        with pytest.raises(ValueError, match="not a frequency"):
            parse_frequency(bad)


def test_cardinality_and_dynamic_feat_forms() -> None:
    assert parse_cardinality("auto") == "auto"
    assert parse_cardinality("") == "ignore"
    assert parse_cardinality("[2, 3]") == (2, 3)
    assert parse_cardinality("2,3") == (2, 3)
    assert parse_dynamic_feat("ignore") == "ignore"
    assert parse_dynamic_feat("2") == 2
    with pytest.raises(ValueError, match="positive integers"):
        parse_cardinality("[0]")
    with pytest.raises(ValueError, match="non-negative integer"):
        parse_dynamic_feat("-1")


@pytest.mark.parametrize(
    ("freq", "present", "absent"),
    [
        ("D", [1, 7, 8, 14, 21, 28, 30, 60, 364, 365, 1092], [10, 40]),
        ("H", [1, 7, 24, 48, 168, 336], [100]),
        ("5min", [1, 12, 24, 36, 288], [100]),
        ("W", [1, 4, 8, 12, 51, 52, 53, 104, 156], [20]),
        ("M", [1, 7, 11, 12, 13, 24, 36], [18]),
        ("2H", [1, 12, 84, 168], [100]),
    ],
)
def test_lags_follow_the_frequency(freq: str, present: list[int], absent: list[int]) -> None:
    lags = frequency_lags(parse_frequency(freq))
    assert lags[:7] == list(range(1, 8))
    assert lags == sorted(set(lags))
    assert max(lags) <= 1200
    for lag in present:
        assert lag in lags, (freq, lag)
    for lag in absent:
        assert lag not in lags, (freq, lag)


def test_date_features_per_frequency() -> None:
    monday = np.datetime64("2021-01-04T00:00", "m")
    daily = date_features(monday, Frequency(1, "D"), 7)
    assert daily.shape == (7, 3)
    np.testing.assert_allclose(daily[:, 0], np.arange(7) / 6 - 0.5, atol=1e-6)  # day of week
    np.testing.assert_allclose(daily[0, 1], 3 / 30 - 0.5, atol=1e-6)  # the 4th of the month
    hourly = date_features(monday, Frequency(1, "H"), 24)
    assert hourly.shape == (24, 4)
    np.testing.assert_allclose(hourly[:, 0], np.arange(24) / 23 - 0.5, atol=1e-6)
    minutes = date_features(monday, Frequency(15, "min"), 4)
    assert minutes.shape == (4, 5)
    np.testing.assert_allclose(minutes[:, 0], np.array([0, 15, 30, 45]) / 59 - 0.5, atol=1e-6)
    monthly = date_features(monday, Frequency(1, "M"), 12)
    assert monthly.shape == (12, 1)
    np.testing.assert_allclose(monthly[:, 0], np.arange(12) / 11 - 0.5, atol=1e-6)
    assert date_features(monday, Frequency(1, "W"), 3).shape == (3, 2)
    assert np.abs(daily).max() <= 0.5


# --- likelihoods ------------------------------------------------------------------------------


def _raw(*columns: list[float]) -> Any:
    return torch.tensor(np.array(columns, dtype=np.float64).T)


def test_each_likelihood_matches_scipy() -> None:
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    scale = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    s = scale.numpy()
    a, b, c = [0.3, -0.2, 1.1], [0.5, -1.0, 0.2], [0.1, 2.0, -0.4]
    y = np.array([0.7, -1.5, 6.0])

    got = output("gaussian", _raw(a, b), scale).log_prob(torch.tensor(y)).numpy()
    want = stats.norm.logpdf(y, np.array(a) * s, softplus(np.array(b)) * s)
    np.testing.assert_allclose(got, want, rtol=1e-5)

    got = output("student-T", _raw(a, b, c), scale).log_prob(torch.tensor(y)).numpy()
    df = 2 + softplus(np.array(c))
    want = stats.t.logpdf(y, df, np.array(a) * s, softplus(np.array(b)) * s)
    np.testing.assert_allclose(got, want, rtol=1e-5)

    counts = np.array([0.0, 3.0, 11.0])
    got = output("negative-binomial", _raw(a, b), scale).log_prob(torch.tensor(counts)).numpy()
    mu = softplus(np.array(a)) * s
    alpha = softplus(np.array(b)) / np.sqrt(s)
    want = stats.nbinom.logpmf(counts, 1 / alpha, 1 / (1 + mu * alpha))
    np.testing.assert_allclose(got, want, rtol=1e-5)

    unit = np.array([0.2, 0.5, 0.9])
    got = output("beta", _raw(a, b), scale).log_prob(torch.tensor(unit)).numpy()
    want = stats.beta.logpdf(unit, softplus(np.array(a)), softplus(np.array(b)))
    np.testing.assert_allclose(got, want, rtol=1e-5)

    point = output("deterministic-L1", _raw(a), scale)
    np.testing.assert_allclose(point.log_prob(torch.tensor(y)).numpy(), -np.abs(y / s - a))
    np.testing.assert_allclose(point.sample().numpy(), np.array(a) * s)


# --- metrics ----------------------------------------------------------------------------------


def test_weighted_quantile_loss_and_rmse_by_hand() -> None:
    truth = np.array([[1.0, 2.0, np.nan], [4.0, 0.0, 3.0]])
    forecast = np.array([[2.0, 2.0, 9.0], [3.0, 1.0, 3.0]])
    # pinball at 0.9: y=1,q=2 -> 0.1*1; y=2,q=2 -> 0; y=4,q=3 -> 0.9*1; y=0,q=1 -> 0.1*1; y=3 -> 0
    assert weighted_quantile_loss(truth, forecast, 0.9) == pytest.approx(2 * 1.1 / 10)
    assert weighted_quantile_loss(truth, forecast, 0.5) == pytest.approx(2 * 1.5 / 10)
    assert rmse(truth, forecast) == pytest.approx(np.sqrt(3 / 5))
    samples = np.repeat(forecast[:, None, :], 4, axis=1)
    scores = score(truth, samples, [0.5, 0.9])
    assert scores.rmse == pytest.approx(np.sqrt(3 / 5))
    assert scores.mean_weighted_quantile_loss == pytest.approx((0.3 + 0.22) / 2)


def test_seasonal_naive_repeats_the_last_season() -> None:
    history = [np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])]
    np.testing.assert_array_equal(seasonal_naive(history, 3, 5), [[8, 9, 10, 8, 9]])


# --- scaling and masking ----------------------------------------------------------------------


def _arch(**changes: Any) -> Architecture:
    settings: dict[str, Any] = {
        "freq": "D",
        "context_length": 4,
        "prediction_length": 2,
        "lags": (1, 2, 3),
        "num_cells": 4,
        "num_layers": 1,
        **changes,
    }
    return Architecture(**settings)


def test_scale_is_the_mean_absolute_observed_context() -> None:
    arch = _arch()
    record = parse_record({"start": "2021-01-01", "target": [5, -3, "NaN", 1, 100, 100]})
    net = DeepARNet(arch)
    windows = batch(arch, [(record, 6)])
    # the window's context is the first 4 of its 6 steps: 5, -3, NaN, 1
    assert float(net.scale(torch.from_numpy(windows.past))[0]) == pytest.approx(3.0)
    silent = parse_record({"start": "2021-01-01", "target": [0, "NaN", 0, 0, 7, 7]})
    assert float(net.scale(torch.from_numpy(batch(arch, [(silent, 6)]).past))[0]) == 1.0
    beta = DeepARNet(_arch(likelihood="beta"))
    assert float(beta.scale(torch.from_numpy(windows.past))[0]) == 1.0


def test_missing_targets_are_left_out_of_the_loss() -> None:
    torch.manual_seed(0)
    arch = _arch()
    net = DeepARNet(arch).eval()
    torch.set_grad_enabled(False)
    try:
        _check_masking(net, arch)
    finally:
        torch.set_grad_enabled(True)


def _check_masking(net: Any, arch: Architecture) -> None:
    full = parse_record({"start": "2021-01-01", "target": [1.0, 2, 3, 4, 5, 6, 7, 8]})
    gappy = parse_record({"start": "2021-01-01", "target": [1.0, 2, 3, 4, 5, None, 7, "NaN"]})
    total, count = net.loss(batch(arch, [(full, 8)]))
    gap_total, gap_count = net.loss(batch(arch, [(gappy, 8)]))
    assert int(count) == 6
    assert int(gap_count) == 4
    assert torch.isfinite(gap_total)
    # the gap at the window's last step changes no input: dropping it drops exactly its term
    late = parse_record({"start": "2021-01-01", "target": [1.0, 2, 3, 4, 5, 6, 7, None]})
    out, target, _ = net(*batch(arch, [(full, 8)]).tensors(torch.device("cpu")))
    last = -out.log_prob(target)[0, -1]
    late_total, _ = net.loss(batch(arch, [(late, 8)]))
    assert float(late_total) == pytest.approx(float(total - last), rel=1e-5)


# --- records ----------------------------------------------------------------------------------


def _write(folder: Path, name: str, lines: list[Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return folder


GOOD = {"start": "2021-01-01 00:00:00", "target": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"start": "2021-13-45", "target": [1.0]}, "'start'"),
        ({"start": "2021-01-01", "target": [1.0, "x"]}, "'target'"),
        ({"target": [1.0]}, "'start' and 'target'"),
        ("{not json", "not a JSON object"),
        ({"start": "2021-01-01", "target": [1.0], "cat": [-1]}, "negative category"),
    ],
)
def test_a_bad_record_names_its_file_and_line(tmp_path: Path, bad: Any, says: str) -> None:
    folder = _write(tmp_path / "train", "part.json", [GOOD, bad])
    with pytest.raises(UserError, match=r"file part\.json, line 2") as caught:
        read_channel("train", folder, JSONLINES)
    assert says in str(caught.value)


def test_dot_files_and_success_markers_are_skipped(tmp_path: Path) -> None:
    folder = _write(tmp_path / "train", "a.json", [GOOD, GOOD])
    (folder / "_SUCCESS").write_text("")
    (folder / ".hidden.json").write_text("garbage\n")
    assert len(read_channel("train", folder, JSONLINES)) == 2


def test_parquet_without_pyarrow_says_so(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("pyarrow") is not None:
        pytest.skip("pyarrow is installed here")
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "data.parquet").write_bytes(b"PAR1" + b"\0" * 10 + b"PAR1")
    with pytest.raises(UserError, match="Parquet needs pyarrow, not installed"):
        read_channel("train", folder, JSONLINES)


def test_layout_checks_name_the_record(tmp_path: Path) -> None:
    lines = [
        {**GOOD, "cat": [0, 1], "dynamic_feat": [[0.0, 0.0, 0.0]]},
        {**GOOD, "cat": [1], "dynamic_feat": [[0.0, 0.0, 0.0]]},
    ]
    series = read_channel("train", _write(tmp_path / "a", "x.json", lines), JSONLINES)
    with pytest.raises(UserError, match="line 2: 'cat' has 1 values"):
        resolve_layout(series, "auto", "auto")
    lines[1] = {**GOOD, "cat": [0, 5], "dynamic_feat": [[0.0, 0.0]]}
    series = read_channel("train", _write(tmp_path / "b", "x.json", lines), JSONLINES)
    with pytest.raises(UserError, match=r"line 2: cat\[1\] is 5, not below its cardinality 2"):
        resolve_layout(series, (3, 2), "ignore")
    with pytest.raises(UserError, match="line 2: each 'dynamic_feat' array has 2 values"):
        resolve_layout(series, "ignore", "auto")
    assert resolve_layout(series, "auto", "ignore") == Layout((1, 6), 0)
    with pytest.raises(UserError, match="plus prediction_length 4"):
        check_record(series[0], Layout((), 1), 4)


# --- training, serving, quality ---------------------------------------------------------------


def panel(n: int, length: int, seed: int) -> list[dict[str, Any]]:
    """Daily series: a weekly season, a trend, noise, and a level set by the category."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    records = []
    for i in range(n):
        group = i % 4
        y = 20 + 10 * group + 0.1 * t + 5 * np.sin(2 * np.pi * t / SEASON + i % 7)
        y = y + rng.normal(0, 1.0, length)
        target = [round(float(v), 3) for v in y]
        records.append({"start": "2021-03-01 00:00:00", "target": target, "cat": [group]})
    return records


def train_in_process(
    base: Path, records: list[dict[str, Any]], **changes: str
) -> tuple[int, MLPaths]:
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    hyperparameters = {
        "time_freq": "D",
        "context_length": "14",
        "prediction_length": str(HORIZON),
        "epochs": "30",
        "num_cells": "20",
        "num_layers": "1",
        "mini_batch_size": "32",
        "learning_rate": "0.01",
        **changes,
    }
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1"}))
    _write(paths.channel("train"), "train.json", records)
    paths.input_data_config_file.write_text(json.dumps({"train": {"ContentType": JSONLINES}}))
    return run(SPEC, train, paths), paths


@pytest.fixture(scope="module")
def panel_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    records = panel(40, 120 + HORIZON, 1)
    history = [{**r, "target": r["target"][:-HORIZON]} for r in records]
    code, paths = train_in_process(tmp_path_factory.mktemp("deepar"), history)
    assert code == 0, paths.failure_file.read_text() if paths.failure_file.exists() else ""
    return paths.model, records


def test_deepar_beats_seasonal_naive(panel_model: tuple[Path, list[dict[str, Any]]]) -> None:
    model_dir, records = panel_model
    model = DeepARModel.load(model_dir)
    history = [parse_record({**r, "target": r["target"][:-HORIZON]}) for r in records]
    truth = np.array([r["target"][-HORIZON:] for r in records])
    levels = [0.1, 0.5, 0.9]
    ours = score(truth, model.forecast(history, 100), levels)
    naive = seasonal_naive([s.target for s in history], SEASON, HORIZON)
    baseline = score(truth, naive[:, None, :], levels)
    assert ours.mean_weighted_quantile_loss < 0.8 * baseline.mean_weighted_quantile_loss


def test_forecasts_are_deterministic_per_seed(
    panel_model: tuple[Path, list[dict[str, Any]]],
) -> None:
    model_dir, records = panel_model
    model = DeepARModel.load(model_dir)
    history = [parse_record(r) for r in records[:3]]
    first = model.forecast(history, 20, seed=3)
    np.testing.assert_array_equal(first, model.forecast(history, 20, seed=3))
    assert not np.array_equal(first, model.forecast(history, 20, seed=4))
    assert first.shape == (3, 20, HORIZON)


def _invoke(handler: DeepARHandler, document: Any, content_type: str = JSON) -> Any:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    result = handler.invoke(body, content_type, JSON, None)
    assert result.status == 200, result.body
    return json.loads(result.body)["predictions"]


def test_serving_rules(panel_model: tuple[Path, list[dict[str, Any]]]) -> None:
    model_dir, records = panel_model
    handler = load(model_dir, {})
    instance = {"start": records[0]["start"], "target": records[0]["target"], "cat": [0]}
    answer = _invoke(handler, {"instances": [instance]})
    assert list(answer[0]) == ["mean", "quantiles"]
    assert list(answer[0]["quantiles"]) == [f"0.{i}" for i in range(1, 10)]
    config = {"num_samples": 3, "output_types": ["samples", "mean"], "quantiles": [0.5]}
    answer = _invoke(handler, {"instances": [instance], "configuration": config})
    assert list(answer[0]) == ["samples", "mean"]
    np.testing.assert_allclose(np.mean(answer[0]["samples"], axis=0), answer[0]["mean"], 1e-5)
    for document, says in (
        ({"instances": [{**instance, "cat": None}]}, "'cat' must hold 1"),
        ({"instances": [{**instance, "cat": [4]}]}, "not below its cardinality 4"),
        ({"instances": [instance], "configuration": {"output_types": ["median"]}}, "output_types"),
        ({"instances": [instance], "configuration": {"quantiles": ["1.5"]}}, "quantile"),
        ({"instances": [instance], "configuration": {"num_samples": 0}}, "num_samples"),
        ({"instances": [{"target": [1.0]}]}, "'start' and 'target'"),
        ({"records": []}, "instances"),
    ):
        with pytest.raises(InferenceError, match=says) as caught:
            handler.invoke(json.dumps(document).encode(), JSON, JSON, None)
        assert caught.value.status_code == 400
    configured = load(model_dir, {"DEEPAR_INFERENCE_CONFIG": json.dumps(config)})
    lines = configured.invoke(json.dumps(instance).encode() + b"\n", JSONLINES, JSONLINES, None)
    assert list(json.loads(lines.body.splitlines()[0])) == ["samples", "mean"]
    with pytest.raises(ValueError, match="DEEPAR_INFERENCE_CONFIG"):
        load(model_dir, {"DEEPAR_INFERENCE_CONFIG": '{"num_samples": -1}'})
    assert read_configuration(None, "x").num_samples == 100


def test_too_few_observations_fail_the_job(tmp_path: Path) -> None:
    code, paths = train_in_process(tmp_path, panel(3, 60, 0), epochs="1")
    assert code == 1
    reason = paths.failure_file.read_text()
    assert reason.startswith("ClientError: ")
    assert "180 observed target values" in reason
    assert "at least 300" in reason


@pytest.mark.parametrize("likelihood", ["negative-binomial", "beta", "deterministic-L1"])
def test_other_likelihoods_train_and_forecast(tmp_path: Path, likelihood: str) -> None:
    rng = np.random.default_rng(0)
    records = panel(10, 40, 2)
    for r in records:
        y = np.asarray(r["target"])
        if likelihood == "negative-binomial":
            r["target"] = rng.poisson(y).astype(float).tolist()
        elif likelihood == "beta":
            r["target"] = (1 / (1 + np.exp(-(y - 35) / 10))).tolist()
    cell = "gru" if likelihood == "deterministic-L1" else "lstm"  # a GRU too, two layers
    code, paths = train_in_process(
        tmp_path,
        records,
        likelihood=likelihood,
        epochs="1",
        num_cells="4",
        context_length="7",
        cell_type=cell,
        num_layers="2" if cell == "gru" else "1",
    )
    assert code == 0, paths.failure_file.read_text()
    model = DeepARModel.load(paths.model)
    paths_ = model.forecast([parse_record(records[0])], 5)
    assert paths_.shape == (1, 5, HORIZON)
    assert np.isfinite(paths_).all()
    if likelihood == "negative-binomial":
        assert (paths_ >= 0).all()
        assert np.array_equal(paths_, np.round(paths_))
    if likelihood == "beta":
        assert ((paths_ >= 0) & (paths_ <= 1)).all()
    if likelihood == "deterministic-L1":
        assert (paths_ == paths_[:, :1]).all()


def test_likelihood_checks_the_targets(tmp_path: Path) -> None:
    code, paths = train_in_process(tmp_path, panel(10, 40, 2), likelihood="beta", epochs="1")
    assert code == 1
    assert "likelihood beta" in paths.failure_file.read_text()
    assert "line 1" in paths.failure_file.read_text()
