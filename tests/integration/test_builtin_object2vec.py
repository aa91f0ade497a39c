"""The built-in Object2Vec through the server with boto3: training from JSON Lines in S3 with a
validation channel (`validation:accuracy` in FinalMetricDataList), an endpoint (its model made
with `INFERENCE_PREFERRED_MODE=embedding`) answering scores and embeddings in JSON and JSON
Lines, bad hyperparameters refused at CreateTrainingJob, and an out-of-vocabulary token id
failing the job with a reason naming the line."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, variant


@pytest.fixture
def server(server: Clients) -> Clients:
    """A built-in runs alike under both runtimes (the sandbox is tested elsewhere): this file
    runs under the process runtime only, to keep the suite fast."""
    if server.runtime != "process":
        pytest.skip("built-ins are tested under the process runtime")
    return server


IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/object2vec:1"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
JSON = "application/json"
JSONLINES = "application/jsonlines"
VOCAB = 20
ENC_DIM = 8


def pairs(seed: int, n: int) -> list[dict[str, Any]]:
    """in0 = [a, x], in1 = [b]: label 1 when a == b (half the pairs)."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        a = int(rng.integers(VOCAB))
        b = a if rng.random() < 0.5 else int((a + rng.integers(1, VOCAB)) % VOCAB)
        records.append({"label": int(a == b), "in0": [a, int(rng.integers(VOCAB))], "in1": [b]})
    return records


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def hyperparameters(**changes: str) -> dict[str, str]:
    return {"enc0_max_seq_len": "4", "enc0_vocab_size": str(VOCAB), "enc_dim": str(ENC_DIM),
            "enc0_network": "pooled_embedding", "enc0_token_embedding_dim": "8",
            "comparator_list": "abs_diff,hadamard", "mlp_dim": "8", "mlp_layers": "1",
            "epochs": "3", "mini_batch_size": "16", "learning_rate": "0.01", **changes}  # fmt: skip


def create(
    server: Clients, name: str, channels: list[dict[str, Any]], hps: dict[str, str]
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hps,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/object2vec-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name, timeout=180.0)


def results(body: bytes, accept: str, key: str) -> list[list[float]]:
    if accept == JSON:
        document = json.loads(body)
        assert list(document) == ["predictions"]
        rows = document["predictions"]
    else:
        rows = [json.loads(line) for line in body.decode().splitlines()]
    assert all(list(row) == [key] for row in rows), rows
    return [row[key] for row in rows]


def test_object2vec_trains_from_json_lines_and_serves_scores_and_embeddings(
    server: Clients,
) -> None:
    name = f"object2vec-{server.runtime}"
    server.s3.put_object(Bucket="data", Key=f"{name}/train/part-0.jsonl", Body=jsonl(pairs(0, 200)))
    server.s3.put_object(
        Bucket="data", Key=f"{name}/validation/part-0.jsonl", Body=jsonl(pairs(1, 40))
    )
    channels = [
        s3_channel("train", f"s3://data/{name}/train/", JSONLINES),
        s3_channel("validation", f"s3://data/{name}/validation/", JSONLINES),
    ]
    desc = create(server, name, channels, hyperparameters())
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert 0.0 <= metrics["validation:accuracy"] <= 1.0
    assert metrics["validation:cross_entropy"] > 0

    server.sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"],
            "Environment": {"INFERENCE_PREFERRED_MODE": "embedding"},
        },
        ExecutionRoleArn=ROLE,
    )
    deploy(server, name, [variant(name)])
    try:
        records = pairs(2, 5)
        both = [{"in0": r["in0"], "in1": r["in1"]} for r in records]
        first = [{"in0": r["in0"]} for r in records]
        answers: dict[str, list[list[list[float]]]] = {"scores": [], "embeddings": []}
        for key, instances in (("scores", both), ("embeddings", first)):
            for content_type in (JSON, JSONLINES):
                body = (
                    json.dumps({"instances": instances}).encode()
                    if content_type == JSON
                    else jsonl(instances)
                )
                for accept in (JSON, JSONLINES):
                    response = server.runtime_client.invoke_endpoint(
                        EndpointName=name, Body=body, ContentType=content_type, Accept=accept
                    )
                    assert response["ContentType"].startswith(accept)
                    answers[key].append(results(response["Body"].read(), accept, key))
        for got in answers["scores"]:
            assert np.shape(got) == (5, 2)
            np.testing.assert_allclose(np.sum(got, axis=1), 1.0, rtol=1e-5)
            np.testing.assert_allclose(got, answers["scores"][0], rtol=1e-6)
        for got in answers["embeddings"]:
            assert np.shape(got) == (5, ENC_DIM)
            np.testing.assert_allclose(got, answers["embeddings"][0], rtol=1e-6)
        cut = server.runtime_client.invoke_endpoint(
            EndpointName=name,
            Body=json.dumps({"instances": [{"in0": r["in0"][:1]} for r in records]}).encode(),
            ContentType=JSON,
            Accept=JSON,
        )
        short = results(cut["Body"].read(), JSON, "embeddings")
        truncated = server.runtime_client.invoke_endpoint(
            EndpointName=name,
            Body=json.dumps({"instances": first}).encode(),
            ContentType=f"{JSON}; infer_max_seqlens=1,1",
            Accept=JSON,
        )
        assert results(truncated["Body"].read(), JSON, "embeddings") == short
        with pytest.raises(server.runtime_client.exceptions.ClientError) as caught:
            server.runtime_client.invoke_endpoint(
                EndpointName=name,
                Body=json.dumps({"instances": [both[0], first[0]]}).encode(),
                ContentType=JSON,
                Accept=JSON,
            )
        assert "Mixed records" in str(caught.value)
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


def test_an_out_of_vocabulary_id_fails_the_job_naming_the_line(server: Clients) -> None:
    name = f"object2vec-oov-{server.runtime}"
    records = [*pairs(0, 6), {"label": 1, "in0": [3, VOCAB + 5], "in1": [3]}]
    server.s3.put_object(Bucket="data", Key=f"{name}/train/part-0.jsonl", Body=jsonl(records))
    channel = s3_channel("train", f"s3://data/{name}/train/", JSONLINES)
    desc = create(server, name, [channel], hyperparameters())
    assert desc["TrainingJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert "line 7" in reason
    assert f"token id {VOCAB + 5}" in reason
    assert "enc0_vocab_size" in reason


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"enc0_vocab_size": None}, "enc0_vocab_size"),
        ({"enc0_max_seq_len": "5001"}, "enc0_max_seq_len"),
        ({"enc1_network": "hcnn"}, "enc1_vocab_size"),
        ({"comparator_list": "hadamard,cosine"}, "comparator_list"),
        (
            {"output_layer": "mean_squared_error", "negative_sampling_rate": "1"},
            "negative_sampling_rate",
        ),
        (
            {"token_embedding_storage_type": "row_sparse", "optimizer": "adadelta"},
            "token_embedding_storage_type",
        ),
        ({"mini_batch_size": "10001"}, "mini_batch_size"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    hps = {k: v for k, v in {**hyperparameters(), **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="object2vec-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hps,
            InputDataConfig=[s3_channel("train", "s3://data/o2v-bad/train/", JSONLINES)],
            OutputDataConfig={"S3OutputPath": "s3://data/object2vec-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
