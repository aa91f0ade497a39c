"""Batch transform jobs: the API operations. The supervisor in `transform_runner` does the work.

Statuses (spec §4.2): InProgress → Completed | Failed, and StopTransformJob: Stopping → Stopped.
Describe reports the effective BatchStrategy / MaxPayloadInMB / MaxConcurrentTransforms once the
job has resolved them against the container's `/execution-parameters` (spec §1.8).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from opensage.control.listing import page
from opensage.control.models import KIND as MODEL_KIND
from opensage.control.models import containers
from opensage.control.naming import arn
from opensage.control.tags import insert_tagged
from opensage.control.transform_filters import DataProcessing
from opensage.errors import ResourceInUseError, ResourceNotFoundError, ValidationError
from opensage.storage import S3Uri
from opensage.store import Resource, Store

KIND: Final = "TransformJob"
IN_PROGRESS: Final = "InProgress"
STOPPING: Final = "Stopping"
ACTIVE: Final = [IN_PROGRESS, STOPPING]
MAX_PAYLOAD_MB: Final = 100
"""MaxPayloadInMB, and MaxConcurrentTransforms x MaxPayloadInMB, are at most this (spec §4.1)."""


class TransformService:
    def __init__(
        self, store: Store, region: str, account: str, launch: Callable[[str], None]
    ) -> None:
        self.store = store
        self.region = region
        self.account = account
        self._launch = launch  # hands a newly created job to the scheduler

    def arn(self, name: str) -> str:
        return arn(self.region, self.account, "transform-job", name)

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TransformJobName"]
        model = self.store.get(MODEL_KIND, request["ModelName"])
        if model is None:
            model_arn = arn(self.region, self.account, "model", request["ModelName"])
            raise ResourceNotFoundError(f'Could not find model "{model_arn}".')
        request = _with_defaults(request)
        validate(request, model.request)
        now = time.time()
        job_arn = self.arn(name)
        state = {"LastModifiedTime": now, "Model": model.request}
        resource = Resource(KIND, name, job_arn, IN_PROGRESS, now, now, request, state)
        duplicate = ResourceInUseError(f"Transform job {name} already exists.")
        insert_tagged(self.store, resource, request, duplicate)
        self._launch(name)
        return {"TransformJobArn": job_arn}

    def _get(self, name: str) -> Resource:
        job = self.store.get(KIND, name)
        if job is None:
            raise ResourceNotFoundError(f'Could not find transform job "{self.arn(name)}".')
        return job

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._get(request["TransformJobName"])
        echoed = {k: v for k, v in job.request.items() if k != "Tags"}
        out: dict[str, Any] = {
            **echoed,
            "TransformJobArn": job.arn,
            "TransformJobStatus": job.status,
            "CreationTime": job.created_at,
        }
        out.update(job.state.get("Effective", {}))
        for key in ("FailureReason", "TransformStartTime", "TransformEndTime"):
            if key in job.state:
                out[key] = job.state[key]
        return out

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        return page(self.store, KIND, request, _summary, "TransformJobSummaries")

    def stop(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TransformJobName"]
        self._get(name)

        def change(job: Resource) -> Resource | None:
            if job.status == STOPPING:
                return None  # stopping twice is not an error
            if job.status != IN_PROGRESS:
                raise ValidationError(
                    f"The transform job {name} is not in progress (status {job.status}) and "
                    "cannot be stopped."
                )
            job.status = STOPPING
            job.updated_at = job.state["LastModifiedTime"] = time.time()
            return job

        self.store.mutate(KIND, name, change)
        return {}


def _summary(job: Resource) -> dict[str, Any]:
    out = {
        "TransformJobName": job.name,
        "TransformJobArn": job.arn,
        "CreationTime": job.created_at,
        "TransformJobStatus": job.status,
        "LastModifiedTime": job.state.get("LastModifiedTime", job.updated_at),
    }
    for key in ("TransformEndTime", "FailureReason"):
        if key in job.state:
            out[key] = job.state[key]
    return out


def _with_defaults(request: dict[str, Any]) -> dict[str, Any]:
    """The defaults Describe shows (spec §4.1); the batch parameters stay unset until the job
    resolves them against the container."""
    request = dict(request)
    request["TransformInput"] = {
        "CompressionType": "None",
        "SplitType": "None",
        **request["TransformInput"],
    }
    request["TransformOutput"] = {"AssembleWith": "None", **request["TransformOutput"]}
    return request


def validate(request: dict[str, Any], model: dict[str, Any]) -> None:
    """What botocore's model leaves open and SageMaker refuses at CreateTransformJob."""
    payload = request.get("MaxPayloadInMB")
    concurrency = request.get("MaxConcurrentTransforms")
    if payload is not None and payload > MAX_PAYLOAD_MB:
        raise ValidationError(f"MaxPayloadInMB must be at most {MAX_PAYLOAD_MB}, not {payload}.")
    if payload and concurrency and payload * concurrency > MAX_PAYLOAD_MB:
        raise ValidationError(
            f"MaxConcurrentTransforms x MaxPayloadInMB must be at most {MAX_PAYLOAD_MB} "
            f"({concurrency} x {payload} = {concurrency * payload})."
        )
    source = request["TransformInput"]["DataSource"].get("S3DataSource")
    if source is None:
        raise ValidationError("TransformInput.DataSource.S3DataSource is required.")
    if source["S3DataType"] not in ("S3Prefix", "ManifestFile"):
        raise ValidationError(
            f"S3DataType {source['S3DataType']} is not compatible with batch transform: use "
            "S3Prefix or ManifestFile."
        )
    S3Uri.parse(source["S3Uri"])
    S3Uri.parse(request["TransformOutput"]["S3OutputPath"])
    if request.get("DataCaptureConfig"):
        raise ValidationError("DataCaptureConfig for batch transform is not supported yet.")
    for container in containers(model):
        if container.get("ModelDataSource"):
            raise ValidationError(
                "ModelDataSource cannot be used with batch transform: give the model's "
                "container a ModelDataUrl."
            )
    data_processing(request)


def data_processing(request: dict[str, Any]) -> DataProcessing | None:
    """The job's join and filters, or None; a ValidationException for what SageMaker refuses."""
    given = request.get("DataProcessing")
    transform_input, output = request["TransformInput"], request["TransformOutput"]
    try:
        return DataProcessing.from_request(
            given,
            transform_input.get("ContentType"),
            output.get("Accept"),
            transform_input.get("SplitType", "None"),
            output.get("AssembleWith", "None"),
        )
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
