"""The built-in Object Detection through the server with boto3 (process runtime only: the
sandbox runtime is covered by other built-ins): training from RecordIO `.rec` files in S3 with
train and validation channels (`validation:mAP` in FinalMetricDataList, the SageMaker model
files in model.tar.gz), an endpoint answering a PNG with the `prediction` form and the
annotation=1 pixel form, bad hyperparameters refused at CreateTrainingJob, and a single-label
record failing the job clearly."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

pytest.importorskip("torch")

from opensage.algorithms.object_detection.synthetic import encode, scenes
from opensage.formats.image_records import ImageRecord, encode_rec
from tests.algorithms.cases_object_detection import rec
from tests.integration.conftest import ROLE, Clients, log_messages, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}
RECORDIO = "application/x-recordio"
SIZE = 40


def hyperparameters(**changes: str) -> dict[str, str]:
    return {"num_classes": "2", "num_training_samples": "16", "base_network": "resnet-50",
            "width_multiplier": "0.03125", "epochs": "1", "mini_batch_size": "8",
            "optimizer": "adam", "learning_rate": "0.003", **changes}  # fmt: skip


def only_process(server: Clients) -> None:
    if server.runtime != "process":
        pytest.skip("the sandbox runtime is covered by the other built-ins' tests")


def create(
    server: Clients, name: str, channels: list[dict[str, Any]], hps: dict[str, str]
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hps,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/od-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name, timeout=240.0)


def test_object_detection_trains_on_recordio_and_serves_images(server: Clients) -> None:
    only_process(server)
    name = f"od-recordio-{server.runtime}"
    images, objects = scenes(24, SIZE, seed=5)
    server.s3.put_object(
        Bucket="data", Key=f"{name}/train/train.rec", Body=rec(images[:16], objects[:16])
    )
    validation = rec(images[16:], objects[16:])
    server.s3.put_object(Bucket="data", Key=f"{name}/validation/val.rec", Body=validation)
    channels = [
        s3_channel("train", f"s3://data/{name}/train/", RECORDIO),
        s3_channel("validation", f"s3://data/{name}/validation/", RECORDIO),
    ]
    desc = create(server, name, channels, hyperparameters())
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert 0.0 <= metrics["validation:mAP"] <= 1.0
    log = "\n".join(log_messages(server, name))
    assert "validation mAP <score>=(" in log
    assert "trains from scratch" in log  # use_pretrained_model defaults to 1
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert {"model_algo_1-0000.params", "model_algo_1-symbol.json", "hyperparams.json"} <= set(
            tar.getnames()
        )

    model_from_job(server, name, IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        png = encode(scenes(1, 64, seed=11)[0][0])
        response = server.runtime_client.invoke_endpoint(
            EndpointName=name, Body=png, ContentType="image/png", Accept="application/json"
        )
        assert response["ContentType"].startswith("application/json")
        document = json.loads(response["Body"].read())
        assert list(document) == ["prediction"]
        assert all(len(row) == 6 and 0 <= row[1] <= 1 for row in document["prediction"])
        response = server.runtime_client.invoke_endpoint(
            EndpointName=name,
            Body=png,
            ContentType="image/png",
            Accept="application/json;annotation=1",
        )
        document = json.loads(response["Body"].read())
        assert document["image_size"] == [{"width": 64, "height": 64, "depth": 3}]
        assert len(document["annotations"]) <= 100
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


def test_a_single_label_record_fails_the_job(server: Clients) -> None:
    only_process(server)
    name = f"od-single-label-{server.runtime}"
    images, _ = scenes(2, SIZE, seed=6)
    data = encode_rec(ImageRecord((1.0,), encode(image), id=i) for i, image in enumerate(images))
    for channel in ("train", "validation"):
        server.s3.put_object(Bucket="data", Key=f"{name}/{channel}/a.rec", Body=data)
    channels = [
        s3_channel(channel, f"s3://data/{name}/{channel}/", RECORDIO)
        for channel in ("train", "validation")
    ]
    desc = create(server, name, channels, hyperparameters())
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: ")
    assert "not a detection label array" in desc["FailureReason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_classes": None}, "num_classes"),
        ({"image_shape": "299"}, "image_shape"),
        ({"base_network": "vgg-19"}, "base_network"),
        ({"optimizer": "nag"}, "optimizer"),
        ({"nms_threshold": "0"}, "nms_threshold"),
        ({"freeze_layer_pattern": "conv(["}, "freeze_layer_pattern"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    only_process(server)
    hps = {k: v for k, v in {**hyperparameters(), **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="od-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hps,
            InputDataConfig=[s3_channel("train", "s3://data/od-bad/train/", RECORDIO)],
            OutputDataConfig={"S3OutputPath": "s3://data/od-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
