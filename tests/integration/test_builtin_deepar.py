"""The built-in DeepAR through the server with boto3: training from JSON Lines in S3 with train
and test channels (test metrics in FinalMetricDataList), an endpoint answering JSON requests
for each output type, a batch transform of JSON Lines (SingleRecord, Line) configured by
`DEEPAR_INFERENCE_CONFIG`, and bad hyperparameters refused at CreateTrainingJob."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from botocore.exceptions import WaiterError

pytest.importorskip("torch")

from tests.algorithms.cases_deepar import PREDICTION, jsonl, panel
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant


@pytest.fixture
def server(server: Clients) -> Clients:
    """A built-in runs alike under both runtimes (the sandbox is tested elsewhere): this file
    runs under the process runtime only, to keep the suite fast."""
    if server.runtime != "process":
        pytest.skip("built-ins are tested under the process runtime")
    return server


IMAGE = "522234722520.dkr.ecr.us-east-1.amazonaws.com/forecasting-deepar:1"
RESOURCES = {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1}
JSON = "application/json"
JSONLINES = "application/jsonlines"
HYPERPARAMETERS = {
    "time_freq": "D",
    "context_length": "7",
    "prediction_length": str(PREDICTION),
    "epochs": "2",
    "num_cells": "8",
    "num_layers": "1",
    "mini_batch_size": "16",
    "num_eval_samples": "10",
}


def create(server: Clients, name: str, hps: dict[str, str]) -> dict[str, Any]:
    server.s3.put_object(
        Bucket="data", Key=f"{name}/train/train.json", Body=jsonl(panel(20, 55, 0))
    )
    server.s3.put_object(Bucket="data", Key=f"{name}/test/test.json", Body=jsonl(panel(20, 60, 0)))
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hps,
        InputDataConfig=[
            s3_channel("train", f"s3://data/{name}/train/", JSONLINES),
            s3_channel("test", f"s3://data/{name}/test/", JSONLINES),
        ],
        OutputDataConfig={"S3OutputPath": "s3://data/deepar-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name, timeout=240.0)


def test_deepar_trains_serves_each_output_type_and_batch_transforms(server: Clients) -> None:
    name = f"deepar-{server.runtime}"
    desc = create(server, name, HYPERPARAMETERS)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert {"test:RMSE", "test:mean_wQuantileLoss", "train:final_loss"} <= set(metrics)
    assert metrics["test:RMSE"] > 0
    assert 0 < metrics["test:mean_wQuantileLoss"] < 1

    instances = [{"start": r["start"], "target": r["target"]} for r in panel(2, 40, 7)]
    model_from_job(server, name, IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        for types in (["mean"], ["quantiles"], ["samples"], ["mean", "quantiles", "samples"]):
            body = {
                "instances": instances,
                "configuration": {"num_samples": 6, "output_types": types,
                                  "quantiles": ["0.1", "0.9"]},
            }  # fmt: skip
            response = server.runtime_client.invoke_endpoint(
                EndpointName=name, Body=json.dumps(body), ContentType=JSON, Accept=JSON
            )
            assert response["ContentType"].startswith(JSON)
            predictions = json.loads(response["Body"].read())["predictions"]
            assert len(predictions) == 2
            for prediction in predictions:
                assert list(prediction) == types
                if "mean" in prediction:
                    assert len(prediction["mean"]) == PREDICTION
                if "quantiles" in prediction:
                    assert set(prediction["quantiles"]) == {"0.1", "0.9"}
                    low, high = prediction["quantiles"]["0.1"], prediction["quantiles"]["0.9"]
                    assert all(a <= b for a, b in zip(low, high, strict=True))
                if "samples" in prediction:
                    assert len(prediction["samples"]) == 6
                    assert all(len(path) == PREDICTION for path in prediction["samples"])
        again = server.runtime_client.invoke_endpoint(
            EndpointName=name, Body=json.dumps(body), ContentType=JSON, Accept=JSON
        )
        assert json.loads(again["Body"].read())["predictions"] == predictions
        with pytest.raises(server.runtime_client.exceptions.ClientError) as caught:
            server.runtime_client.invoke_endpoint(
                EndpointName=name,
                Body=json.dumps({"instances": [{"start": "yesterday", "target": [1.0]}]}),
                ContentType=JSON,
            )
        assert "'start'" in str(caught.value)
    finally:
        delete(server, name)

    server.s3.put_object(Bucket="data", Key=f"{name}/batch/in.jsonl", Body=jsonl(instances))
    config = {"num_samples": 5, "output_types": ["mean", "quantiles"], "quantiles": ["0.5"]}
    server.sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=name,
        BatchStrategy="SingleRecord",
        Environment={"DEEPAR_INFERENCE_CONFIG": json.dumps(config)},
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://data/{name}/batch/"}
            },
            "ContentType": JSONLINES,
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://data/{name}/batch-out/",
            "Accept": JSONLINES,
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    with contextlib.suppress(WaiterError):  # a failed job is reported by the assert below
        server.sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 900}
        )
    job = server.sagemaker.describe_transform_job(TransformJobName=name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    out = server.s3.get_object(Bucket="data", Key=f"{name}/batch-out/in.jsonl.out")
    lines = [json.loads(line) for line in out["Body"].read().decode().splitlines() if line]
    assert len(lines) == len(instances)
    for line in lines:
        assert list(line) == ["mean", "quantiles"]
        assert list(line["quantiles"]) == ["0.5"]
        assert len(line["mean"]) == PREDICTION
    server.sagemaker.delete_model(ModelName=name)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"time_freq": None}, "time_freq"),
        ({"time_freq": "3X"}, "time_freq"),
        ({"context_length": "0"}, "context_length"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"cardinality": "[2,x]"}, "cardinality"),
        ({"num_dynamic_feat": "many"}, "num_dynamic_feat"),
        ({"test_quantiles": "[0.5, 1.2]"}, "test_quantiles"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    hps = {k: v for k, v in {**HYPERPARAMETERS, **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="deepar-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hps,
            InputDataConfig=[s3_channel("train", "s3://data/deepar-bad/train/", JSONLINES)],
            OutputDataConfig={"S3OutputPath": "s3://data/deepar-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
