"""The built-in Image Classification through the server with boto3: training from RecordIO
`.rec` files in S3 with a validation channel (`validation:accuracy` in FinalMetricDataList), an
endpoint answering PNG and JPEG images in JSON and JSON Lines, a second job continuing from the
first's model.tar.gz through a `model` channel (incremental training) and one of another
shape failing clearly, and bad hyperparameters refused at CreateTrainingJob."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from opensage.algorithms.image_classification.synthetic import encode, shapes
from opensage.formats.image_records import ImageRecord, encode_rec
from tests.integration.conftest import ROLE, Clients, log_messages, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
RECORDIO = "application/x-recordio"
MODEL = "application/x-sagemaker-model"
JSON = "application/json"
JSONLINES = "application/jsonlines"
SIZE = 16


def rec(count: int, seed: int) -> bytes:
    images, labels = shapes(count, SIZE, seed=seed)
    return encode_rec(
        ImageRecord((float(label),), encode(image), id=i)
        for i, (image, label) in enumerate(zip(images, labels, strict=True))
    )


def hyperparameters(**changes: str) -> dict[str, str]:
    return {"num_classes": "3", "num_training_samples": "30", "num_layers": "20",
            "image_shape": f"3,{SIZE},{SIZE}", "epochs": "1", "mini_batch_size": "16",
            "learning_rate": "0.05", **changes}  # fmt: skip


def create(
    server: Clients, name: str, channels: list[dict[str, Any]], hps: dict[str, str]
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hps,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/imgcls-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name, timeout=240.0)


def test_image_classification_trains_serves_and_continues(server: Clients) -> None:
    if server.runtime != "process":
        pytest.skip("a built-in runs alike under both runtimes; the sandbox is tested elsewhere")
    name = f"imgcls-{server.runtime}"
    server.s3.put_object(Bucket="data", Key=f"{name}/train/train.rec", Body=rec(30, 1))
    server.s3.put_object(Bucket="data", Key=f"{name}/validation/val.rec", Body=rec(15, 2))
    channels = [
        s3_channel("train", f"s3://data/{name}/train/", RECORDIO),
        s3_channel("validation", f"s3://data/{name}/validation/", RECORDIO),
    ]
    desc = create(server, name, channels, hyperparameters())
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert 0 <= metrics["validation:accuracy"] <= 1
    log = "\n".join(log_messages(server, name))
    assert "Epoch[0] Validation-accuracy=" in log

    model_from_job(server, name, IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        images, _ = shapes(2, SIZE, seed=5)
        for content_type, body in (("image/png", encode(images[0])),
                                   ("image/jpeg", encode(images[1], "JPEG"))):  # fmt: skip
            response = server.runtime_client.invoke_endpoint(
                EndpointName=name, Body=body, ContentType=content_type, Accept=JSON
            )
            assert response["ContentType"] == JSON
            probabilities = json.loads(response["Body"].read())
            assert len(probabilities) == 3
            assert np.sum(probabilities) == pytest.approx(1.0, abs=1e-5)
            response = server.runtime_client.invoke_endpoint(
                EndpointName=name, Body=body, ContentType=content_type, Accept=JSONLINES
            )
            line = json.loads(response["Body"].read())
            assert line["prediction"] == pytest.approx(probabilities, abs=1e-6)
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)

    second = f"{name}-incremental"
    model = s3_channel("model", desc["ModelArtifacts"]["S3ModelArtifacts"], MODEL)
    again = create(server, second, [*channels, model], hyperparameters())
    assert again["TrainingJobStatus"] == "Completed", again.get("FailureReason")
    assert "Incremental training" in "\n".join(log_messages(server, second))

    wrong = create(server, f"{name}-mismatch", [*channels, model], hyperparameters(num_classes="4"))
    assert wrong["TrainingJobStatus"] == "Failed"
    assert "num_classes=3 but this job has num_classes=4" in wrong["FailureReason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_classes": None}, "num_classes"),
        ({"num_training_samples": None}, "num_training_samples"),
        ({"num_layers": "19"}, "num_layers"),
        ({"image_shape": "3,224"}, "image_shape"),
        ({"optimizer": "adagrad"}, "optimizer"),
        ({"augmentation_type": "rotate"}, "augmentation_type"),
        ({"learning_rate": "2"}, "learning_rate"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    hps = {k: v for k, v in {**hyperparameters(), **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="imgcls-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hps,
            InputDataConfig=[s3_channel("train", "s3://data/imgcls-bad/train/", RECORDIO)],
            OutputDataConfig={"S3OutputPath": "s3://data/imgcls-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
