"""The built-in Semantic Segmentation through the server with boto3: training on JPEG images
and PNG masks in S3 (`validation:mIOU` and `validation:pixel_accuracy` in FinalMetricDataList),
an endpoint answering a JPEG with a PNG mask of its size, and bad hyperparameters refused at
CreateTrainingJob. Process runtime only: the sandbox runs the same program and is tested
elsewhere."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from opensage.algorithms.semantic_segmentation.synthetic import (
    encode_image,
    encode_mask,
    scenes,
)
from tests.integration.conftest import ROLE, Clients, s3_channel, wait_final
from tests.integration.hosting import delete, deploy, model_from_job, variant

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/semantic-segmentation:1"
RESOURCES = {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1}
JPEG = "image/jpeg"
PNG = "image/png"
SIZE = 32


def hyperparameters(**changes: str) -> dict[str, str]:
    return {"num_classes": "3", "num_training_samples": "8", "width_multiplier": "0.125",
            "base_size": str(SIZE), "crop_size": "24", "epochs": "1", "mini_batch_size": "4",
            "optimizer": "adam", "learning_rate": "0.003", **changes}  # fmt: skip


def upload_scenes(server: Clients, prefix: str) -> list[dict[str, Any]]:
    images, masks = scenes(12, SIZE, 3, seed=7)
    for split, rows in (("train", range(8)), ("validation", range(8, 12))):
        for i in rows:
            server.s3.put_object(
                Bucket="data", Key=f"{prefix}/{split}/s{i}.jpg", Body=encode_image(images[i])
            )
            server.s3.put_object(
                Bucket="data",
                Key=f"{prefix}/{split}_annotation/s{i}.png",
                Body=encode_mask(masks[i]),
            )
    return [
        s3_channel(name, f"s3://data/{prefix}/{name}/", kind)
        for name, kind in (
            ("train", JPEG),
            ("validation", JPEG),
            ("train_annotation", PNG),
            ("validation_annotation", PNG),
        )
    ]


def create(
    server: Clients, name: str, channels: list[dict[str, Any]], hps: dict[str, str]
) -> dict[str, Any]:
    server.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=hps,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://data/semseg-out"},
        ResourceConfig=RESOURCES,
    )
    return wait_final(server, name, timeout=240.0)


def test_trains_and_serves_png_masks(server: Clients) -> None:
    if server.runtime != "process":
        pytest.skip("the sandbox runtime is tested elsewhere; this one is slow to train")
    name = "semseg-scenes"
    channels = upload_scenes(server, name)
    desc = create(server, name, channels, hyperparameters())
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert 0 <= metrics["validation:mIOU"] <= 1
    assert 0 < metrics["validation:pixel_accuracy"] <= 1

    model_from_job(server, name, IMAGE, desc)
    deploy(server, name, [variant(name)])
    try:
        image = scenes(1, SIZE, 3, seed=11)[0][0][:, :24]
        response = server.runtime_client.invoke_endpoint(
            EndpointName=name, Body=encode_image(image), ContentType=JPEG, Accept=PNG
        )
        assert response["ContentType"] == PNG
        from PIL import Image

        mask = Image.open(io.BytesIO(response["Body"].read()))
        assert mask.mode == "P"
        assert np.asarray(mask).shape == (SIZE, 24)
        assert int(np.asarray(mask).max()) < 3
    finally:
        delete(server, name)
        server.sagemaker.delete_model(ModelName=name)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_classes": None}, "num_classes"),
        ({"num_classes": "255"}, "num_classes"),
        ({"crop_size": "16"}, "crop_size"),
        ({"algorithm": "unet"}, "algorithm"),
        ({"backbone": "resnet-18"}, "backbone"),
        ({"lr_scheduler": "step"}, "lr_scheduler_step"),
    ],
)
def test_bad_hyperparameter_is_refused_at_create(
    server: Clients, change: dict[str, str | None], named: str
) -> None:
    if server.runtime != "process":
        pytest.skip("validation happens in the API, whatever the runtime")
    hps = {k: v for k, v in {**hyperparameters(), **change}.items() if v is not None}
    with pytest.raises(server.sagemaker.exceptions.ClientError) as caught:
        server.sagemaker.create_training_job(
            TrainingJobName="semseg-bad-hp",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            HyperParameters=hps,
            InputDataConfig=[s3_channel("train", "s3://data/semseg-bad/train/", JPEG)],
            OutputDataConfig={"S3OutputPath": "s3://data/semseg-out"},
            ResourceConfig=RESOURCES,
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Hyperparameter '{named}'" in error["Message"]
