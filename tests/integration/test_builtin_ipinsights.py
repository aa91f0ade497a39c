"""The built-in IP Insights through the server with boto3: CSV training with a validation
channel (its `validation:discriminator_auc` in FinalMetricDataList), an endpoint answering CSV,
JSON and JSON Lines (verbose too), and the refusals: malformed addresses and RecordIO fail the
job with a clear reason, bad hyperparameters are refused at CreateTrainingJob."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.algorithms.cases_ipinsights import csv_body, login_rows
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/ipinsights:1"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
HYPERPARAMETERS = {
    "num_entity_vectors": "200",
    "vector_dim": "8",
    "epochs": "4",
    "learning_rate": "0.01",
    "mini_batch_size": "200",
}
ROWS = [("user_1", "10.0.0.1"), ("user_2", "192.168.7.9"), ("someone_new", "8.8.8.8")]


def create_job(
    server: Clients,
    name: str,
    channels: list[dict[str, Any]],
    hyperparameters: dict[str, str] | None = None,
) -> None:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=HYPERPARAMETERS if hyperparameters is None else hyperparameters,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/ipi-out"},
        ResourceConfig=RESOURCES,
    )


def channel(server: Clients, key: str, name: str, body: bytes, content_type: str = CSV) -> Any:
    server.s3.put_object(Bucket="data", Key=f"{key}/part-0.csv", Body=body)
    return s3_channel(name, f"s3://data/{key}/", content_type)


def requests() -> dict[str, bytes]:
    return {
        CSV: csv_body(ROWS),
        JSON: json.dumps(
            {
                "instances": [
                    {"data": {"features": {"values": list(ROWS[0])}}},
                    {"features": list(ROWS[1])},
                    {"features": list(ROWS[2])},
                ]
            }
        ).encode(),
        JSONLINES: b"".join(json.dumps({"features": list(row)}).encode() + b"\n" for row in ROWS),
    }


def decode(body: bytes, accept: str) -> list[dict[str, Any]]:
    if accept.split(";")[0] == JSON:
        document = json.loads(body)
        assert list(document) == ["predictions"]
        rows: list[dict[str, Any]] = document["predictions"]
        return rows
    return [json.loads(line) for line in body.decode().splitlines()]


def test_ipinsights_trains_with_validation_and_serves_every_format(server: Clients) -> None:
    name = f"ipi-csv-{server.runtime}"
    train = login_rows(users=50, per_user=20, seed=1)
    validation = login_rows(users=50, per_user=4, seed=2)
    create_job(
        server,
        name,
        [
            channel(server, f"{name}/train", "train", csv_body(train)),
            channel(server, f"{name}/validation", "validation", csv_body(validation)),
        ],
    )
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert set(metrics) == {"validation:discriminator_auc"}
    assert 0.5 < metrics["validation:discriminator_auc"] <= 1.0

    model_from_job(server, name, IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        reference: list[float] | None = None
        for content_type, body in requests().items():
            for accept in (JSON, JSONLINES):
                response = server.runtime_client.invoke_endpoint(
                    EndpointName=name, Body=body, ContentType=content_type, Accept=accept
                )
                assert response["ContentType"].split(";")[0] == accept
                rows = decode(response["Body"].read(), accept)
                assert [list(row) for row in rows] == [["dot_product"]] * len(ROWS)
                dots = [row["dot_product"] for row in rows]
                reference = reference or dots
                np.testing.assert_allclose(dots, reference, rtol=1e-6, err_msg=content_type)
        for accept in (f"{JSON};verbose=true", f"{JSONLINES};verbose=True"):
            response = server.runtime_client.invoke_endpoint(
                EndpointName=name, Body=csv_body(ROWS), ContentType=CSV, Accept=accept
            )
            for row in decode(response["Body"].read(), accept):
                assert set(row) == {"dot_product", "entity_embedding", "ip_embedding"}
                assert len(row["entity_embedding"]) == len(row["ip_embedding"]) == 8
                dot = float(np.dot(row["entity_embedding"], row["ip_embedding"]))
                assert row["dot_product"] == pytest.approx(dot, rel=1e-5, abs=1e-6)
        errors = server.runtime_client.exceptions
        with pytest.raises(errors.ModelError, match=r"line 2: '10\.0\.0' is not an IPv4"):
            server.runtime_client.invoke_endpoint(
                EndpointName=name, Body=b"u1, 1.2.3.4\nu2, 10.0.0\n", ContentType=CSV
            )
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


@pytest.mark.parametrize(
    ("kind", "body", "content_type", "reason"),
    [
        (
            "bad-ip",
            b"u1, 1.2.3.4\nu2, 5.6.7.8\nu3, 10.0.0\n",
            CSV,
            "ClientError: Could not read file 'part-0.csv' of channel 'train': line 3: "
            "'10.0.0' is not an IPv4 address",
        ),
        (
            "recordio",
            b"u1, 1.2.3.4\n",
            RECORDIO,
            "ClientError: Content type 'application/x-recordio-protobuf' of channel 'train' is "
            "not accepted by the IP Insights algorithm; use one of: text/csv.",
        ),
    ],
)
def test_bad_training_data_fails_the_job_clearly(
    server: Clients, kind: str, body: bytes, content_type: str, reason: str
) -> None:
    name = f"ipi-{kind}-{server.runtime}"
    create_job(server, name, [channel(server, name, "train", body, content_type)])
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith(reason), desc["FailureReason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"random_negative_sampling_rate": "0", "shuffled_negative_sampling_rate": "0"},
            "random_negative_sampling_rate",
        ),
        ({"vector_dim": "2"}, "vector_dim"),
        ({"num_entity_vectors": None}, "num_entity_vectors"),
        ({"mini_batch_size": "500001"}, "mini_batch_size"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    hyperparameters = {k: v for k, v in {**HYPERPARAMETERS, **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        create_job(
            server,
            "ipi-bad-hp",
            [s3_channel("train", "s3://data/ipi-bad/train/", CSV)],
            hyperparameters,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
