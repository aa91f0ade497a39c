"""The SDK's HyperparameterTuner end to end on the real server: built-in XGBoost and script mode,
the request it builds, the best job, analytics, deploy, failures and stops."""

from __future__ import annotations

import io
import re
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from sklearn.datasets import load_diabetes, load_iris

from opensage.sdk import (
    CategoricalParameter,
    ContinuousParameter,
    Estimator,
    HyperbandStrategyConfig,
    HyperparameterTuner,
    IntegerParameter,
    KMeans,
    Session,
    StrategyConfig,
    TrainingInput,
    TuningJobCompletionCriteriaConfig,
    UnexpectedStatusError,
    WarmStartConfig,
    WarmStartTypes,
)
from opensage.sdk.deserializers import CSVDeserializer
from opensage.sdk.serializers import CSVSerializer
from tests.integration.conftest import ROLE, XGBOOST_IMAGE, Clients, wait_for
from tests.integration.hosting import wait_no_model_servers

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    hp = json.loads(os.environ["SM_HPS"])
    if hp["optimizer"] not in ("adam", "sgd"):
        sys.exit("unexpected optimizer %r" % hp["optimizer"])
    penalty = 0.0 if hp["optimizer"] == "sgd" else 1.0
    for epoch in range(int(hp["epochs"])):
        print("loss: %.6f" % ((float(hp["x"]) - 0.3) ** 2 + penalty + 0.1 / (epoch + 1)))
    """
)

ANALYTICS_COLUMNS = ["TrainingJobName", "TrainingJobStatus", "FinalObjectiveValue",
                     "TrainingStartTime", "TrainingEndTime",
                     "TrainingElapsedTimeSeconds"]  # fmt: skip


@pytest.fixture(scope="module")
def session(server: Clients) -> Session:
    return Session(endpoint_url=server.endpoint)


def csv(x: np.ndarray, y: np.ndarray) -> bytes:
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack([y, x]), delimiter=",", fmt="%.10g")
    return buffer.getvalue().encode()


def trial_metrics(server: Clients, tuning_job: str, metric: str) -> dict[str, float]:
    """Each trial's final objective, read from its own DescribeTrainingJob."""
    summaries = server.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job, MaxResults=100
    )["TrainingJobSummaries"]
    values = {}
    for summary in summaries:
        name = summary["TrainingJobName"]
        desc = server.sagemaker.describe_training_job(TrainingJobName=name)
        values[name] = next(
            m["Value"] for m in desc["FinalMetricDataList"] if m["MetricName"] == metric
        )
    return values


def load_booster(server: Clients, uri: str) -> xgboost.Booster:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("xgboost-model")
        assert member is not None
        booster = xgboost.Booster()
        booster.load_model(bytearray(member.read()))
        return booster


def test_xgboost_tuning_best_job_analytics_and_deploy(
    server: Clients, session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = load_diabetes(return_X_y=True)
    server.s3.put_object(Bucket="data", Key="sdk-tuning/train/d.csv", Body=csv(x[:120], y[:120]))
    server.s3.put_object(
        Bucket="data", Key="sdk-tuning/val/d.csv", Body=csv(x[120:160], y[120:160])
    )
    estimator = Estimator(
        image_uri=XGBOOST_IMAGE,
        hyperparameters={"objective": "reg:squarederror", "num_round": 5, "eta": 0.3},
        output_path="s3://data/sdk-tuning/out",
        sagemaker_session=session,
    )
    tuner = HyperparameterTuner(
        estimator,
        "validation:rmse",
        {"eta": ContinuousParameter(0.05, 0.5), "max_depth": IntegerParameter(1, 4)},
        objective_type="Minimize",
        max_jobs=4,
        max_parallel_jobs=2,
        base_tuning_job_name="sdk-xgboost-tuning-with-a-long-base",
        random_seed=7,
    )
    channels: dict[str, str | TrainingInput] = {
        "train": TrainingInput("s3://data/sdk-tuning/train/", content_type="text/csv"),
        "validation": TrainingInput("s3://data/sdk-tuning/val/", content_type="text/csv"),
    }
    tuner.fit(channels)
    assert tuner.latest_tuning_job is not None
    name = tuner.latest_tuning_job.name
    assert len(name) == 32
    assert re.fullmatch(r"sdk-xgboost-tuning-w-\d{6}-\d{4}", name)  # base trimmed to fit 32

    desc = tuner.describe()
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    assert desc["TrainingJobStatusCounters"]["Completed"] == 4
    bar = capsys.readouterr().out  # the wait's bar, final state: every trial ended, the best
    assert f"Tuning job {name}" in bar
    assert "4/4 Completed, 0 running, best validation:rmse" in bar
    definition = desc["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {
        "objective": "reg:squarederror",
        "num_round": "5",
    }  # the estimator's eta is tuned, so not static
    assert definition["AlgorithmSpecification"]["TrainingImage"] == XGBOOST_IMAGE
    assert [c["ChannelName"] for c in definition["InputDataConfig"]] == ["train", "validation"]
    ranges = desc["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5", "ScalingType": "Auto"}
    ]
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "max_depth", "MinValue": "1", "MaxValue": "4", "ScalingType": "Auto"}
    ]

    rmse = trial_metrics(server, name, "validation:rmse")
    assert len(rmse) == 4
    assert all(trial.startswith(f"{name}-") for trial in rmse)
    assert tuner.best_training_job() == min(rmse, key=lambda trial: rmse[trial])

    attached = HyperparameterTuner.attach(name, sagemaker_session=session)
    assert attached._request(name, channels) == tuner._request(name, channels)
    assert attached.best_training_job() == tuner.best_training_job()

    frame = tuner.analytics().dataframe()
    assert len(frame) == 4
    assert set(frame.columns) == {"eta", "max_depth", *ANALYTICS_COLUMNS}
    assert set(frame["TrainingJobStatus"]) == {"Completed"}
    assert dict(zip(frame["TrainingJobName"], frame["FinalObjectiveValue"], strict=True)) == rmse
    assert frame["eta"].between(0.05, 0.5).all()
    assert set(frame["max_depth"]) <= {1.0, 2.0, 3.0, 4.0}
    assert (frame["TrainingElapsedTimeSeconds"] >= 0).all()

    best = tuner.best_training_job()
    predictor = tuner.deploy(1, "ml.m5.large", CSVSerializer(), CSVDeserializer())
    try:
        assert predictor.endpoint_name == best
        served = [float(row[0]) for row in predictor.predict(x[160:165])]
        artifacts = server.sagemaker.describe_training_job(TrainingJobName=best)["ModelArtifacts"]
        booster = load_booster(server, artifacts["S3ModelArtifacts"])
        expected = booster.predict(xgboost.DMatrix(x[160:165]))
        np.testing.assert_allclose(served, expected, rtol=1e-5)
    finally:
        predictor.delete_endpoint()
        predictor.delete_model()
    assert server.home is not None
    wait_no_model_servers(server.home)


