"""Hyperparameter tuning jobs through the real server and boto3 (spec §5).

Every finished job goes through `audit`, which recomputes what DescribeHyperParameterTuningJob
and ListTrainingJobsForHyperParameterTuningJob claim from the trials' own DescribeTrainingJob:
names, TuningJobArn, hyperparameters, status counters, objective counters, BestTrainingJob, and
that no instant had more than MaxParallelTrainingJobs trials training.

The training script's loss is `scale * (1 + 1 / epoch)`, the scale chosen by a hyperparameter, so
a test decides which trials are good and which are bad. Most of the matrix runs under the process
runtime only; the Random jobs also run in the sandbox.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from sklearn.datasets import load_breast_cancer, load_diabetes

from tests.integration.conftest import (
    PYTHON_IMAGE,
    ROLE,
    XGBOOST_IMAGE,
    Clients,
    log_messages,
    s3_channel,
    wait_for,
)

OBJECTIVE_KEY = "_tuning_objective_metric"
ENDED = ("Completed", "Stopped", "Failed")
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
SOURCE = "s3://data/tuning-src/sourcedir.tar.gz"

# Hyperparameters: `x`/`y` (scale = distance to (0.3, 0.7)), or `c` (the scale itself; `fail`
# exits 1, `silent` prints nothing), or `scale=trial` (the launch number from the job's name).
# `epochs` loss lines, `pace` seconds before each; `slow_stop` makes SIGTERM take a second, as a
# script saving a checkpoint would.
SCRIPT = r"""
import json, os, re, signal, sys, time

hp = json.loads(os.environ["SM_HPS"])
c = str(hp.get("c", ""))
if c == "fail":
    sys.exit("failing on purpose")
if c == "silent":
    sys.exit(0)
if "x" in hp:
    scale = (float(hp["x"]) - 0.3) ** 2 + (float(hp.get("y", 0.7)) - 0.7) ** 2
elif hp.get("scale") == "trial":
    scale = int(re.search(r"-(\d{3})-[0-9a-f]{8}$", os.environ["TRAINING_JOB_NAME"]).group(1))
else:
    scale = float(c)
if hp.get("slow_stop"):
    signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1), sys.exit(0)))
for epoch in range(1, int(hp.get("epochs", 2)) + 1):
    time.sleep(float(hp.get("pace", 0)))
    print("loss: %.6f" % (scale * (1 + 1 / epoch)), flush=True)
