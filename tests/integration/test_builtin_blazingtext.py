"""The built-in BlazingText through the server with boto3: supervised training on text/plain in
S3 with a validation channel (`validation:accuracy` in FinalMetricDataList), an endpoint
answering top-k labels; skipgram training writing vectors.txt into model.tar.gz and an endpoint
answering word vectors; a bad mode refused at CreateTrainingJob; an empty training file failing
the job clearly."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

pytest.importorskip("torch")

from opensage.algorithms.blazingtext.synthetic import cluster_corpus, labelled_sentences
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant


@pytest.fixture
def server(server: Clients) -> Clients:
    """A built-in runs alike under both runtimes (the sandbox is tested elsewhere): this file
    runs under the process runtime only, to keep the suite fast."""
    if server.runtime != "process":
        pytest.skip("built-ins are tested under the process runtime")
    return server


IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
TEXT = "text/plain"
JSON = "application/json"
JSONLINES = "application/jsonlines"
TINY = {"vector_dim": "10", "epochs": "3", "min_count": "1"}


def create(
    server: Clients, name: str, channels: list[dict[str, Any]], hps: dict[str, str]
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hps,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/blazingtext-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name, timeout=180.0)


def upload_text(server: Clients, key: str, lines: list[str]) -> None:
    server.s3.put_object(Bucket="data", Key=key, Body=("\n".join(lines) + "\n").encode())


def artifact_names(server: Clients, desc: dict[str, Any]) -> list[str]:
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return tar.getnames()


def invoke(server: Clients, name: str, body: bytes, kind: str) -> Any:
    response = server.runtime_client.invoke_endpoint(
        EndpointName=name, Body=body, ContentType=kind, Accept=kind
    )
    assert response["ContentType"].startswith(kind)
    return response["Body"].read()


def test_supervised_trains_with_validation_and_answers_top_k(server: Clients) -> None:
    name = f"bt-supervised-{server.runtime}"
    lines = labelled_sentences(400, labels=3, seed=11, topical=0.5)
    upload_text(server, f"{name}/train/train.txt", lines[:300])
    upload_text(server, f"{name}/validation/validation.txt", lines[300:])
    channels = [
        s3_channel("train", f"s3://data/{name}/train/", TEXT),
        s3_channel("validation", f"s3://data/{name}/validation/", TEXT),
    ]
    hps = {**TINY, "mode": "supervised", "word_ngrams": "2", "buckets": "10000",
           "learning_rate": "0.1", "epochs": "10"}  # fmt: skip
    desc = create(server, name, channels, hps)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics["validation:accuracy"] > 0.7
    assert "model.bin" in artifact_names(server, desc)

    model_from_job(server, name, IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        texts = ["t0w1 t0w2 t0w3 t0w4 c1", "t2w1 t2w2 t2w3 t2w4 c0"]
        body = json.dumps({"instances": texts, "configuration": {"k": 2}}).encode()
        answer = json.loads(invoke(server, name, body, JSON))
        assert isinstance(answer, list)
        assert len(answer) == 2
        for row in answer:
            assert set(row) == {"label", "prob"}
            assert len(row["label"]) == 2
            assert row["prob"] == sorted(row["prob"], reverse=True)
        assert answer[0]["label"][0] == "__label__0"
        assert answer[1]["label"][0] == "__label__2"
        lines_body = b"".join(json.dumps({"source": t, "k": 1}).encode() + b"\n" for t in texts)
        per_line = [json.loads(x) for x in invoke(server, name, lines_body, JSONLINES).splitlines()]
        assert [row["label"] for row in per_line] == [["__label__0"], ["__label__2"]]
        with pytest.raises(server.runtime_client.exceptions.ClientError) as caught:
            server.runtime_client.invoke_endpoint(
                EndpointName=name, Body=body, ContentType=JSON, Accept=JSONLINES
            )
        assert "Accept" in str(caught.value)
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


def test_skipgram_writes_vectors_and_answers_word_vectors(server: Clients) -> None:
    name = f"bt-skipgram-{server.runtime}"
    corpus, pairs = cluster_corpus(120, clusters=3, size=5, seed=12)
    upload_text(server, f"{name}/train/corpus.txt", corpus)
    upload_text(server, f"{name}/evaluation/pairs.tsv", pairs)
    channels = [
        s3_channel("train", f"s3://data/{name}/train/", TEXT),
        s3_channel("evaluation", f"s3://data/{name}/evaluation/", TEXT),
    ]
    desc = create(server, name, channels, {**TINY, "mode": "skipgram"})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert "train:mean_rho" in metrics
    assert {"vectors.txt", "vectors.bin", "eval.json"} <= set(artifact_names(server, desc))

    model_from_job(server, name, IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        body = json.dumps({"instances": ["g0x1", "unknown-word"]}).encode()
        answer = json.loads(invoke(server, name, body, JSON))
        assert [row["word"] for row in answer] == ["g0x1", "unknown-word"]
        assert len(answer[0]["vector"]) == 10
        assert any(answer[0]["vector"])
        assert answer[1]["vector"] == [0.0] * 10
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


def test_bad_mode_is_refused_at_create(server: Clients) -> None:
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="bt-bad-mode",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            HyperParameters={"mode": "glove"},
            InputDataConfig=[s3_channel("train", "s3://data/bt-bad/train/", TEXT)],
            OutputDataConfig={"S3OutputPath": "s3://data/blazingtext-out"},
            ResourceConfig=RESOURCES,
        )
    assert "ValidationException" in str(caught.value)
    assert "Hyperparameter 'mode'" in str(caught.value)


def test_an_empty_training_file_fails_the_job(server: Clients) -> None:
    name = f"bt-empty-{server.runtime}"
    server.s3.put_object(Bucket="data", Key=f"{name}/train/corpus.txt", Body=b"\n  \n")
    channel = s3_channel("train", f"s3://data/{name}/train/", TEXT)
    desc = create(server, name, [channel], {**TINY, "mode": "cbow"})
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: ")
    assert "No data in channel 'train'" in desc["FailureReason"]
