"""Models: CreateModel / DescribeModel / ListModels / DeleteModel.

A model is only a record: the image, the artifacts and the environment of one container, or of
an inference pipeline's containers. Endpoints copy what they need when they deploy it, so deleting
a model never disturbs a running endpoint (as on SageMaker).
"""

from __future__ import annotations

import time
from typing import Any

from opensage.control import images
from opensage.control.listing import page
from opensage.control.naming import arn
from opensage.control.tags import insert_tagged
from opensage.errors import NotFoundError, ValidationError
from opensage.images import ImageStore
from opensage.storage import S3Uri
from opensage.store import Resource, Store

KIND = "Model"


class ModelService:
    def __init__(
        self, store: Store, region: str, account: str, image_store: ImageStore | None = None
    ) -> None:
        self.store = store
        self.region = region
        self.account = account
        self.image_store = image_store

    def arn(self, name: str) -> str:
        return arn(self.region, self.account, "model", name)

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["ModelName"]
        model_arn = self.arn(name)
        for container in containers(request):  # validates
            images.resolve_serving(
                container["Image"], container.get("Environment") or {}, self.image_store
            )
        now = time.time()
        resource = Resource(KIND, name, model_arn, "Created", now, now, request, {})
        duplicate = ValidationError(f'Cannot create already existing model "{model_arn}".')
        insert_tagged(self.store, resource, request, duplicate)
        return {"ModelArn": model_arn}

    def get(self, name: str) -> Resource:
        model = self.store.get(KIND, name)
        if model is None:
            raise NotFoundError(f'Could not find model "{self.arn(name)}".')
        return model

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        model = self.get(request["ModelName"])
        echoed = {k: v for k, v in model.request.items() if k != "Tags"}
        return {
            **echoed,
            "ModelArn": model.arn,
            "CreationTime": model.created_at,
            "EnableNetworkIsolation": model.request.get("EnableNetworkIsolation", False),
        }

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        def summary(model: Resource) -> dict[str, Any]:
            return {
                "ModelName": model.name,
                "ModelArn": model.arn,
                "CreationTime": model.created_at,
            }

        return page(self.store, KIND, request, summary, "Models", default_descending=True)

    def delete(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["ModelName"]
        if not self.store.delete(KIND, name):
            raise NotFoundError(f'Could not find model "{self.arn(name)}".')
        return {}


def containers(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's containers in invocation order, each with its `ContainerHostname`.

    Validates what botocore's shapes leave open: one of PrimaryContainer / Containers, the
    pipeline's host names (all or none, unique; `container-<n>` when none), and that opensage can
    run every image and reach every artifact.
    """
    primary, listed = request.get("PrimaryContainer"), request.get("Containers")
    if (primary is None) == (listed is None):
        raise ValidationError("Exactly one of PrimaryContainer and Containers must be specified.")
    found: list[dict[str, Any]] = [primary] if primary is not None else list(listed or [])
    if not found:
        raise ValidationError("Containers must contain at least one container definition.")
    mode = (request.get("InferenceExecutionConfig") or {}).get("Mode", "Serial")
    if mode == "Direct" and len(found) < 2:
        raise ValidationError("InferenceExecutionConfig Mode Direct needs 2 or more Containers.")
    hostnames = [c.get("ContainerHostname") for c in found]
    if len(found) > 1 and any(hostnames) and not all(hostnames):
        raise ValidationError(
            "ContainerHostname must be specified for every container of an inference pipeline "
            "or for none."
        )
    if len(found) > 1 and all(hostnames) and len(set(hostnames)) != len(hostnames):
        raise ValidationError("ContainerHostname values must be unique within a model.")
    named = []
    for index, container in enumerate(found, start=1):
        _validate_container(container)
        hostname = container.get("ContainerHostname") if len(found) > 1 else None
        named.append({**container, "ContainerHostname": hostname or f"container-{index}"})
    if len(named) == 1:
        named[0]["ContainerHostname"] = "primary"  # the name SageMaker's ModelError uses
    return named


def _validate_container(container: dict[str, Any]) -> None:
    for unsupported in ("ModelPackageName", "InferenceSpecificationName",
                        "AdditionalModelDataSources"):  # fmt: skip
        if container.get(unsupported):
            raise ValidationError(f"ContainerDefinition.{unsupported} is not supported yet.")
    if container.get("Mode", "SingleModel") == "MultiModel":
        raise ValidationError("Multi-model endpoints (Mode MultiModel) are not supported yet.")
    image = container.get("Image")
    if not image:
        raise ValidationError("ContainerDefinition.Image is required.")
    url = container.get("ModelDataUrl")
    source = (container.get("ModelDataSource") or {}).get("S3DataSource")
    if url and source:
        raise ValidationError("Specify either ModelDataUrl or ModelDataSource, not both.")
    if url:
        S3Uri.parse(url)
    if source:
        uri = S3Uri.parse(source["S3Uri"])
        prefix, gzip = source["S3DataType"] == "S3Prefix", source["CompressionType"] == "Gzip"
        if prefix and gzip:
            raise ValidationError(
                "ModelDataSource with S3DataType S3Prefix must use CompressionType None."
            )
        if prefix and not uri.key.endswith("/"):
            raise ValidationError("ModelDataSource S3Uri of type S3Prefix must end with '/'.")
