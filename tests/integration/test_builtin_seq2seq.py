"""The built-in seq2seq through the server with boto3: training on RecordIO train and validation
channels plus a vocab channel from S3 (validation perplexity, accuracy and BLEU in
FinalMetricDataList), an endpoint answering JSON (with attention matrices) and RecordIO, a batch
transform of JSON Lines, a missing vocab channel failing the job clearly and bad
hyperparameters refused at CreateTrainingJob."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from botocore.exceptions import WaiterError

pytest.importorskip("torch")

from opensage.algorithms.seq2seq.data import encode_records
from opensage.formats.tensors import read_record_messages
from tests.algorithms.cases_seq2seq import VOCAB, reversal
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant


@pytest.fixture
def server(server: Clients) -> Clients:
    """A built-in runs alike under both runtimes (the sandbox is tested elsewhere): this file
    runs under the process runtime only, to keep the suite fast."""
    if server.runtime != "process":
        pytest.skip("built-ins are tested under the process runtime")
    return server


IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/seq2seq:1"
RESOURCES = {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1}
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
HYPERPARAMETERS = {
    "rnn_num_hidden": "16",
    "num_embed_source": "8",
    "num_embed_target": "8",
    "batch_size": "16",
    "checkpoint_frequency_num_batches": "10",
    "max_num_batches": "20",
    "learning_rate": "0.01",
    "bleu_sample_size": "-1",
    "beam_size": "2",
}


def upload(server: Clients, name: str, vocab: bool = True) -> list[dict[str, Any]]:
    put = server.s3.put_object
    put(Bucket="data", Key=f"{name}/train/train.rec", Body=encode_records(reversal(0, 120)))
    put(Bucket="data", Key=f"{name}/validation/val.rec", Body=encode_records(reversal(1, 20)))
    channels = [
        s3_channel("train", f"s3://data/{name}/train/", RECORDIO),
        s3_channel("validation", f"s3://data/{name}/validation/", RECORDIO),
    ]
    if vocab:
        for file in ("vocab.src.json", "vocab.trg.json"):
            put(Bucket="data", Key=f"{name}/vocab/{file}", Body=json.dumps(VOCAB).encode())
        channels.append(s3_channel("vocab", f"s3://data/{name}/vocab/"))
    return channels


def create(
    server: Clients, name: str, channels: list[dict[str, Any]], hps: dict[str, str]
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hps,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/seq2seq-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name, timeout=180.0)


def test_seq2seq_trains_serves_and_transforms(server: Clients) -> None:
    name = f"seq2seq-{server.runtime}"
    desc = create(server, name, upload(server, name), HYPERPARAMETERS)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics["validation:perplexity"] >= 1
    assert 0 <= metrics["validation:accuracy"] <= 1
    assert 0 <= metrics["validation:bleu"] <= 1

    model_from_job(server, name, IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        sentences = ["1 2 3", "4 5 6 7"]
        body = {
            "instances": [
                {"data": s, "configuration": {"attention_matrix": "true"}} for s in sentences
            ]
        }
        response = server.runtime_client.invoke_endpoint(
            EndpointName=name, Body=json.dumps(body), ContentType=JSON, Accept=JSON
        )
        predictions = json.loads(response["Body"].read())["predictions"]
        assert len(predictions) == 2
        for sentence, prediction in zip(sentences, predictions, strict=True):
            rows = len(prediction["target"].split())
            assert len(prediction["matrix"]) == rows
            assert all(len(row) == len(sentence.split()) for row in prediction["matrix"])
        ids = [[VOCAB[w] for w in s.split()] for s in sentences]
        response = server.runtime_client.invoke_endpoint(
            EndpointName=name,
            Body=encode_records({"source": ids}),
            ContentType=RECORDIO,
            Accept=RECORDIO,
        )
        assert response["ContentType"].startswith(RECORDIO)
        records = read_record_messages(response["Body"].read())
        words = list(VOCAB)
        decoded = [
            " ".join(words[i] for i in record.features["target"].int32_tensor.values)
            for record in records
        ]
        assert decoded == [p["target"] for p in predictions]
        with pytest.raises(server.runtime_client.exceptions.ClientError) as caught:
            server.runtime_client.invoke_endpoint(
                EndpointName=name, Body=json.dumps(body), ContentType=JSON, Accept=RECORDIO
            )
        assert "does not match" in str(caught.value)
    finally:
        delete(server, name)

    lines = "".join(json.dumps({"source": s}) + "\n" for s in sentences).encode()
    server.s3.put_object(Bucket="data", Key=f"{name}/batch/in.jsonl", Body=lines)
    server.sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=name,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://data/{name}/batch/"}
            },
            "ContentType": JSONLINES,
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://data/{name}/batch-out/",
            "Accept": JSONLINES,
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    with contextlib.suppress(WaiterError):  # a failed job is reported by the assert below
        server.sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 900}
        )
    job = server.sagemaker.describe_transform_job(TransformJobName=name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    out = server.s3.get_object(Bucket="data", Key=f"{name}/batch-out/in.jsonl.out")
    targets = [json.loads(line) for line in out["Body"].read().decode().splitlines() if line]
    assert targets == [{"target": p["target"]} for p in predictions]
    server.sagemaker.delete_model(ModelName=name)


def test_a_missing_vocab_channel_fails_the_job_clearly(server: Clients) -> None:
    name = f"seq2seq-novocab-{server.runtime}"
    desc = create(server, name, upload(server, name, vocab=False), HYPERPARAMETERS)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "Channel 'vocab' is required" in desc["FailureReason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"rnn_num_hidden": "15"}, "rnn_num_hidden"),
        ({"encoder_type": "transformer"}, "encoder_type"),
        ({"embed_dropout_source": "1.5"}, "embed_dropout_source"),
        ({"rnn_attention_type": "luong"}, "rnn_attention_type"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str], named: str
) -> None:
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="seq2seq-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            HyperParameters={**HYPERPARAMETERS, **change},
            InputDataConfig=upload(server, "seq2seq-bad"),
            OutputDataConfig={"S3OutputPath": "s3://data/seq2seq-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