"""

XY = {
    "ContinuousParameterRanges": [
        {"Name": "x", "MinValue": "0", "MaxValue": "1"},
        {"Name": "y", "MinValue": "0", "MaxValue": "1"},
    ]
}
XGB_NUMERIC = {
    "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.1", "MaxValue": "0.5"}],
    "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "5"}],
}


@dataclass(frozen=True)
class Audit:
    """A finished tuning job whose claims `audit` has checked."""

    desc: dict[str, Any]
    summaries: list[dict[str, Any]]  # in launch order
    jobs: list[dict[str, Any]]  # the trials' DescribeTrainingJob, in launch order


# set-up ------------------------------------------------------------------------------------


def upload_script(server: Clients) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(SCRIPT.encode())
        tar.addfile(info, io.BytesIO(SCRIPT.encode()))
    server.s3.put_object(Bucket="data", Key="tuning-src/sourcedir.tar.gz", Body=buffer.getvalue())


@pytest.fixture(scope="module", autouse=True)
def uploads(server: Clients) -> None:
    """The training script and the XGBoost CSVs (label first, no header), once per server."""
    upload_script(server)
    rng = np.random.default_rng(0)
    for problem, (x, y) in {
        "regression": load_diabetes(return_X_y=True),
        "binary": load_breast_cancer(return_X_y=True),
    }.items():
        rows = rng.permutation(len(y))[:150]
        for channel, part in (("train", rows[:100]), ("validation", rows[100:])):
            text = io.StringIO()
            np.savetxt(text, np.column_stack([y[part], x[part]]), delimiter=",", fmt="%.8g")
            key = f"tuning-data/{problem}/{channel}/part.csv"
            server.s3.put_object(Bucket="data", Key=key, Body=text.getvalue().encode())


def process_only(server: Clients) -> None:
    """The tuning loop is the same above both runtimes: most tests need only one."""
    if server.runtime == "sandbox":
        pytest.skip("covered under the process runtime")


def script_definition(**static: str) -> dict[str, Any]:
    return {
        "AlgorithmSpecification": {
            "TrainingImage": PYTHON_IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "loss", "Regex": r"loss: ([0-9.e+-]+)"}],
        },
        "StaticHyperParameters": {
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": SOURCE,
            **static,
        },
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://data/tuning-out"},
        "ResourceConfig": RESOURCES,
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def xgboost_definition(problem: str, rounds: int = 5) -> dict[str, Any]:
    objective = {"regression": "reg:squarederror", "binary": "binary:logistic"}[problem]
    return {
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "StaticHyperParameters": {"objective": objective, "num_round": str(rounds)},
        "InputDataConfig": [
            s3_channel(channel, f"s3://data/tuning-data/{problem}/{channel}/", "text/csv")
            for channel in ("train", "validation")
        ],
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://data/tuning-out"},
        "ResourceConfig": RESOURCES,
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def job_config(
    strategy: str,
    ranges: dict[str, Any],
    jobs: int | None,
    parallel: int,
    metric: str = "loss",
    direction: str = "Minimize",
    **extra: Any,
) -> dict[str, Any]:
    limits: dict[str, int] = {"MaxParallelTrainingJobs": parallel}
    if jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = jobs
    return {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": {"Type": direction, "MetricName": metric},
        "ResourceLimits": limits,
        "ParameterRanges": ranges,
        **extra,
    }


def tune(
    server: Clients, name: str, config: dict[str, Any], definition: dict[str, Any], **extra: Any
) -> None:
    server.sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config,
        TrainingJobDefinition=definition,
        **extra,
    )


def describe(server: Clients, name: str) -> dict[str, Any]:
    return dict(
        server.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    )


def wait_tuning(server: Clients, name: str, timeout: float = 120.0) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        desc = describe(server, name)
        return desc if desc["HyperParameterTuningJobStatus"] in ENDED else None

    return dict(wait_for(ended, timeout, 0.2, f"tuning job {name} to end"))


def list_trials(server: Clients, name: str, page_size: int = 100, **query: Any) -> list[Any]:
    """Every page of ListTrainingJobsForHyperParameterTuningJob, in order."""
    summaries: list[Any] = []
    token: dict[str, str] = {}
    while True:
        page = server.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, MaxResults=page_size, **query, **token
        )
        summaries += page["TrainingJobSummaries"]
        if "NextToken" not in page:
            return summaries
        token = {"NextToken": page["NextToken"]}


# what the trials' own training jobs say ----------------------------------------------------


def objective(job: dict[str, Any], metric: str) -> float | None:
    """The trial's final objective: the last value its log emitted (FinalMetricDataList)."""
    finals = job.get("FinalMetricDataList", [])
    return next((m["Value"] for m in finals if m["MetricName"] == metric), None)


def succeeded(job: dict[str, Any], metric: str) -> bool:
    ended_well = job["TrainingJobStatus"] in ("Completed", "Stopped")
    return ended_well and objective(job, metric) is not None


def training_counters(jobs: list[dict[str, Any]]) -> dict[str, int]:
    """Our trials fail only by their own fault (the script), never a retryable one."""
    status = Counter(job["TrainingJobStatus"] for job in jobs)
    return {
        "Completed": status["Completed"],
        "InProgress": status["InProgress"] + status["Stopping"],
        "RetryableError": 0,
        "NonRetryableError": status["Failed"],
        "Stopped": status["Stopped"],
    }


