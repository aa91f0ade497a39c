"""The built-in LDA through the server with boto3: training from a `record_set` manifest (with a
test channel: `test:pwll`) and from CSV, an endpoint answering every request and Accept type,
bad hyperparameters refused at CreateTrainingJob, and negative counts failing the job."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense, encode_sparse, read_record_messages
from opensage.sdk.amazon import upload_numpy_to_s3_shards
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

LDA_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/lda:1"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
WORDS = 12
TOPICS = 3


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    """Word counts of 300 documents from 3 topics over 12 words (4 words each)."""
    rng = np.random.default_rng(0)
    beta = np.zeros((TOPICS, WORDS))
    for topic in range(TOPICS):
        beta[topic, topic * 4 : (topic + 1) * 4] = 0.25
    theta = rng.dirichlet(np.full(TOPICS, 0.3), size=300)
    counts = [rng.multinomial(40, t @ beta) for t in theta]
    return np.asarray(counts, dtype=np.float32)


def hyperparameters(**changes: str) -> dict[str, str]:
    return {"num_topics": str(TOPICS), "feature_dim": str(WORDS), "mini_batch_size": "300",
            **changes}  # fmt: skip


def create(
    server: Clients,
    name: str,
    channels: list[dict[str, Any]],
    hps: dict[str, str],
    mode: str = "File",
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": LDA_IMAGE, "TrainingInputMode": mode},
        HyperParameters=hps,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/lda-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name)


def model_arrays(server: Clients, desc: dict[str, Any]) -> dict[str, np.ndarray]:
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("model_algo-1")
        assert member is not None
        with np.load(io.BytesIO(member.read()), allow_pickle=False) as archive:
            return {name: archive[name] for name in ("alpha", "beta")}


def check_topics(arrays: dict[str, np.ndarray]) -> None:
    """Three topics, each holding (almost all of) one block of four words."""
    assert arrays["alpha"].shape == (TOPICS,)
    assert arrays["beta"].shape == (TOPICS, WORDS)
    blocks = arrays["beta"].reshape(TOPICS, TOPICS, 4).sum(axis=2)
    assert sorted(int(i) for i in blocks.argmax(axis=1)) == [0, 1, 2]
    assert blocks.max(axis=1).min() > 0.9


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


def mixtures(body: bytes, accept: str) -> list[list[float]]:
    if accept == JSON:
        document = json.loads(body)
        assert list(document) == ["predictions"]
        assert all(list(item) == ["topic_mixture"] for item in document["predictions"])
        return [item["topic_mixture"] for item in document["predictions"]]
    if accept == JSONLINES:
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert all(list(line) == ["topic_mixture"] for line in lines)
        return [line["topic_mixture"] for line in lines]
    records = read_record_messages(body)
    assert all(list(record.label) == ["topic_mixture"] for record in records)
    return [list(record.label["topic_mixture"].float32_tensor.values) for record in records]


def test_lda_from_a_record_set_with_a_test_channel(server: Clients, data: np.ndarray) -> None:
    """What `estimator.record_set` uploads (RecordIO shards, a manifest, no content type), and a
    test channel: `test:pwll` lands in FinalMetricDataList."""
    name = f"lda-recordset-{server.runtime}"
    manifest = upload_numpy_to_s3_shards(2, server.s3, "data", f"{name}/records", data)
    train = s3_channel("train", manifest)
    train["DataSource"]["S3DataSource"].update(
        S3DataType="ManifestFile", S3DataDistributionType="ShardedByS3Key"
    )
    server.s3.put_object(Bucket="data", Key=f"{name}/test/part-0", Body=encode_dense(data[:60]))
    test = s3_channel("test", f"s3://data/{name}/test/", RECORDIO)
    desc = create(server, name, [train, test], hyperparameters())
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert set(metrics) == {"test:pwll"}
    assert np.log(1 / WORDS) < metrics["test:pwll"] < 0  # better than uniform words
    check_topics(model_arrays(server, desc))


def test_lda_from_csv_serves_every_request_and_accept_type(
    server: Clients, data: np.ndarray
) -> None:
    name = f"lda-csv-{server.runtime}"
    server.s3.put_object(Bucket="data", Key=f"{name}/train/part-0.csv", Body=encode_csv(data))
    channel = s3_channel("train", f"s3://data/{name}/train/", "text/csv;label_size=0")
    desc = create(server, name, [channel], hyperparameters())
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    check_topics(model_arrays(server, desc))

    model_from_job(server, name, LDA_IMAGE, desc)
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
                got = mixtures(response["Body"].read(), accept)
                assert np.shape(got) == (len(rows), TOPICS)
                np.testing.assert_allclose(np.sum(got, axis=1), 1.0, rtol=1e-5)
                reference = got if reference is None else reference
                np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6,
                                           err_msg=f"{content_type} -> {accept}")  # fmt: skip
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


def test_lda_in_pipe_mode_reads_recordio_and_refuses_csv(server: Clients, data: np.ndarray) -> None:
    name = f"lda-pipe-{server.runtime}"
    body = encode_sparse(sp.csr_matrix(data))
    server.s3.put_object(Bucket="data", Key=f"{name}/train/part-0.pbr", Body=body)
    channel = s3_channel("train", f"s3://data/{name}/train/", RECORDIO)
    desc = create(server, name, [channel], hyperparameters(), mode="Pipe")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    check_topics(model_arrays(server, desc))

    server.s3.put_object(Bucket="data", Key=f"{name}-csv/train/part-0.csv", Body=encode_csv(data))
    channel = s3_channel("train", f"s3://data/{name}-csv/train/", "text/csv;label_size=0")
    desc = create(server, f"{name}-csv", [channel], hyperparameters(), mode="Pipe")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "CSV in File mode only" in desc["FailureReason"]


def test_negative_counts_fail_the_job_clearly(server: Clients, data: np.ndarray) -> None:
    name = f"lda-negative-{server.runtime}"
    bad = data.copy()
    bad[7, 3] = -1
    server.s3.put_object(Bucket="data", Key=f"{name}/train/part-0.csv", Body=encode_csv(bad))
    channel = s3_channel("train", f"s3://data/{name}/train/", "text/csv;label_size=0")
    desc = create(server, name, [channel], hyperparameters())
    assert desc["TrainingJobStatus"] == "Failed"
    assert "record 7" in desc["FailureReason"]
    assert "non-negative integer word counts" in desc["FailureReason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_topics": None}, "num_topics"),
        ({"mini_batch_size": None}, "mini_batch_size"),
        ({"alpha0": "0"}, "alpha0"),
        ({"max_restarts": "0"}, "max_restarts"),
        ({"tol": "-1"}, "tol"),
        ({"num_topics": "13"}, "num_topics"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    hps = {k: v for k, v in {**hyperparameters(), **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="lda-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": LDA_IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hps,
            InputDataConfig=[s3_channel("train", "s3://data/lda-bad/train/", CSV)],
            OutputDataConfig={"S3OutputPath": "s3://data/lda-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
