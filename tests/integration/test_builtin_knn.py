"""The built-in k-NN through the server with boto3: CSV training with a test channel,
`record_set`-style RecordIO training (a manifest channel with no content type), the three model
files, an endpoint answering every request and Accept type (and verbose answers), and bad
hyperparameters refused at CreateTrainingJob."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_iris, make_regression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from opensage.algorithms.knn.model import KNNModel
from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, encode_sparse, read_record_messages
from opensage.sdk.amazon import upload_numpy_to_s3_shards
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1"
CLASSIFIER = {"feature_dim": "4", "k": "5", "predictor_type": "classifier", "sample_size": "200"}
FILES = ["model_algo-1", "model_algo-1.json", "model_algo-1.labels"]

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def iris() -> Split:
    x, y = load_iris(return_X_y=True)
    parts = train_test_split(x.astype(np.float32), y.astype(np.float32), random_state=0)
    return parts[0], parts[1], parts[2], parts[3]


def create_job(
    server: Clients, name: str, channels: list[dict[str, Any]], hyperparameters: dict[str, str]
) -> None:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hyperparameters,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/knn-out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )


def model_of(server: Clients, desc: dict[str, Any], folder: Path) -> KNNModel:
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert sorted(tar.getnames()) == FILES
        tar.extractall(folder, filter="data")
    return KNNModel.load(folder)


def test_knn_trains_from_csv_and_the_endpoint_answers_every_format(
    server: Clients, iris: Split, tmp_path: Path
) -> None:
    x_train, x_test, y_train, y_test = iris
    server.s3.put_object(
        Bucket="data", Key="knn-csv/train/rows.csv", Body=encode_csv(x_train, y_train)
    )
    server.s3.put_object(
        Bucket="data", Key="knn-csv/test/rows.csv", Body=encode_csv(x_test, y_test)
    )
    name = f"knn-csv-{server.runtime}"
    create_job(
        server,
        name,
        [s3_channel("train", "s3://data/knn-csv/train/", "text/csv"),
         s3_channel("test", "s3://data/knn-csv/test/", "text/csv")],
        CLASSIFIER,
    )  # fmt: skip
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    reference = KNeighborsClassifier(5, algorithm="brute").fit(x_train, y_train)
    assert set(metrics) == {"test:accuracy"}
    assert metrics["test:accuracy"] == pytest.approx(reference.score(x_test, y_test), abs=1e-6)
    model = model_of(server, desc, tmp_path)
    np.testing.assert_array_equal(model.predict(x_test).predicted, reference.predict(x_test))

    model_name = f"knn-model-{server.runtime}"
    model_from_job(server, model_name, IMAGE, desc)
    endpoint = f"knn-endpoint-{server.runtime}"
    deploy(server, endpoint, [variant(model_name)])
    try:
        check_every_format(server, endpoint, x_test[:6], model)
    finally:
        delete(server, endpoint)
        server.sagemaker.delete_model(ModelName=model_name)


def check_every_format(server: Clients, endpoint: str, rows: np.ndarray, model: KNNModel) -> None:
    expected = model.predict(rows)
    requests = {
        "text/csv": encode_csv(rows),
        "application/json": json.dumps({"instances": [{"features": r} for r in rows.tolist()]}),
        "application/jsonlines": "".join(json.dumps({"features": r}) + "\n" for r in rows.tolist()),
        "application/x-recordio-protobuf": encode_dense(rows),
        "application/x-recordio-protobuf;sparse": encode_sparse(sp.csr_matrix(rows)),
    }  # fmt: skip
    for content_type, body in requests.items():
        for accept in ("application/json", "application/jsonlines",
                       "application/x-recordio-protobuf"):  # fmt: skip
            response = server.runtime_client.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType=content_type.split(";")[0],
                Accept=accept,
            )  # fmt: skip
            assert response["ContentType"].startswith(accept)
            got = decode(response["Body"].read(), accept, ("predicted_label",))
            assert [g["predicted_label"] for g in got] == expected.predicted.tolist(), content_type
        for accept in ("application/json; verbose=true",
                       "application/x-recordio-protobuf;verbose=true"):  # fmt: skip
            response = server.runtime_client.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType=content_type.split(";")[0],
                Accept=accept,
            )  # fmt: skip
            got = decode(response["Body"].read(), accept.split(";")[0],
                         ("predicted_label", "distances", "labels"))  # fmt: skip
            np.testing.assert_allclose([g["distances"] for g in got], expected.distances, rtol=1e-5)
            assert [g["labels"] for g in got] == expected.labels.tolist()


def decode(body: bytes, accept: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The prediction objects of a response, checking its documented shape."""
    if accept == "application/x-recordio-protobuf":
        records = read_record_messages(body)
        assert all(set(r.label) == set(keys) and not r.features for r in records)
        rows = [{k: list(r.label[k].float32_tensor.values) for k in keys} for r in records]
        for row in rows:
            row["predicted_label"] = row["predicted_label"][0]
        return rows
    if accept == "application/json":
        document = json.loads(body)
        assert list(document) == ["predictions"]
        objects: list[dict[str, Any]] = document["predictions"]
    else:
        objects = [json.loads(line) for line in body.decode().splitlines()]
    assert all(set(o) == set(keys) and isinstance(o["predicted_label"], float) for o in objects)
    return objects


