"""The built-in NTM through the server with boto3: training from RecordIO in S3 with validation
and auxiliary (vocab.txt) channels (`validation:total_loss` in FinalMetricDataList, top words in
the logs), an endpoint answering every request and Accept type, bad hyperparameters refused at
CreateTrainingJob, and rows wider than feature_dim failing the job clearly."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("torch")

from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, encode_sparse, read_record_messages
from tests.integration.conftest import ROLE, Clients, log_messages, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

NTM_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/ntm:1"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
WORDS = 12
TOPICS = 3


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    """Word counts of 60 documents from 3 topics over 12 words (4 words each)."""
    rng = np.random.default_rng(0)
    beta = np.zeros((TOPICS, WORDS))
    for topic in range(TOPICS):
        beta[topic, topic * 4 : (topic + 1) * 4] = 0.25
    theta = rng.dirichlet(np.full(TOPICS, 0.3), size=60)
    return np.asarray([rng.multinomial(30, t @ beta) for t in theta], dtype=np.float32)


def hyperparameters(**changes: str) -> dict[str, str]:
    return {"num_topics": str(TOPICS), "feature_dim": str(WORDS), "mini_batch_size": "16",
            "epochs": "3", "optimizer": "adam", **changes}  # fmt: skip


def create(
    server: Clients, name: str, channels: list[dict[str, Any]], hps: dict[str, str]
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": NTM_IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hps,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/ntm-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name, timeout=180.0)


def projection(server: Clients, desc: dict[str, Any]) -> np.ndarray:
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("model_algo-1")
        assert member is not None
        with np.load(io.BytesIO(member.read()), allow_pickle=False) as archive:
            return np.asarray(archive["projection_weight"])


def request(rows: np.ndarray, content_type: str, sparse: bool = False) -> bytes:
    if content_type == CSV:
        return encode_csv(rows)
    if content_type == JSON and sparse:
        instances = []
        for row in rows:
            keys = np.flatnonzero(row)
            tensor = {"keys": keys.tolist(), "shape": [WORDS], "values": row[keys].tolist()}
            instances.append({"data": {"features": tensor}})
        return json.dumps({"instances": instances}).encode()
    if content_type == JSON:
        return json.dumps({"instances": [{"features": row.tolist()} for row in rows]}).encode()
    if content_type == JSONLINES:
        return b"".join(json.dumps({"features": row.tolist()}).encode() + b"\n" for row in rows)
    return encode_sparse(sp.csr_matrix(rows)) if sparse else encode_dense(rows)


def weights(body: bytes, accept: str) -> list[list[float]]:
    if accept == JSON:
        document = json.loads(body)
        assert list(document) == ["predictions"]
        assert all(list(item) == ["topic_weights"] for item in document["predictions"])
        return [item["topic_weights"] for item in document["predictions"]]
    if accept == JSONLINES:
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert all(list(line) == ["topic_weights"] for line in lines)
        return [line["topic_weights"] for line in lines]
    records = read_record_messages(body)
    assert all(list(record.label) == ["topic_weights"] for record in records)
    return [list(record.label["topic_weights"].float32_tensor.values) for record in records]


def test_ntm_trains_with_validation_and_vocab_and_serves_every_format(
    server: Clients, data: np.ndarray
) -> None:
    name = f"ntm-recordio-{server.runtime}"
    server.s3.put_object(
        Bucket="data", Key=f"{name}/train/part-0.pbr", Body=encode_sparse(sp.csr_matrix(data))
    )
    server.s3.put_object(
        Bucket="data", Key=f"{name}/validation/part-0.pbr", Body=encode_dense(data[:20])
    )
    vocab = "\n".join(f"word{i}" for i in range(WORDS)) + "\n"
    server.s3.put_object(Bucket="data", Key=f"{name}/auxiliary/vocab.txt", Body=vocab.encode())
    channels = [
        s3_channel("train", f"s3://data/{name}/train/", RECORDIO),
        s3_channel("validation", f"s3://data/{name}/validation/", RECORDIO),
        s3_channel("auxiliary", f"s3://data/{name}/auxiliary/", "text/plain"),
    ]
    desc = create(server, name, channels, hyperparameters())
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert "validation:total_loss" in metrics
    assert metrics["validation:total_loss"] > 0
    assert projection(server, desc).shape == (WORDS, TOPICS)
    log = "\n".join(log_messages(server, name))
    assert log.count("[topic ") == TOPICS
    assert "[topic 0] word" in log
    assert "Topic uniqueness" in log

    model_from_job(server, name, NTM_IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        rows = data[:5]
        reference: list[list[float]] | None = None
        for content_type, sparse in (
            (CSV, False),
            (JSON, False),
            (JSON, True),
            (JSONLINES, False),
            (RECORDIO, False),
            (RECORDIO, True),
        ):
            for accept in (JSON, JSONLINES, RECORDIO):
                response = server.runtime_client.invoke_endpoint(
                    EndpointName=name,
                    Body=request(rows, content_type, sparse),
                    ContentType=content_type,
                    Accept=accept,
                )
                assert response["ContentType"].startswith(accept)
                got = weights(response["Body"].read(), accept)
                assert np.shape(got) == (len(rows), TOPICS)
                np.testing.assert_allclose(np.sum(got, axis=1), 1.0, rtol=1e-5)
                reference = got if reference is None else reference
                np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6,
                                           err_msg=f"{content_type} -> {accept}")  # fmt: skip
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


def test_rows_wider_than_feature_dim_fail_the_job(server: Clients, data: np.ndarray) -> None:
    name = f"ntm-wide-{server.runtime}"
    server.s3.put_object(Bucket="data", Key=f"{name}/train/part-0.csv", Body=encode_csv(data))
    channel = s3_channel("train", f"s3://data/{name}/train/", "text/csv;label_size=0")
    desc = create(server, name, [channel], hyperparameters(feature_dim="10"))
    assert desc["TrainingJobStatus"] == "Failed"
    assert "has 12 words" in desc["FailureReason"]
    assert "feature_dim is 10" in desc["FailureReason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_topics": None}, "num_topics"),
        ({"feature_dim": None}, "feature_dim"),
        ({"num_topics": "1"}, "num_topics"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"encoder_layers": "30,x"}, "encoder_layers"),
        ({"sub_sample": "0"}, "sub_sample"),
        ({"mini_batch_size": "10001"}, "mini_batch_size"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    hps = {k: v for k, v in {**hyperparameters(), **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="ntm-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": NTM_IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hps,
            InputDataConfig=[s3_channel("train", "s3://data/ntm-bad/train/", CSV)],
            OutputDataConfig={"S3OutputPath": "s3://data/ntm-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
