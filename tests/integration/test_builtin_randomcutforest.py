"""The built-in Random Cut Forest through the server with boto3: CSV and `record_set` training
with a labelled test channel (`test:f1` in FinalMetricDataList), an endpoint answering every
request and Accept type with `{"scores": [...]}`, bad hyperparameters refused at
CreateTrainingJob, and data of the wrong width failing the job with a clear reason."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opensage.algorithms.randomcutforest.model import Forest
from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, read_record_messages
from opensage.sdk.amazon import upload_numpy_to_s3_shards
from tests.algorithms.cases_randomcutforest import series
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1"
HYPERPARAMETERS = {
    "feature_dim": "4",
    "num_trees": "50",
    "num_samples_per_tree": "32",
    "mini_batch_size": "1000",
}
METRICS = {"test:f1", "test:accuracy", "test:precision", "test:recall"}
CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
REQUESTS = ((CSV, False), (JSON, False), (JSON, True), (JSONLINES, False), (RECORDIO, False))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return series(300, seed=7)


def start_job(
    server: Clients,
    name: str,
    channels: list[dict[str, Any]],
    hyperparameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=HYPERPARAMETERS if hyperparameters is None else hyperparameters,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/rcf-out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    return wait_final(server, name)


def forest_of(server: Clients, desc: dict[str, Any], tmp_path: Path) -> Forest:
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["model_algo-1"]
        tar.extractall(tmp_path, filter="data")
    return Forest.load(tmp_path)


def final_metrics(desc: dict[str, Any]) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}


def request(rows: np.ndarray, content_type: str, sparse: bool = False) -> bytes:
    if content_type == CSV:
        return encode_csv(rows)
    if content_type == JSON and sparse:
        instances = []
        for row in rows:
            keys = np.flatnonzero(row)
            tensor = {"keys": keys.tolist(), "shape": [len(row)], "values": row[keys].tolist()}
            instances.append({"data": {"features": tensor}})
        return json.dumps({"instances": instances}).encode()
    if content_type == JSON:
        return json.dumps({"instances": [{"features": row.tolist()} for row in rows]}).encode()
    if content_type == JSONLINES:
        return b"".join(json.dumps({"features": row.tolist()}).encode() + b"\n" for row in rows)
    return encode_dense(rows)


def scores(body: bytes, accept: str) -> list[float]:
    if accept == JSON:
        document = json.loads(body)
        assert list(document) == ["scores"]
        assert all(list(item) == ["score"] for item in document["scores"])
        return [item["score"] for item in document["scores"]]
    if accept == JSONLINES:
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert all(list(line) == ["score"] for line in lines)
        return [line["score"] for line in lines]
    records = read_record_messages(body)
    assert all(list(record.label) == ["score"] for record in records)
    return [record.label["score"].float32_tensor.values[0] for record in records]


def test_rcf_from_csv_with_a_test_channel_serves_every_request_and_accept_type(
    server: Clients, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, labels = data
    name = f"rcf-csv-{server.runtime}"
    server.s3.put_object(Bucket="data", Key=f"{name}/train/part-0.csv", Body=encode_csv(x))
    server.s3.put_object(Bucket="data", Key=f"{name}/test/part-0.csv", Body=encode_csv(x, labels))
    desc = start_job(
        server,
        name,
        [
            s3_channel("train", f"s3://data/{name}/train/", "text/csv;label_size=0"),
            s3_channel("test", f"s3://data/{name}/test/", "text/csv;label_size=1"),
        ],
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = final_metrics(desc)
    assert set(metrics) == METRICS
    assert 0.0 <= metrics["test:f1"] <= 1.0
    forest = forest_of(server, desc, tmp_path)
    assert (forest.num_trees, forest.num_samples_per_tree, forest.rows) == (50, 32, len(x))

    model_from_job(server, name, IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        rows = np.vstack([x[:4], x[:1] + 5]).astype(np.float32)
        expected = forest.score(rows)
        assert expected[-1] > expected[:-1].max()  # the far point is the anomaly
        for content_type, sparse in REQUESTS:
            for accept in (JSON, JSONLINES, RECORDIO):
                response = server.runtime_client.invoke_endpoint(
                    EndpointName=name,
                    Body=request(rows, content_type, sparse),
                    ContentType=content_type,
                    Accept=accept,
                )
                assert response["ContentType"].startswith(accept)
                got = scores(response["Body"].read(), accept)
                np.testing.assert_allclose(got, expected, rtol=1e-6,
                                           err_msg=f"{content_type} -> {accept}")  # fmt: skip
        with pytest.raises(server.runtime_client.exceptions.ClientError) as caught:
            server.runtime_client.invoke_endpoint(
                EndpointName=name, Body=encode_csv(x[:2, :3]), ContentType=CSV, Accept=JSON
            )
        assert "trained on 4" in str(caught.value)
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


def test_rcf_from_a_record_set_with_a_labelled_recordio_test_channel(
    server: Clients, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """What `record_set` uploads (shards, a manifest, no content type), and RecordIO test data
    whose records carry the labels."""
    x, labels = data
    name = f"rcf-recordset-{server.runtime}"
    manifest = upload_numpy_to_s3_shards(2, server.s3, "data", f"{name}/records", x)
    train = s3_channel("train", manifest)
    train["DataSource"]["S3DataSource"].update(
        S3DataType="ManifestFile", S3DataDistributionType="ShardedByS3Key"
    )
    server.s3.put_object(Bucket="data", Key=f"{name}/test/t.pbr", Body=encode_dense(x, labels))
    test = s3_channel("test", f"s3://data/{name}/test/")
    hyperparameters = {**HYPERPARAMETERS, "eval_metrics": '["precision_recall_fscore"]'}
    desc = start_job(server, name, [train, test], hyperparameters)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert set(final_metrics(desc)) == {"test:f1", "test:precision", "test:recall"}
    assert forest_of(server, desc, tmp_path).rows == len(x)


def test_data_of_another_width_fails_the_job_clearly(
    server: Clients, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = data
    name = f"rcf-width-{server.runtime}"
    server.s3.put_object(Bucket="data", Key=f"{name}/train/part-0.csv", Body=encode_csv(x))
    desc = start_job(
        server,
        name,
        [s3_channel("train", f"s3://data/{name}/train/", "text/csv;label_size=0")],
        {**HYPERPARAMETERS, "feature_dim": "6"},
    )
    assert desc["TrainingJobStatus"] == "Failed"
    assert "record 0 has 4 features but feature_dim is 6" in desc["FailureReason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_trees": "10"}, "num_trees"),
        ({"num_samples_per_tree": "4096"}, "num_samples_per_tree"),
        ({"feature_dim": None}, "feature_dim"),
        ({"eval_metrics": '["auc"]'}, "eval_metrics"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    hyperparameters = {k: v for k, v in {**HYPERPARAMETERS, **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="rcf-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hyperparameters,
            InputDataConfig=[s3_channel("train", "s3://data/rcf-bad/train/", CSV)],
            OutputDataConfig={"S3OutputPath": "s3://data/rcf-out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