def best_job(jobs: list[dict[str, Any]], metric: str, direction: str) -> dict[str, Any] | None:
    """The best succeeded trial; ties to the earliest launched."""
    sign = 1.0 if direction == "Minimize" else -1.0
    scored = []
    for number, job in enumerate(jobs):
        value = objective(job, metric)
        if succeeded(job, metric) and value is not None:
            scored.append((sign * value, number))
    return jobs[min(scored)[1]] if scored else None


def most_at_once(jobs: list[dict[str, Any]]) -> int:
    """The most trials whose [TrainingStartTime, TrainingEndTime) intervals share an instant."""
    spans = [
        (j["TrainingStartTime"], j["TrainingEndTime"]) for j in jobs if "TrainingStartTime" in j
    ]
    return max((sum(start <= t < end for start, end in spans) for t, _ in spans), default=0)


def check_trial(
    desc: dict[str, Any], number: int, summary: dict[str, Any], job: dict[str, Any]
) -> None:
    """A trial's summary against its training job, and the training job against spec §5.3."""
    config, definition = desc["HyperParameterTuningJobConfig"], desc["TrainingJobDefinition"]
    metric = config["HyperParameterTuningJobObjective"]["MetricName"]
    name = desc["HyperParameterTuningJobName"]
    assert re.fullmatch(rf"{re.escape(name)}-{number:03d}-[0-9a-f]{{8}}", job["TrainingJobName"])
    assert job["TuningJobArn"] == desc["HyperParameterTuningJobArn"]
    tuned = summary["TunedHyperParameters"]
    ranges = config["ParameterRanges"]
    assert set(tuned) == {entry["Name"] for key in ranges for entry in ranges[key]}
    static = definition["StaticHyperParameters"]
    assert job["HyperParameters"] == {**static, **tuned, OBJECTIVE_KEY: metric}
    assert summary["TuningJobName"] == name
    assert summary["TrainingJobStatus"] == job["TrainingJobStatus"]
    assert summary["ObjectiveStatus"] == ("Succeeded" if succeeded(job, metric) else "Failed")
    final = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {})
    assert final.get("Value") == objective(job, metric), job["TrainingJobName"]
    for key in ("TrainingStartTime", "TrainingEndTime"):
        assert summary.get(key) == job.get(key)


