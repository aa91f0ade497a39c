"""The built-in K-Means through the server with boto3: CSV and `record_set`-style RecordIO
training (File and Pipe mode), metrics, the model artifact, an endpoint answering every request
and Accept type, and bad hyperparameters refused at CreateTrainingJob."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_blobs

from opensage.algorithms.kmeans.model import KMeansModel, Settings, fit
from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, encode_sparse, read_record_messages
from opensage.sdk.amazon import upload_numpy_to_s3_shards
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"
HYPERPARAMETERS = {"k": "3", "feature_dim": "4", "mini_batch_size": "100", "epochs": "2"}
KEYS = {"closest_cluster", "distance_to_cluster"}


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    x, _ = make_blobs(300, n_features=4, centers=3, random_state=0)
    return x.astype(np.float32)


def expected_centroids(x: np.ndarray) -> np.ndarray:
    """The core on the same rows in the same order: what the job must write."""
    config = Settings(k=3, mini_batch_size=100)
    batches = [x[start : start + 100] for start in range(0, len(x), 100)]
    return fit(batches + batches, config, 4).centroids


def create_job(
    server: Clients,
    name: str,
    channels: list[dict[str, Any]],
    mode: str = "File",
    hyperparameters: dict[str, str] | None = None,
) -> None:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": mode},
        HyperParameters=HYPERPARAMETERS if hyperparameters is None else hyperparameters,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/kmeans-out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )


def centroids_of(server: Clients, desc: dict[str, Any], tmp_path: Path) -> np.ndarray:
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["model_algo-1"]
        tar.extractall(tmp_path, filter="data")
    return KMeansModel.load(tmp_path).centroids


def test_kmeans_trains_from_csv_and_the_endpoint_answers_every_format(
    server: Clients, data: np.ndarray, tmp_path: Path
) -> None:
    server.s3.put_object(Bucket="data", Key="km-csv/train/rows.csv", Body=encode_csv(data))
    server.s3.put_object(Bucket="data", Key="km-csv/test/rows.pbr", Body=encode_dense(data[:60]))
    name = f"km-csv-{server.runtime}"
    create_job(
        server,
        name,
        [
            s3_channel("train", "s3://data/km-csv/train/", "text/csv;label_size=0"),
            s3_channel("test", "s3://data/km-csv/test/"),
        ],
        hyperparameters={**HYPERPARAMETERS, "eval_metrics": '["msd", "ssd"]'},
    )
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert set(metrics) == {"train:msd", "test:msd", "test:ssd"}
    assert metrics["test:ssd"] == pytest.approx(60 * metrics["test:msd"], rel=1e-4)
    centroids = centroids_of(server, desc, tmp_path)
    np.testing.assert_allclose(centroids, expected_centroids(data), rtol=1e-5, atol=1e-5)

    model = f"km-model-{server.runtime}"
    model_from_job(server, model, IMAGE, desc)
    endpoint = f"km-endpoint-{server.runtime}"
    deploy(server, endpoint, [variant(model)])
    try:
        check_every_format(server, endpoint, data[:5], KMeansModel(centroids))
    finally:
        delete(server, endpoint)
        server.sagemaker.delete_model(ModelName=model)


def check_every_format(
    server: Clients, endpoint: str, rows: np.ndarray, model: KMeansModel
) -> None:
    clusters, distances = model.predict(rows)
    expected = [[float(c), float(d)] for c, d in zip(clusters, distances, strict=True)]
    requests = {
        "text/csv": encode_csv(rows),
        "application/json": json.dumps({"instances": [{"features": r} for r in rows.tolist()]}),
        "application/jsonlines": "".join(json.dumps({"features": r}) + "\n" for r in rows.tolist()),
        "application/x-recordio-protobuf": encode_dense(rows),
        "application/x-recordio-protobuf;sparse": encode_sparse(sp.csr_matrix(rows)),
    }
    for content_type, body in requests.items():
        for accept in ("application/json", "application/jsonlines", "text/csv",
                       "application/x-recordio-protobuf"):  # fmt: skip
            response = server.runtime_client.invoke_endpoint(
                EndpointName=endpoint,
                Body=body,
                ContentType=content_type.split(";")[0],
                Accept=accept,
            )
            assert response["ContentType"].startswith(accept)
            got = decode(response["Body"].read(), accept)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=content_type)


def decode(body: bytes, accept: str) -> list[list[float]]:
    """The [closest_cluster, distance_to_cluster] pairs of a response, checking its shape."""
    if accept == "text/csv":
        return [[float(v) for v in line.split(",")] for line in body.decode().splitlines()]
    if accept == "application/x-recordio-protobuf":
        records = read_record_messages(body)
        assert all(set(r.label) == KEYS and not r.features for r in records)
        return [
            [
                r.label[k].float32_tensor.values[0]
                for k in ("closest_cluster", "distance_to_cluster")
            ]
            for r in records
        ]
    if accept == "application/json":
        document = json.loads(body)
        assert list(document) == ["predictions"]
        objects = document["predictions"]
    else:
        objects = [json.loads(line) for line in body.decode().splitlines()]
    assert all(set(o) == KEYS and isinstance(o["closest_cluster"], float) for o in objects)
    return [[o["closest_cluster"], o["distance_to_cluster"]] for o in objects]


@pytest.mark.parametrize("mode", ["File", "Pipe"])
def test_kmeans_trains_from_a_record_set_manifest_with_no_content_type(
    server: Clients, data: np.ndarray, mode: str, tmp_path: Path
) -> None:
    prefix = f"km-records-{mode}"
    manifest = upload_numpy_to_s3_shards(2, server.s3, "data", prefix, data)
    channel = {
        "ChannelName": "train",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "ManifestFile",
                "S3Uri": manifest,
                "S3DataDistributionType": "ShardedByS3Key",
            }
        },
    }
    name = f"km-rs-{mode.lower()}-{server.runtime}"
    create_job(server, name, [channel], mode)
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert {m["MetricName"] for m in desc["FinalMetricDataList"]} == {"train:msd"}
    centroids = centroids_of(server, desc, tmp_path)
    np.testing.assert_allclose(centroids, expected_centroids(data), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("hyperparameters", "named"),
    [({"feature_dim": "4"}, "k"), ({"k": "0", "feature_dim": "4"}, "k"),
     ({"k": "three", "feature_dim": "4"}, "k"),
     ({"k": "3", "feature_dim": "4", "init_method": "kmeans+"}, "init_method"),
     ({"k": "3", "feature_dim": "4", "eval_metrics": '["mse"]'}, "eval_metrics"),
     ({"k": "3", "feature_dim": "4", "centers": "9"}, "centers")],
)  # fmt: skip
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, hyperparameters: dict[str, str], named: str
) -> None:
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        create_job(
            server,
            "km-bad-hp",
            [s3_channel("train", "s3://data/km-csv/train/", "text/csv;label_size=0")],
            hyperparameters=hyperparameters,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
