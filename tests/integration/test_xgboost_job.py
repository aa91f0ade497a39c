"""The built-in XGBoost through the server: CSV and libsvm, with and without validation."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xgboost
from sklearn.datasets import dump_svmlight_file, load_breast_cancer, load_svmlight_file

from opensage.formats.tensors import encode_dense, read_record_messages
from tests.integration.conftest import (
    ROLE,
    XGBOOST_IMAGE,
    Clients,
    s3_channel,
    wait_final,
)
from tests.integration.hosting import delete, deploy, model_from_job, variant


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return x[:200], y[:200]


def upload(server: Clients, key: str, body: bytes) -> str:
    server.s3.put_object(Bucket="data", Key=key, Body=body)
    return f"s3://data/{key}"


def as_csv(x: np.ndarray, y: np.ndarray) -> bytes:
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack([y, x]), delimiter=",", fmt="%.10g")
    return buffer.getvalue().encode()


def as_libsvm(x: np.ndarray, y: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    dump_svmlight_file(x, y, buffer, zero_based=True)
    return buffer.getvalue()


def load_model(server: Clients, uri: str) -> xgboost.Booster:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("xgboost-model")
        assert member is not None
        booster = xgboost.Booster()
        booster.load_model(bytearray(member.read()))
        return booster


@pytest.mark.parametrize(
    ("fmt", "content_type", "validation"),
    [("csv", "text/csv", True), ("csv", "text/csv", False), ("libsvm", "text/libsvm", True),
     ("libsvm", None, False)],
)  # fmt: skip
def test_xgboost_trains_and_predicts_like_plain_xgboost(
    server: Clients,
    data: tuple[np.ndarray, np.ndarray],
    fmt: str,
    content_type: str | None,
    validation: bool,
    tmp_path: Path,
) -> None:
    x, y = data
    encode = as_csv if fmt == "csv" else as_libsvm
    name = f"xgb-{fmt}-{'val' if validation else 'noval'}-{content_type is None}".replace("_", "")
    channels = [s3_channel("train", upload(server, f"{name}/train/d", encode(x[:150], y[:150])),
                           content_type)]  # fmt: skip
    if validation:
        uri = upload(server, f"{name}/validation/d", encode(x[150:], y[150:]))
        channels.append(s3_channel("validation", uri, content_type))
    params = {"objective": "binary:logistic", "max_depth": "3", "eta": "0.3", "seed": "0"}
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        HyperParameters={**params, "num_round": "5", "eval_metric": "logloss"},
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/xgb-out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert set(metrics) == (
        {"train:logloss", "validation:logloss"} if validation else {"train:logloss"}
    )
    assert 0 < metrics["train:logloss"] < 0.7

    booster = load_model(server, desc["ModelArtifacts"]["S3ModelArtifacts"])
    if fmt == "libsvm":  # libsvm leaves zeros out: they are missing values, not 0.0
        sparse, labels = load_svmlight_file(io.BytesIO(as_libsvm(x[:150], y[:150])), n_features=30)
        train = xgboost.DMatrix(sparse, label=labels)
    else:
        train = xgboost.DMatrix(x[:150], label=y[:150])
    plain = xgboost.train({**params, "eval_metric": "logloss"}, train, num_boost_round=5)
    test = xgboost.DMatrix(x[150:])
    np.testing.assert_allclose(booster.predict(test), plain.predict(test), rtol=1e-5, atol=1e-6)


def test_xgboost_in_pipe_mode_trains_the_same_model(
    server: Clients, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    half = len(y[:150]) // 2
    upload(server, "xgb-pipe/train/a.csv", as_csv(x[:half], y[:half]))
    upload(server, "xgb-pipe/train/b.csv", as_csv(x[half:150], y[half:150]))
    params = {"objective": "binary:logistic", "max_depth": "3", "eta": "0.3", "seed": "0"}
    server.sagemaker.create_training_job(
        TrainingJobName="xgb-pipe",
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "Pipe"},
        HyperParameters={**params, "num_round": "5"},
        InputDataConfig=[s3_channel("train", "s3://data/xgb-pipe/train/", "text/csv")],
        OutputDataConfig={"S3OutputPath": "s3://data/xgb-out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    desc = wait_final(server, "xgb-pipe")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    booster = load_model(server, desc["ModelArtifacts"]["S3ModelArtifacts"])
    plain = xgboost.train(params, xgboost.DMatrix(x[:150], label=y[:150]), num_boost_round=5)
    test = xgboost.DMatrix(x[150:])
    np.testing.assert_allclose(booster.predict(test), plain.predict(test), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("hyperparameters", "named"),
    [({"num_round": "3", "eta": "7"}, "eta"), ({"eta": "0.1"}, "num_round"),
     ({"num_round": "three"}, "num_round"), ({"num_round": "3", "etaa": "1"}, "etaa")],
)  # fmt: skip
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, hyperparameters: dict[str, str], named: str
) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    uri = upload(server, "xgb-bad/train/d", as_csv(x[:50], y[:50]))
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="xgb-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hyperparameters,
            InputDataConfig=[s3_channel("train", uri, "text/csv")],
            OutputDataConfig={"S3OutputPath": "s3://data/xgb-out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
    with pytest.raises(server.sagemaker.exceptions.ClientError, match="not found"):
        server.sagemaker.describe_training_job(TrainingJobName="xgb-bad-hp")


@pytest.mark.parametrize("mode", ["File", "Pipe"])
def test_xgboost_reads_recordio_protobuf_shards(
    server: Clients, data: tuple[np.ndarray, np.ndarray], mode: str
) -> None:
    x, y = data
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    upload(server, f"xgb-pbr-{mode}/train/shard-0", encode_dense(x32[:80], y32[:80]))
    upload(server, f"xgb-pbr-{mode}/train/shard-1", encode_dense(x32[80:150], y32[80:150]))
    params = {"objective": "binary:logistic", "max_depth": "3", "seed": "0"}
    name = f"xgb-pbr-{mode.lower()}"
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": mode},
        HyperParameters={**params, "num_round": "4"},
        InputDataConfig=[
            s3_channel(
                "train", f"s3://data/xgb-pbr-{mode}/train/", "application/x-recordio-protobuf"
            )
        ],
        OutputDataConfig={"S3OutputPath": "s3://data/xgb-out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    booster = load_model(server, desc["ModelArtifacts"]["S3ModelArtifacts"])
    plain = xgboost.train(params, xgboost.DMatrix(x32[:150], label=y32[:150]), num_boost_round=4)
    test = xgboost.DMatrix(x32[150:])
    np.testing.assert_allclose(booster.predict(test), plain.predict(test), rtol=1e-5, atol=1e-6)


def _malformed_cases() -> list[tuple[str, str, bytes, str]]:
    rows = encode_dense(np.ones((3, 4), np.float32), np.zeros(3, np.float32))
    size = len(rows) // 3
    bad_magic = rows[:size] + b"\x00\x00\x00\x00" + rows[size + 4 :]
    return [
        ("text/csv", "table.csv", b"1,2,3\n0,abc,4\n", "record 1 at byte 6"),
        ("text/csv", "table.csv", b"1,2,3\n0,1,2,3\n", "record 1 at byte 6"),
        ("application/x-recordio-protobuf", "shard", rows[:-5], f"record 2 at byte {2 * size}"),
        ("application/x-recordio-protobuf", "shard", bad_magic, f"record 1 at byte {size}"),
    ]


@pytest.mark.parametrize(("content_type", "file", "body", "where"), _malformed_cases())
def test_malformed_data_fails_the_job_naming_channel_file_and_record(
    server: Clients, content_type: str, file: str, body: bytes, where: str
) -> None:
    name = f"xgb-broken-{abs(hash((content_type, body))) % 10**8}"
    upload(server, f"{name}/train/part/{file}", body)
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        HyperParameters={"num_round": "2"},
        InputDataConfig=[s3_channel("train", f"s3://data/{name}/train/", content_type)],
        OutputDataConfig={"S3OutputPath": "s3://data/xgb-out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith(
        f"ClientError: Could not read file 'part/{file}' of channel 'train': {where}"
    ), desc["FailureReason"]


def test_xgboost_model_from_recordio_answers_every_format(
    server: Clients, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    prefix = f"xgb-formats-{server.runtime}"
    upload(server, f"{prefix}/train/shard-0", encode_dense(x32[:150], y32[:150]))
    params = {"objective": "binary:logistic", "max_depth": "3", "seed": "0"}
    server.sagemaker.create_training_job(
        TrainingJobName=prefix,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        HyperParameters={**params, "num_round": "4"},
        InputDataConfig=[
            s3_channel("train", f"s3://data/{prefix}/train/", "application/x-recordio-protobuf")
        ],
        OutputDataConfig={"S3OutputPath": "s3://data/xgb-out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    desc = wait_final(server, prefix)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    rows = x32[150:155]
    booster = load_model(server, desc["ModelArtifacts"]["S3ModelArtifacts"])
    expected = booster.predict(xgboost.DMatrix(rows))
    model_from_job(server, prefix, XGBOOST_IMAGE, desc)
    deploy(server, prefix, [variant(prefix)])
    requests = {
        "text/csv": _features_csv(rows),
        "text/libsvm": as_libsvm(rows, np.zeros(len(rows))),
        "application/x-recordio-protobuf": encode_dense(rows),
    }
    try:
        for content_type, body in requests.items():
            for accept in ("text/csv", "application/json", "application/jsonlines",
                           "application/x-recordio-protobuf"):  # fmt: skip
                response = server.runtime_client.invoke_endpoint(
                    EndpointName=prefix, Body=body, ContentType=content_type, Accept=accept
                )
                assert response["ContentType"] == accept
                scores = _scores(response["Body"].read(), accept)
                np.testing.assert_allclose(scores, expected, rtol=1e-5, err_msg=content_type)
    finally:
        delete(server, prefix)
        server.sagemaker.delete_model(ModelName=prefix)


def _features_csv(rows: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()


def _scores(body: bytes, accept: str) -> list[float]:
    """The score of each row, whatever the answer's documented shape."""
    if accept == "text/csv":
        return [float(line) for line in body.decode().splitlines()]
    if accept == "application/json":
        document = json.loads(body)
        assert list(document) == ["predictions"]
        return [p["score"] for p in document["predictions"]]
    if accept == "application/jsonlines":
        return [json.loads(line)["score"] for line in body.decode().splitlines()]
    records = read_record_messages(body)
    assert all(list(r.label) == ["score"] and not r.features for r in records)
    return [r.label["score"].float32_tensor.values[0] for r in records]
