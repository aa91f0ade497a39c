"""The built-in PCA through the server with boto3: CSV and `record_set` training, an endpoint
answering every request and Accept type, and hyperparameters refused at CreateTrainingJob."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import numpy as np
import pytest
from sklearn.decomposition import PCA

from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, read_record_messages
from opensage.sdk.amazon import upload_numpy_to_s3_shards
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

PCA_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3)) @ rng.normal(size=(3, 6)) + 0.1 * rng.normal(size=(240, 6)) + 2
    return x.astype(np.float32)


def start_job(
    server: Clients, name: str, channel: dict[str, Any], hyperparameters: dict[str, str]
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": PCA_IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hyperparameters,
        InputDataConfig=[channel],
        OutputDataConfig={"S3OutputPath": "s3://data/pca-out"},
        ResourceConfig=RESOURCES,
    )
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    return desc


def model_arrays(server: Clients, desc: dict[str, Any]) -> dict[str, np.ndarray]:
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("model_algo-1")
        assert member is not None
        with np.load(io.BytesIO(member.read()), allow_pickle=False) as archive:
            return {name: archive[name] for name in ("v", "s", "mean") if name in archive.files}


def check_against_sklearn(arrays: dict[str, np.ndarray], x: np.ndarray, k: int) -> None:
    reference = PCA(k, svd_solver="full").fit(x.astype(np.float64))
    assert arrays["v"].shape == (x.shape[1], k)
    np.testing.assert_allclose(arrays["s"] ** 2 / (len(x) - 1), reference.explained_variance_,
                               rtol=1e-2)  # fmt: skip
    np.testing.assert_allclose(np.abs(arrays["v"].T @ reference.components_.T), np.eye(k),
                               atol=1e-2)  # fmt: skip
    np.testing.assert_allclose(arrays["mean"], reference.mean_, rtol=1e-4, atol=1e-4)


def request(rows: np.ndarray, content_type: str) -> bytes:
    if content_type == CSV:
        return encode_csv(rows)
    if content_type == JSON:
        return json.dumps({"instances": [{"features": row.tolist()} for row in rows]}).encode()
    if content_type == JSONLINES:
        return b"".join(json.dumps({"features": row.tolist()}).encode() + b"\n" for row in rows)
    return encode_dense(rows)


def projections(body: bytes, accept: str) -> list[list[float]]:
    if accept == JSON:
        document = json.loads(body)
        assert list(document) == ["projections"]
        assert all(list(item) == ["projection"] for item in document["projections"])
        return [item["projection"] for item in document["projections"]]
    if accept == JSONLINES:
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert all(list(line) == ["projection"] for line in lines)
        return [line["projection"] for line in lines]
    records = read_record_messages(body)
    assert all(list(record.label) == ["projection"] for record in records)
    return [list(record.label["projection"].float32_tensor.values) for record in records]


def test_pca_from_csv_serves_every_request_and_accept_type(
    server: Clients, data: np.ndarray
) -> None:
    name = f"pca-csv-{server.runtime}"
    server.s3.put_object(Bucket="data", Key=f"{name}/train/part-0.csv", Body=encode_csv(data))
    channel = s3_channel("train", f"s3://data/{name}/train/", "text/csv;label_size=0")
    hyperparameters = {"feature_dim": "6", "mini_batch_size": "100", "num_components": "3"}
    desc = start_job(server, name, channel, hyperparameters)
    arrays = model_arrays(server, desc)
    check_against_sklearn(arrays, data, 3)

    model_from_job(server, name, PCA_IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        rows = data[:4]
        expected = (rows.astype(np.float64) - arrays["mean"]) @ arrays["v"]
        for content_type in (CSV, JSON, JSONLINES, RECORDIO):
            for accept in (JSON, JSONLINES, RECORDIO):
                response = server.runtime_client.invoke_endpoint(
                    EndpointName=name,
                    Body=request(rows, content_type),
                    ContentType=content_type,
                    Accept=accept,
                )
                assert response["ContentType"].startswith(accept)
                got = projections(response["Body"].read(), accept)
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4,
                                           err_msg=f"{content_type} -> {accept}")  # fmt: skip
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


def test_pca_randomized_from_a_record_set_manifest(server: Clients, data: np.ndarray) -> None:
    """What `estimator.record_set` uploads: RecordIO shards, a manifest, no content type."""
    name = f"pca-recordset-{server.runtime}"
    manifest = upload_numpy_to_s3_shards(2, server.s3, "data", f"{name}/records", data)
    channel = s3_channel("train", manifest)
    channel["DataSource"]["S3DataSource"].update(
        S3DataType="ManifestFile", S3DataDistributionType="ShardedByS3Key"
    )
    hyperparameters = {
        "feature_dim": "6",
        "mini_batch_size": "50",
        "num_components": "2",
        "algorithm_mode": "randomized",
        "subtract_mean": "True",
    }
    desc = start_job(server, name, channel, hyperparameters)
    check_against_sklearn(model_arrays(server, desc), data, 2)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_components": None}, "num_components"),
        ({"feature_dim": "0"}, "feature_dim"),
        ({"algorithm_mode": "fast"}, "algorithm_mode"),
        ({"mini_batch_size": "ten"}, "mini_batch_size"),
        ({"extra_components": "-2"}, "extra_components"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    base = {"feature_dim": "6", "mini_batch_size": "10", "num_components": "2"}
    hyperparameters = {k: v for k, v in {**base, **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="pca-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": PCA_IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hyperparameters,
            InputDataConfig=[s3_channel("train", "s3://data/pca-bad/train/", CSV)],
            OutputDataConfig={"S3OutputPath": "s3://data/pca-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