def check_totals(desc: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
    """Counters, BestTrainingJob and the parallel limit, recomputed from the training jobs."""
    config = desc["HyperParameterTuningJobConfig"]
    metric = config["HyperParameterTuningJobObjective"]["MetricName"]
    assert desc["TrainingJobStatusCounters"] == training_counters(jobs)
    good = sum(succeeded(job, metric) for job in jobs)
    assert desc["ObjectiveStatusCounters"] == {
        "Succeeded": good,
        "Pending": 0,
        "Failed": len(jobs) - good,
    }
    best = best_job(jobs, metric, config["HyperParameterTuningJobObjective"]["Type"])
    if best is None:
        assert "BestTrainingJob" not in desc
    else:
        assert desc["BestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
        value = desc["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        assert value == objective(best, metric)
    assert 1 <= most_at_once(jobs) <= config["ResourceLimits"]["MaxParallelTrainingJobs"]


def audit(server: Clients, name: str) -> Audit:
    """Wait for the job to end, then check its every claim against its trials' training jobs."""
    desc = wait_tuning(server, name)
    summaries = list_trials(server, name)
    jobs = [
        server.sagemaker.describe_training_job(TrainingJobName=s["TrainingJobName"])
        for s in summaries
    ]
    for number, (summary, job) in enumerate(zip(summaries, jobs, strict=True), start=1):
        check_trial(desc, number, summary, job)
    check_totals(desc, jobs)
    assert desc["HyperParameterTuningEndTime"] >= desc["CreationTime"]
    return Audit(desc, summaries, jobs)


def loss_lines(server: Clients, job: dict[str, Any]) -> int:
    return sum(m.startswith("loss: ") for m in log_messages(server, job["TrainingJobName"]))


# every strategy, on the built-in and in script mode ----------------------------------------

STRATEGIES = ["Random", "Grid", "Bayesian", "Hyperband"]


XGB_GRID = {
    "CategoricalParameterRanges": [
        {"Name": "max_depth", "Values": ["1", "3", "5"]},
        {"Name": "eta", "Values": ["0.3"]},
    ]
}
HYPERBAND = {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 5}}
# XGBoost trials take seconds (the container imports xgboost): few trials, mostly one wave.
# strategy: (data, objective metric, direction, ranges, MaxNumberOfTrainingJobs, MaxParallel)
XGB_CASES: dict[str, tuple[str, str, str, dict[str, Any], int | None, int]] = {
    "Random": ("regression", "validation:rmse", "Minimize", XGB_NUMERIC, 4, 2),
    "Grid": ("binary", "validation:auc", "Maximize", XGB_GRID, None, 3),
    "Bayesian": ("binary", "validation:auc", "Maximize", XGB_NUMERIC, 3, 3),
    "Hyperband": ("regression", "validation:rmse", "Minimize", XGB_NUMERIC, 3, 3),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_tunes_xgboost(server: Clients, strategy: str) -> None:
    if strategy != "Random":
        process_only(server)
    problem, metric, direction, ranges, jobs, parallel = XGB_CASES[strategy]
    extra: dict[str, Any] = {"RandomSeed": 11}
    if strategy == "Hyperband":
        extra["StrategyConfig"] = HYPERBAND
    name = f"xgb-{strategy.lower()}"
    config = job_config(strategy, ranges, jobs, parallel, metric, direction, **extra)
    tune(server, name, config, xgboost_definition(problem))

    result = audit(server, name)
    assert result.desc["HyperParameterTuningJobStatus"] == "Completed"
    assert len(result.jobs) == (jobs or 3)
    assert result.desc["ObjectiveStatusCounters"]["Succeeded"] == len(result.jobs)
    tuned = [s["TunedHyperParameters"] for s in result.summaries]
    if strategy == "Grid":  # every combination once, in the order listed
        assert tuned == [{"max_depth": d, "eta": "0.3"} for d in ("1", "3", "5")]
    else:
        assert all(0.1 <= float(t["eta"]) <= 0.5 for t in tuned)
        assert all(t["max_depth"] in {"1", "2", "3", "4", "5"} for t in tuned)


SCRIPT_GRID = {
    "CategoricalParameterRanges": [
        {"Name": "x", "Values": ["0.1", "0.3", "0.5"]},
        {"Name": "y", "Values": ["0.7", "0.9"]},
    ]
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_tunes_a_script(server: Clients, strategy: str) -> None:
    """Bayesian gets more trials than its random start-up (5) so the model suggests some."""
    if strategy != "Random":
        process_only(server)
    jobs = 8 if strategy == "Bayesian" else 6
    extra: dict[str, Any] = {"RandomSeed": 5}
    static: dict[str, str] = {}
    if strategy == "Hyperband":
        static = {"epochs": "3"}  # MaxResource is inferred from it
        extra["StrategyConfig"] = {"HyperbandStrategyConfig": {"MinResource": 1}}
    ranges = SCRIPT_GRID if strategy == "Grid" else XY
    name = f"script-{strategy.lower()}"
    tune(server, name, job_config(strategy, ranges, jobs, 2, **extra), script_definition(**static))

    result = audit(server, name)
    assert result.desc["HyperParameterTuningJobStatus"] == "Completed"
    assert len(result.jobs) == jobs
    assert result.desc["ObjectiveStatusCounters"]["Succeeded"] == jobs
    if strategy == "Grid":  # the grid holds the optimum, where the loss is 0
        assert result.desc["BestTrainingJob"]["TunedHyperParameters"] == {"x": "0.3", "y": "0.7"}


# validation ------------------------------------------------------------------------------


def _xgb_request(**config: Any) -> dict[str, Any]:
    base = job_config("Random", XGB_NUMERIC, 4, 2, "validation:rmse", "Minimize")
    return {"config": {**base, **config}, "definition": xgboost_definition("regression")}


def _ranges(**ranges: Any) -> dict[str, Any]:
    return _xgb_request(ParameterRanges=ranges)


def _continuous(name: str, low: str, high: str, scaling: str = "Auto") -> dict[str, Any]:
    entry = {"Name": name, "MinValue": low, "MaxValue": high, "ScalingType": scaling}
    return _ranges(ContinuousParameterRanges=[entry])


GRID_DEPTH = {"CategoricalParameterRanges": [{"Name": "max_depth", "Values": ["2", "3", "4"]}]}
INVALID: dict[str, tuple[dict[str, Any], list[str]]] = {
    "min-above-max": (_continuous("eta", "0.5", "0.1"), ["eta", "MinValue", "MaxValue"]),
    "log-with-zero": (_continuous("alpha", "0", "10", "Logarithmic"), ["alpha", "Logarithmic"]),
    "reverse-log-at-1": (
        _continuous("subsample", "0.5", "1", "ReverseLogarithmic"),
        ["subsample", "ReverseLogarithmic"],
    ),
    "unknown-hyperparameter": (_continuous("learning_speed", "0.1", "0.2"), ["learning_speed"]),
    "outside-the-builtin": (_continuous("eta", "0.1", "1.5"), ["eta", "1.5"]),
    "fractional-integer": (
        _ranges(CategoricalParameterRanges=[{"Name": "max_depth", "Values": ["3", "4.5"]}]),
        ["max_depth", "4.5"],
    ),
    "grid-continuous": (
        _xgb_request(Strategy="Grid", ResourceLimits={"MaxParallelTrainingJobs": 2}),
        ["Grid", "eta"],
    ),
    "grid-wrong-count": (
        _xgb_request(Strategy="Grid", ParameterRanges=GRID_DEPTH),
        ["MaxNumberOfTrainingJobs", "4", "3"],
    ),
    "hyperband-early-stopping": (
        _xgb_request(
            Strategy="Hyperband",
            TrainingJobEarlyStoppingType="Auto",
            StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 5}},
        ),
        ["Hyperband", "TrainingJobEarlyStoppingType"],
    ),
    "not-tunable": (
        _xgb_request(
            HyperParameterTuningJobObjective={"Type": "Minimize", "MetricName": "train:rmse"}
        ),
        ["train:rmse", "tunable"],
    ),
    "wrong-direction": (
        _xgb_request(
            HyperParameterTuningJobObjective={"Type": "Maximize", "MetricName": "validation:rmse"}
        ),
        ["validation:rmse", "Minimize"],
    ),
    "script-undefined-metric": (
        {
            "config": job_config("Random", XY, 4, 2, "accuracy", "Maximize"),
            "definition": script_definition(),
        },
        ["accuracy", "MetricDefinitions"],
    ),
}


CONTINUOUS_ON_INTEGER = pytest.param(
    "continuous-on-integer",
    _continuous("max_depth", "1", "5"),
    ["max_depth", "integer"],
    id="continuous-on-integer",
)


@pytest.mark.parametrize(
    ("name", "request_parts", "words"),
    [
        *(pytest.param(name, *case, id=name) for name, case in INVALID.items()),
        CONTINUOUS_ON_INTEGER,
    ],
)
def test_invalid_jobs_are_refused_with_the_reason(
    server: Clients, name: str, request_parts: dict[str, Any], words: list[str]
) -> None:
    process_only(server)
    with pytest.raises(ClientError) as refused:
        tune(server, name, request_parts["config"], request_parts["definition"])
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    for word in words:
        assert word in error["Message"]
    with pytest.raises(ClientError, match=r"ResourceNotFound|find"):
        describe(server, name)


# stopping rules --------------------------------------------------------------------------


def test_early_stopping_auto_stops_the_trials_worse_than_the_median(server: Clients) -> None:
    """Grid runs the scales in the order listed: three good ones first (the rule needs three
    earlier peers), then a better one that must run on, then two bad ones that must stop."""
    process_only(server)
    scales = ["1.0", "1.1", "1.2", "0.5", "5", "6"]
    ranges = {"CategoricalParameterRanges": [{"Name": "c", "Values": scales}]}
    config = job_config("Grid", ranges, None, 3, TrainingJobEarlyStoppingType="Auto")
    tune(server, "median", config, script_definition(epochs="8", pace="0.3"))

    result = audit(server, "median")
    assert result.desc["HyperParameterTuningJobStatus"] == "Completed"
    status = {s["TunedHyperParameters"]["c"]: s["TrainingJobStatus"] for s in result.summaries}
    stopped = {"5", "6"}
    assert status == {c: "Stopped" if c in stopped else "Completed" for c in scales}
    assert result.desc["TrainingJobStatusCounters"]["Stopped"] == 2
    for job in result.jobs:
        lines = loss_lines(server, job)
        assert (lines < 8) == (job["TrainingJobStatus"] == "Stopped")
    # stopped trials keep their last objective (spec §5.3)
    assert result.desc["ObjectiveStatusCounters"] == {"Succeeded": 6, "Pending": 0, "Failed": 0}


def test_hyperband_stops_weak_trials_before_max_resource(server: Clients) -> None:
    """The scale is the trial's launch number, so trial 1 is the best at every epoch and each
    later trial is worse than all earlier ones: whatever the brackets, Hyperband must cut some
    short and never trial 1. MaxResource comes from the static `epochs`."""
    process_only(server)
    config = job_config(
        "Hyperband",
        {"ContinuousParameterRanges": [{"Name": "unused", "MinValue": "0", "MaxValue": "1"}]},
        6,
        3,
        StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1}},
    )
    tune(server, "hyperband", config, script_definition(epochs="9", pace="0.25", scale="trial"))

    result = audit(server, "hyperband")
    assert result.desc["HyperParameterTuningJobStatus"] == "Completed"
    lines = [loss_lines(server, job) for job in result.jobs]
    assert lines[0] == 9
    cut = [n for n, count in enumerate(lines, start=1) if count < 9]
    assert len(cut) >= 2, lines
    for number in cut:
        assert result.jobs[number - 1]["TrainingJobStatus"] == "Stopped"
    assert result.desc["BestTrainingJob"]["TrainingJobName"] == result.jobs[0]["TrainingJobName"]