def script_estimator(session: Session, tmp_path: Path, script: str) -> Estimator:
    (tmp_path / "train.py").write_text(script)
    return Estimator(
        entry_point="train.py",
        source_dir=str(tmp_path),
        hyperparameters={"epochs": 2, "x": 0.5, "optimizer": "adam"},
        output_path="s3://data/sdk-tuning/script",
        sagemaker_session=session,
    )


def test_script_mode_tuning_with_metric_definitions(
    server: Clients, session: Session, tmp_path: Path
) -> None:
    tuner = HyperparameterTuner(
        script_estimator(session, tmp_path, SCRIPT),
        "loss",
        {"x": ContinuousParameter(0, 1), "optimizer": CategoricalParameter(["adam", "sgd"])},
        metric_definitions=[{"Name": "loss", "Regex": r"loss: ([0-9.]+)"}],
        strategy="Random",
        objective_type="Minimize",
        max_jobs=4,
        max_parallel_jobs=2,
        random_seed=3,
    )
    tuner.fit(job_name="sdk-script-tuning")
    desc = tuner.describe()
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    assert desc["TrainingJobStatusCounters"]["Completed"] == 4  # every optimizer decoded
    definition = desc["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert static["epochs"] == "2"
    assert static["sagemaker_program"] == '"train.py"'
    assert static["sagemaker_submit_directory"] == (
        '"s3://data/sdk-tuning/script/sdk-script-tuning/source/sourcedir.tar.gz"'
    )
    assert "x" not in static
    assert "optimizer" not in static
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "loss", "Regex": r"loss: ([0-9.]+)"}
    ]
    categorical = desc["HyperParameterTuningJobConfig"]["ParameterRanges"][
        "CategoricalParameterRanges"
    ]
    assert categorical == [{"Name": "optimizer", "Values": ['"adam"', '"sgd"']}]
    loss = trial_metrics(server, "sdk-script-tuning", "loss")
    assert tuner.best_training_job() == min(loss, key=lambda trial: loss[trial])

    warm = HyperparameterTuner(
        tuner.estimator,
        "loss",
        {"x": ContinuousParameter(0, 1), "optimizer": CategoricalParameter(["adam", "sgd"])},
        metric_definitions=[{"Name": "loss", "Regex": r"loss: ([0-9.]+)"}],
        strategy="Random",
        objective_type="Minimize",
        max_jobs=2,
        max_parallel_jobs=2,
        warm_start_config=WarmStartConfig(
            WarmStartTypes.IDENTICAL_DATA_AND_ALGORITHM, {"sdk-script-tuning"}
        ),
        completion_criteria_config=TuningJobCompletionCriteriaConfig(
            max_number_of_training_jobs_not_improving=3, complete_on_convergence=False
        ),
    )
    warm.fit(job_name="sdk-warm-tuning")
    desc = warm.describe()
    assert desc["WarmStartConfig"] == {
        "WarmStartType": "IdenticalDataAndAlgorithm",
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "sdk-script-tuning"}],
    }
    assert desc["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] == {
        "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3},
        "ConvergenceDetected": {"CompleteOnConvergence": "Disabled"},
    }
    loss |= trial_metrics(server, "sdk-warm-tuning", "loss")
    overall = desc["OverallBestTrainingJob"]["TrainingJobName"]
    assert overall == min(loss, key=lambda trial: loss[trial])

    attached = HyperparameterTuner.attach("sdk-warm-tuning", sagemaker_session=session)
    assert attached.estimator.entry_point == "train.py"
    assert attached._request("sdk-warm-tuning", None) == warm._request("sdk-warm-tuning", None)


