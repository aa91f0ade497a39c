"""The built-in Linear Learner through the server with boto3: train from CSV and from a
`record_set`-style manifest, deploy, invoke in every format, refuse bad hyperparameters."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, make_classification

from opensage.algorithms.linear_learner.model import LinearModel
from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, read_record_messages
from opensage.sdk.amazon import upload_numpy_to_s3_shards
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return x[:300].astype(np.float32), y[:300].astype(np.float32)


def upload(server: Clients, key: str, body: bytes) -> str:
    server.s3.put_object(Bucket="data", Key=key, Body=body)
    return f"s3://data/{key}"


def create_job(
    server: Clients, name: str, hyperparameters: dict[str, str], channels: list[dict[str, Any]]
) -> None:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hyperparameters,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/ll-out"},
        ResourceConfig=RESOURCES,
    )


def fetch_model(server: Clients, uri: str, folder: Path) -> LinearModel:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["model_algo-1"]
        tar.extractall(folder, filter="data")
    return LinearModel.load(folder)


def request(rows: np.ndarray, content_type: str) -> bytes:
    if content_type == CSV:
        return encode_csv(rows)
    if content_type == JSON:
        return json.dumps({"instances": [{"features": r.tolist()} for r in rows]}).encode()
    if content_type == JSONLINES:
        return b"".join(json.dumps({"features": r.tolist()}).encode() + b"\n" for r in rows)
    return encode_dense(rows)


def decode(body: bytes, accept: str) -> list[dict[str, Any]]:
    if accept == JSON:
        document = json.loads(body)
        assert list(document) == ["predictions"]
        rows: list[dict[str, Any]] = document["predictions"]
        return rows
    if accept == JSONLINES:
        return [json.loads(line) for line in body.decode().splitlines()]
    return [
        {key: list(record.label[key].float32_tensor.values) for key in record.label}
        for record in read_record_messages(body)
    ]


def test_csv_training_logs_metrics_and_the_endpoint_answers_every_format(
    server: Clients, cancer: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = cancer
    name = f"ll-csv-{server.runtime}"
    channels = [
        s3_channel("train", upload(server, f"{name}/train/d", encode_csv(x[:200], y[:200])), CSV),
        s3_channel(
            "validation", upload(server, f"{name}/val/d", encode_csv(x[200:], y[200:])), CSV
        ),
    ]
    hyperparameters = {"predictor_type": "binary_classifier", "mini_batch_size": "50"}
    create_job(server, name, {**hyperparameters, "epochs": "5", "feature_dim": "30"}, channels)
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics["validation:binary_classification_accuracy"] > 0.85
    assert {"validation:objective_loss", "validation:roc_auc_score"} <= set(metrics)
    model = fetch_model(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)

    model_name = f"{name}-model"
    model_from_job(server, model_name, IMAGE, desc)
    endpoint = f"{name}-ep"
    deploy(server, endpoint, [variant(model_name)])
    try:
        rows = x[200:203]
        expected_scores, expected_labels = model.predict(rows)
        for content_type in (CSV, JSON, JSONLINES, RECORDIO):
            for accept in (JSON, JSONLINES, RECORDIO, None):
                extra = {"Accept": accept} if accept else {}
                response = server.runtime_client.invoke_endpoint(
                    EndpointName=endpoint,
                    Body=request(rows, content_type),
                    ContentType=content_type,
                    **extra,
                )
                assert response["ContentType"] == (accept or JSON)
                answer = decode(response["Body"].read(), accept or JSON)
                assert [set(row) for row in answer] == [{"score", "predicted_label"}] * 3
                scores = [np.ravel(row["score"])[0] for row in answer]
                labels = [np.ravel(row["predicted_label"])[0] for row in answer]
                np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)
                assert labels == expected_labels.tolist()
                if accept in (JSON, JSONLINES, None):
                    assert all(isinstance(row["predicted_label"], int) for row in answer)
    finally:
        delete(server, endpoint)


def test_record_set_manifest_without_content_type_trains_a_multiclass_model(
    server: Clients, tmp_path: Path
) -> None:
    x, y = make_classification(
        n_samples=240, n_features=5, n_informative=4, n_redundant=0, n_classes=3, random_state=0
    )
    name = f"ll-pbr-{server.runtime}"
    manifest = upload_numpy_to_s3_shards(
        2, server.s3, "data", f"{name}/train", x.astype(np.float32), y.astype(np.float32)
    )
    train = {
        "ChannelName": "train",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "ManifestFile",
                "S3Uri": manifest,
                "S3DataDistributionType": "ShardedByS3Key",
            }
        },
    }
    test_uri = upload(server, f"{name}/test/d", encode_dense(x.astype(np.float32), y))
    channels = [train, s3_channel("test", test_uri, RECORDIO)]
    hyperparameters = {
        "predictor_type": "multiclass_classifier",
        "num_classes": "3",
        "mini_batch_size": "40",
        "epochs": "5",
        "feature_dim": "5",
    }
    create_job(server, name, hyperparameters, channels)
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics["test:multiclass_accuracy"] > 0.6
    assert 0 < metrics["test:dcg"] <= 1
    model = fetch_model(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)
    probabilities, labels = model.predict(x.astype(np.float32))
    assert probabilities.shape == (240, 3)
    assert float(np.mean(labels == y)) == pytest.approx(metrics["test:multiclass_accuracy"])


@pytest.mark.parametrize(
    ("hyperparameters", "named"),
    [({"epochs": "3"}, "predictor_type"),
     ({"predictor_type": "binary_classifier", "epochs": "0"}, "epochs"),
     ({"predictor_type": "regressor", "learning_rate": "fast"}, "learning_rate"),
     ({"predictor_type": "multiclass_classifier"}, "num_classes")],
)  # fmt: skip
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, hyperparameters: dict[str, str], named: str
) -> None:
    uri = upload(server, "ll-bad/train/d", encode_csv(np.ones((4, 2), np.float32), np.zeros(4)))
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        create_job(server, "ll-bad-hp", hyperparameters, [s3_channel("train", uri, CSV)])
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"'{named}'" in error["Message"]