def test_stop_stops_running_trials_and_lists_filter_by_name_and_status(server: Clients) -> None:
    process_only(server)
    tune(server, "halt-done", job_config("Random", XY, 1, 1), script_definition())
    slow = script_definition(epochs="40", pace="0.25", slow_stop="1")
    tune(server, "halt-stopped", job_config("Random", XY, 4, 2), slow)

    def training_trials() -> bool:
        trials = list_trials(server, "halt-stopped")
        return len(trials) == 2 and all("TrainingStartTime" in t for t in trials)

    wait_for(training_trials, 60, 0.1, "two trials to train")
    running = describe(server, "halt-stopped")
    assert running["TrainingJobStatusCounters"]["InProgress"] == 2
    assert running["ObjectiveStatusCounters"] == {"Succeeded": 0, "Pending": 2, "Failed": 0}
    assert "BestTrainingJob" not in running
    server.sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt-stopped")
    assert describe(server, "halt-stopped")["HyperParameterTuningJobStatus"] == "Stopping"

    result = audit(server, "halt-stopped")
    assert result.desc["HyperParameterTuningJobStatus"] == "Stopped"
    assert [job["TrainingJobStatus"] for job in result.jobs] == ["Stopped", "Stopped"]
    assert wait_tuning(server, "halt-done")["HyperParameterTuningJobStatus"] == "Completed"
    with pytest.raises(ClientError, match=r"ValidationException.*Completed"):
        server.sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt-done")

    def names(**query: Any) -> list[str]:
        found = server.sagemaker.list_hyper_parameter_tuning_jobs(NameContains="halt-", **query)
        return sorted(
            j["HyperParameterTuningJobName"] for j in found["HyperParameterTuningJobSummaries"]
        )

    assert names() == ["halt-done", "halt-stopped"]
    assert names(StatusEquals="Stopped") == ["halt-stopped"]
    assert names(StatusEquals="Completed") == ["halt-done"]
    assert names(StatusEquals="InProgress") == []