def test_strategy_config_is_the_api_shape() -> None:
    hyperband = StrategyConfig(HyperbandStrategyConfig(max_resource=9, min_resource=1))
    assert hyperband.to_input_req() == {
        "HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}
    }
    inferred = StrategyConfig(HyperbandStrategyConfig())  # MaxResource from static `epochs`
    assert inferred.to_input_req() == {"HyperbandStrategyConfig": {}}
    for config in (hyperband, inferred):  # what `attach` reads back from a described job
        assert StrategyConfig.from_job_desc(config.to_input_req()) == config
    assert StrategyConfig.from_job_desc(None) is None
    for criteria in (
        TuningJobCompletionCriteriaConfig(target_objective_metric_value=0.1),
        TuningJobCompletionCriteriaConfig(5, complete_on_convergence=True),
    ):
        assert TuningJobCompletionCriteriaConfig.from_job_desc(criteria.to_input_req()) == criteria


def test_a_job_without_objective_fails_and_has_no_best(session: Session, tmp_path: Path) -> None:
    tuner = HyperparameterTuner(
        script_estimator(session, tmp_path, "print('no metric here')\n"),
        "loss",
        {"x": ContinuousParameter(0, 1)},
        metric_definitions=[{"Name": "loss", "Regex": r"loss: ([0-9.]+)"}],
        strategy="Random",
        max_jobs=2,
        max_parallel_jobs=2,
    )
    with pytest.raises(UnexpectedStatusError) as info:
        tuner.fit(job_name="sdk-no-objective")
    assert info.value.status == "Failed"
    assert "Error for HyperParameterTuning job sdk-no-objective: Failed" in str(info.value)
    with pytest.raises(RuntimeError, match="Best training job not available for tuning job"):
        tuner.best_training_job()


def test_stop_tuning_job(server: Clients, session: Session, tmp_path: Path) -> None:
    tuner = HyperparameterTuner(
        script_estimator(session, tmp_path, "import time\ntime.sleep(300)\n"),
        "loss",
        {"x": ContinuousParameter(0, 1)},
        metric_definitions=[{"Name": "loss", "Regex": r"loss: ([0-9.]+)"}],
        max_jobs=4,
        max_parallel_jobs=2,
    )
    with pytest.raises(ValueError, match="No tuning job available"):
        tuner.stop_tuning_job()
    tuner.fit(job_name="sdk-stop-tuning", wait=False)
    started = server.sagemaker.list_training_jobs  # the trials' training jobs exist
    wait_for(lambda: len(started(NameContains="sdk-stop-tuning")["TrainingJobSummaries"]) == 2)
    tuner.stop_tuning_job()
    desc: dict[str, Any] = tuner.wait()  # Stopped is an end the SDK does not raise for
    assert desc["HyperParameterTuningJobStatus"] == "Stopped"
    assert desc["TrainingJobStatusCounters"]["Stopped"] == 2
    assert desc["TrainingJobStatusCounters"]["InProgress"] == 0


def test_builtin_estimator_tunes_on_record_sets(session: Session) -> None:
    """A built-in's estimator takes record sets in `tuner.fit`, as in its own `fit`: feature_dim
    and the channels come from them."""
    x = load_iris().data.astype("float32")
    kmeans = KMeans(role=ROLE, instance_count=1, instance_type="ml.m5.large", k=3,
                    sagemaker_session=session, base_job_name="tune-kmeans")  # fmt: skip
    train = kmeans.record_set(x[::2])
    test = kmeans.record_set(x[1::2], channel="test")
    tuner = HyperparameterTuner(
        kmeans,
        "test:msd",
        {"extra_center_factor": IntegerParameter(1, 3)},
        objective_type="Minimize",
        strategy="Random",
        max_jobs=2,
        max_parallel_jobs=2,
    )
    tuner.fit([train, test], job_name="tune-kmeans-records")
    desc = tuner.describe()
    assert desc["TrainingJobDefinition"]["StaticHyperParameters"]["feature_dim"] == "4"
    assert desc["TrainingJobStatusCounters"]["Completed"] == 2
    assert desc["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] > 0
