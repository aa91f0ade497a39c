"""The built-in Factorization Machines through the server with boto3: sparse RecordIO training
from S3 with a test channel, an endpoint answering JSON / JSON Lines / RecordIO in Linear
Learner's shapes, CSV refused (training and requests), a wrong feature_dim failing clearly, and
bad hyperparameters refused at CreateTrainingJob."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from opensage.formats.tensors import encode_sparse, read_record_messages
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

FM_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/factorization-machines:1"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
USERS, ITEMS = 20, 15
FEATURES = USERS + ITEMS
HYPERPARAMETERS = {
    "feature_dim": str(FEATURES),
    "num_factors": "4",
    "predictor_type": "binary_classifier",
    "epochs": "5",
    "mini_batch_size": "50",
    "linear_lr": "0.05",
    "factors_lr": "0.05",
}


@pytest.fixture(scope="module")
def data() -> tuple[Any, np.ndarray]:
    """One-hot (user, item) rows, labelled by a planted rank-2 interaction's sign."""
    rng = np.random.default_rng(0)
    n = 400
    users, items = rng.integers(0, USERS, n), rng.integers(0, ITEMS, n)
    p, q = rng.normal(size=(USERS, 2)), rng.normal(size=(ITEMS, 2))
    labels = (np.einsum("rk,rk->r", p[users], q[items]) > 0).astype(np.float32)
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([users, USERS + items], axis=1).ravel()
    x = sp.csr_matrix((np.ones(2 * n, np.float32), (rows, cols)), shape=(n, FEATURES))
    return x, labels


def create_job(
    server: Clients, name: str, channels: list[dict[str, Any]], hyperparameters: dict[str, str]
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": FM_IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hyperparameters,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/fm-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name)


def upload(server: Clients, key: str, body: bytes) -> str:
    server.s3.put_object(Bucket="data", Key=key, Body=body)
    return f"s3://data/{key.rpartition('/')[0]}/"


def model_arrays(server: Clients, desc: dict[str, Any]) -> dict[str, np.ndarray]:
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("model_algo-1")
        assert member is not None
        with np.load(io.BytesIO(member.read()), allow_pickle=False) as archive:
            return {name: archive[name] for name in ("w0_weight", "w1_weight", "v")}


def requests(x: Any) -> dict[str, bytes]:
    dense = x.toarray()
    sparse_instances = [
        {"data": {"features": {"keys": row.indices.tolist(), "shape": [FEATURES],
                               "values": row.data.tolist()}}}
        for row in x
    ]  # fmt: skip
    return {
        JSON: json.dumps({"instances": [{"features": r.tolist()} for r in dense]}).encode(),
        f"{JSON} (sparse)": json.dumps({"instances": sparse_instances}).encode(),
        JSONLINES: b"".join(json.dumps({"features": r.tolist()}).encode() + b"\n" for r in dense),
        RECORDIO: encode_sparse(x),
    }


def answers(body: bytes, accept: str) -> list[dict[str, Any]]:
    if accept == JSON:
        document = json.loads(body)
        assert list(document) == ["predictions"]
        return list(document["predictions"])
    if accept == JSONLINES:
        return [json.loads(line) for line in body.decode().splitlines()]
    records = read_record_messages(body)
    return [{k: r.label[k].float32_tensor.values[0] for k in r.label} for r in records]


def test_sparse_recordio_training_serves_json_jsonlines_and_recordio(
    server: Clients, data: tuple[Any, np.ndarray]
) -> None:
    x, labels = data
    name = f"fm-binary-{server.runtime}"
    train_uri = upload(server, f"{name}/train/part-0.pbr", encode_sparse(x[:300], labels[:300]))
    test_uri = upload(server, f"{name}/test/part-0.pbr", encode_sparse(x[300:], labels[300:]))
    channels = [s3_channel("train", train_uri, RECORDIO), s3_channel("test", test_uri, RECORDIO)]
    desc = create_job(server, name, channels, HYPERPARAMETERS)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics["test:binary_classification_accuracy"] > 0.7, metrics
    assert {"test:binary_classification_cross_entropy", "test:binary_f_beta"} <= set(metrics)

    arrays = model_arrays(server, desc)
    assert arrays["v"].shape == (FEATURES, 4)
    assert arrays["w1_weight"].shape == (FEATURES, 1)
    rows = x[300:305]
    s = rows @ arrays["v"]
    y = (arrays["w0_weight"][0] + rows @ arrays["w1_weight"][:, 0]
         + 0.5 * ((s * s).sum(1) - rows.multiply(rows) @ (arrays["v"] ** 2).sum(1)))  # fmt: skip
    expected = 1 / (1 + np.exp(-np.asarray(y, dtype=np.float64)))

    model_from_job(server, name, FM_IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        for kind, body in requests(rows).items():
            content_type = kind.split(" ")[0]
            for accept in (JSON, JSONLINES, RECORDIO):
                response = server.runtime_client.invoke_endpoint(
                    EndpointName=name, Body=body, ContentType=content_type, Accept=accept
                )
                assert response["ContentType"].startswith(accept)
                got = answers(response["Body"].read(), accept)
                assert [set(a) for a in got] == [{"score", "predicted_label"}] * 5, got
                scores = [a["score"] for a in got]
                np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5,
                                           err_msg=f"{kind} -> {accept}")  # fmt: skip
                assert [int(a["predicted_label"]) for a in got] == [int(p >= 0.5) for p in scores]
        with pytest.raises(server.runtime_client.exceptions.ClientError) as caught:
            server.runtime_client.invoke_endpoint(
                EndpointName=name, Body=b"1,0,0\n", ContentType="text/csv", Accept=JSON
            )
        assert "does not take CSV" in str(caught.value)
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


def test_csv_training_is_refused_saying_recordio_only(server: Clients) -> None:
    name = f"fm-csv-{server.runtime}"
    uri = upload(server, f"{name}/train/part-0.csv", b"1,1,0,0\n0,0,1,0\n")
    desc = create_job(server, name, [s3_channel("train", uri, "text/csv")], HYPERPARAMETERS)
    assert desc["TrainingJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert "Content type 'text/csv'" in reason, reason
    assert "application/x-recordio-protobuf" in reason, reason


def test_records_wider_than_feature_dim_fail_clearly(
    server: Clients, data: tuple[Any, np.ndarray]
) -> None:
    x, labels = data
    name = f"fm-width-{server.runtime}"
    uri = upload(server, f"{name}/train/part-0.pbr", encode_sparse(x[:50], labels[:50]))
    hyperparameters = {**HYPERPARAMETERS, "feature_dim": "10"}
    desc = create_job(server, name, [s3_channel("train", uri, RECORDIO)], hyperparameters)
    assert desc["TrainingJobStatus"] == "Failed"
    assert f"records of {FEATURES} features but feature_dim is 10" in desc["FailureReason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_factors": None}, "num_factors"),
        ({"predictor_type": "multiclass_classifier"}, "predictor_type"),
        ({"factors_lr": "-0.1"}, "factors_lr"),
        ({"factors_init_method": "uniform"}, "factors_init_scale"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    hyperparameters = {k: v for k, v in {**HYPERPARAMETERS, **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="fm-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": FM_IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hyperparameters,
            InputDataConfig=[s3_channel("train", "s3://data/fm-bad/train/", RECORDIO)],
            OutputDataConfig={"S3OutputPath": "s3://data/fm-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