def test_knn_trains_from_a_record_set_manifest_with_no_content_type(
    server: Clients, tmp_path: Path
) -> None:
    x, y = make_regression(n_samples=240, n_features=6, noise=0.5, random_state=0)
    x, y = x.astype(np.float32), y.astype(np.float32)
    prefix = f"knn-records-{server.runtime}"
    channels = []
    for channel, rows, labels in (("train", x[:200], y[:200]), ("test", x[200:], y[200:])):
        manifest = upload_numpy_to_s3_shards(
            2, server.s3, "data", f"{prefix}/{channel}", rows, labels
        )
        source = {"S3DataType": "ManifestFile", "S3Uri": manifest,
                  "S3DataDistributionType": "ShardedByS3Key"}  # fmt: skip
        channels.append({"ChannelName": channel, "DataSource": {"S3DataSource": source}})
    name = f"knn-rs-{server.runtime}"
    hyperparameters = {"feature_dim": "6", "k": "4", "predictor_type": "regressor",
                       "sample_size": "500", "index_type": "faiss.IVFFlat",
                       "faiss_index_ivf_nlists": "4"}  # fmt: skip
    create_job(server, name, channels, hyperparameters)
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert set(metrics) == {"test:mse"}
    reference = KNeighborsRegressor(4, algorithm="brute").fit(x[:200], y[:200])
    expected_mse = float(np.mean((reference.predict(x[200:]) - y[200:]) ** 2))
    assert metrics["test:mse"] <= expected_mse * 1.25
    model = model_of(server, desc, tmp_path)
    assert model.describe()["index_type"] == "faiss.IVFFlat"


@pytest.mark.parametrize(
    ("hyperparameters", "named"),
    [({"k": "5", "predictor_type": "classifier", "sample_size": "200"}, "feature_dim"),
     ({**CLASSIFIER, "k": "0"}, "k"),
     ({**CLASSIFIER, "sample_size": "many"}, "sample_size"),
     ({**CLASSIFIER, "index_type": "faiss.HNSW"}, "index_type"),
     ({**CLASSIFIER, "dimension_reduction_type": "sign"}, "dimension_reduction_target")],
)  # fmt: skip
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, hyperparameters: dict[str, str], named: str
) -> None:
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        create_job(
            server,
            "knn-bad-hp",
            [s3_channel("train", "s3://data/knn-csv/train/", "text/csv")],
            hyperparameters,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
    with pytest.raises(server.sagemaker.exceptions.ClientError, match="not found"):
        server.sagemaker.describe_training_job(TrainingJobName="knn-bad-hp")