# completion, reproducibility, warm start -----------------------------------------------


def test_target_objective_ends_the_job_early(server: Clients) -> None:
    """Every loss is below 10, so the first finished trial reaches the target: the job ends
    without launching beyond its first MaxParallelTrainingJobs trials."""
    process_only(server)
    criteria = {"TargetObjectiveMetricValue": 10.0}
    config = job_config("Random", XY, 8, 2, TuningJobCompletionCriteria=criteria)
    tune(server, "target", config, script_definition())

    result = audit(server, "target")
    assert result.desc["HyperParameterTuningJobStatus"] == "Completed"
    assert len(result.jobs) == 2
    best = result.desc["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]
    assert best["Value"] <= 10.0
    assert "TuningJobCompletionDetails" in result.desc


def test_best_objective_not_improving_ends_the_job(server: Clients) -> None:
    """One trial at a time, each worse than the first: after three that fail to improve on it,
    the job ends with four of its six trials."""
    process_only(server)
    ranges = {"CategoricalParameterRanges": [{"Name": "c", "Values": list("123456")}]}
    criteria = {"BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3}}
    config = job_config("Grid", ranges, 6, 1, TuningJobCompletionCriteria=criteria)
    tune(server, "patience", config, script_definition())

    result = audit(server, "patience")
    assert result.desc["HyperParameterTuningJobStatus"] == "Completed"
    assert [s["TunedHyperParameters"]["c"] for s in result.summaries] == list("1234")
    details = result.desc["TuningJobCompletionDetails"]
    assert details["NumberOfTrainingJobsObjectiveNotImproving"] == 3


def test_a_job_whose_every_trial_fails_fails(server: Clients) -> None:
    process_only(server)
    ranges = {"CategoricalParameterRanges": [{"Name": "c", "Values": ["fail", "silent"]}]}
    tune(server, "hopeless", job_config("Grid", ranges, 2, 2), script_definition())

    result = audit(server, "hopeless")
    assert result.desc["HyperParameterTuningJobStatus"] == "Failed"
    assert "loss" in result.desc["FailureReason"]
    assert result.desc["ObjectiveStatusCounters"]["Failed"] == 2


def test_random_seed_reproduces_the_trials(server: Clients) -> None:
    process_only(server)
    for name, seed in (("seed-a", 42), ("seed-b", 42), ("seed-c", 43)):
        tune(server, name, job_config("Random", XY, 3, 3, RandomSeed=seed), script_definition())
    tuned = {
        name: [s["TunedHyperParameters"] for s in audit(server, name).summaries]
        for name in ("seed-a", "seed-b", "seed-c")
    }
    assert tuned["seed-a"] == tuned["seed-b"]
    assert len({(t["x"], t["y"]) for t in tuned["seed-a"]}) == 3
    assert all(a != c for a, c in zip(tuned["seed-a"], tuned["seed-c"], strict=True))


def test_warm_start_reports_the_best_over_parent_and_child(server: Clients) -> None:
    """The parent searched near the optimum (0.3, 0.7), the child far from it: the child's
    BestTrainingJob is its own, its OverallBestTrainingJob the parent's."""
    process_only(server)

    def near(low: str, high: str) -> dict[str, Any]:
        x = {"Name": "x", "MinValue": low, "MaxValue": high}
        return {
            "ContinuousParameterRanges": [x, {"Name": "y", "MinValue": "0.6", "MaxValue": "0.8"}]
        }

    parent_config = job_config("Random", near("0.25", "0.35"), 3, 3)
    tune(server, "warm-parent", parent_config, script_definition())
    parent = audit(server, "warm-parent")
    warm = {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "warm-parent"}],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    child_config = job_config("Random", near("0.8", "1"), 3, 3)
    tune(server, "warm-child", child_config, script_definition(), WarmStartConfig=warm)
    child = audit(server, "warm-child")

    best_parent = best_job(parent.jobs, "loss", "Minimize")
    assert best_parent is not None
    overall = child.desc["OverallBestTrainingJob"]
    assert overall["TrainingJobName"] == best_parent["TrainingJobName"]
    assert overall["TuningJobName"] == "warm-parent"
    assert overall["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == objective(
        best_parent, "loss"
    )
    assert child.desc["BestTrainingJob"]["TuningJobName"] == "warm-child"
    assert "OverallBestTrainingJob" not in parent.desc


# listing the trials ----------------------------------------------------------------------


def test_trials_sort_filter_and_paginate(server: Clients) -> None:
    """Five trials: three with an objective, one silent (Completed, no objective), one failed."""
    process_only(server)
    values = ["3", "1", "silent", "fail", "2"]
    ranges = {"CategoricalParameterRanges": [{"Name": "c", "Values": values}]}
    tune(server, "sorting", job_config("Grid", ranges, 5, 3), script_definition(epochs="1"))
    result = audit(server, "sorting")
    assert result.desc["HyperParameterTuningJobStatus"] == "Completed"
    assert result.desc["TrainingJobStatusCounters"]["NonRetryableError"] == 1
    assert result.desc["ObjectiveStatusCounters"] == {"Succeeded": 3, "Pending": 0, "Failed": 2}

    def scales(**query: Any) -> list[str]:
        return [s["TunedHyperParameters"]["c"] for s in list_trials(server, "sorting", **query)]

    by_name = [s["TrainingJobName"] for s in result.summaries]
    assert by_name == sorted(by_name)
    paged = list_trials(server, "sorting", page_size=2)
    assert [s["TrainingJobName"] for s in paged] == by_name
    first = server.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="sorting", MaxResults=2
    )
    assert len(first["TrainingJobSummaries"]) == 2
    assert "NextToken" in first
    assert scales(SortBy="Name", SortOrder="Descending") == values[::-1]
    assert scales(SortBy="FinalObjectiveMetricValue") == ["1", "2", "3"]
    assert scales(SortBy="FinalObjectiveMetricValue", SortOrder="Descending") == ["3", "2", "1"]
    assert scales(SortBy="FinalObjectiveMetricValue", page_size=2) == ["1", "2", "3"]
    assert scales(SortBy="Status") == ["3", "1", "silent", "2", "fail"]
    created = [s["CreationTime"] for s in list_trials(server, "sorting", SortBy="CreationTime")]
    assert created == sorted(created)
    assert scales(StatusEquals="Failed") == ["fail"]
    assert scales(StatusEquals="Completed", SortBy="FinalObjectiveMetricValue") == ["1", "2", "3"]


# names -----------------------------------------------------------------------------------


def test_names_are_unique_whatever_their_case(server: Clients) -> None:
    process_only(server)
    tune(server, "CaseName", job_config("Random", XY, 1, 1), script_definition())
    with pytest.raises(ClientError) as duplicate:
        tune(server, "casename", job_config("Random", XY, 1, 1), script_definition())
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"
    assert "casename" in duplicate.value.response["Error"]["Message"]
    assert audit(server, "CaseName").desc["HyperParameterTuningJobStatus"] == "Completed"
