"""Training jobs: the API operations. The supervisor in `training_runner` does the work."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from opensage.control import images, lifecycle
from opensage.control.lifecycle import Primary, Secondary
from opensage.control.listing import page
from opensage.control.metrics import final_metrics
from opensage.control.naming import arn
from opensage.control.tags import insert_tagged
from opensage.errors import NotFoundError, ResourceInUseError, ValidationError
from opensage.images import ImageStore
from opensage.storage import S3Uri
from opensage.store import Resource, Store

KIND = "TrainingJob"
DEFAULT_MAX_RUNTIME = 86400
NOT_FOUND = "Requested resource not found."


class TrainingService:
    def __init__(
        self,
        store: Store,
        region: str,
        account: str,
        launch: Callable[[str], None],
        image_store: ImageStore | None = None,
    ) -> None:
        self.store = store
        self.region = region
        self.account = account
        self._launch = launch  # hands a newly created job to the scheduler
        self.image_store = image_store

    # Create ------------------------------------------------------------------------------

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        request = validate_request(request, self.image_store)
        now = time.time()
        job_arn = arn(self.region, self.account, "training-job", name)
        resource = Resource(
            kind=KIND,
            name=name,
            arn=job_arn,
            status=Primary.IN_PROGRESS.value,
            created_at=now,
            updated_at=now,
            request=request,
            state=lifecycle.initial_state(now),
        )
        insert_tagged(
            self.store, resource, request, ResourceInUseError(f"Training job {name} already exists")
        )
        self._launch(name)
        return {"TrainingJobArn": job_arn}

    # Read --------------------------------------------------------------------------------

    def _get(self, name: str) -> Resource:
        job = self.store.get(KIND, name)
        if job is None:
            raise NotFoundError(NOT_FOUND)
        return job

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._get(request["TrainingJobName"])
        return self._description(job)

    def _description(self, job: Resource) -> dict[str, Any]:
        req, state = job.request, job.state
        echoed = {k: v for k, v in req.items() if k not in ("Tags",)}
        out: dict[str, Any] = {
            **echoed,
            "TrainingJobArn": job.arn,
            "TrainingJobStatus": job.status,
            "SecondaryStatus": state["SecondaryStatus"],
            "CreationTime": job.created_at,
            "LastModifiedTime": state.get("LastModifiedTime", job.updated_at),
            "ModelArtifacts": {"S3ModelArtifacts": model_artifacts_uri(req)},
            "SecondaryStatusTransitions": state["SecondaryStatusTransitions"],
            "EnableNetworkIsolation": req.get("EnableNetworkIsolation", False),
            "EnableInterContainerTrafficEncryption": req.get(
                "EnableInterContainerTrafficEncryption", False
            ),
            "EnableManagedSpotTraining": req.get("EnableManagedSpotTraining", False),
        }
        for key in ("FailureReason", "TrainingStartTime", "TrainingEndTime"):
            if key in state:
                out[key] = state[key]
        if "TrainingStartTime" in state and "TrainingEndTime" in state:
            seconds = max(1, int(state["TrainingEndTime"] - state["TrainingStartTime"]))
            out["TrainingTimeInSeconds"] = seconds
            out["BillableTimeInSeconds"] = seconds
        metrics = final_metrics(self.store.metric_points(job.arn))
        if metrics:
            out["FinalMetricDataList"] = metrics
        return out

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        return page(self.store, KIND, request, _summary, "TrainingJobSummaries")

    # Stop --------------------------------------------------------------------------------

    def stop(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        self._get(name)

        def change(job: Resource) -> Resource | None:
            if job.status == Primary.STOPPING.value:
                return None  # already stopping: stopping twice is not an error
            if job.status != Primary.IN_PROGRESS.value:
                raise ValidationError(
                    f"The training job {name} is not in progress (status {job.status}) "
                    "and cannot be stopped"
                )
            now = time.time()
            job.state["StopRequested"] = True
            job.status = lifecycle.advance(job.state, Secondary.STOPPING, now)
            job.updated_at = now
            return job

        self.store.mutate(KIND, name, change)
        return {}


def model_artifacts_uri(request: dict[str, Any]) -> str:
    base = S3Uri.parse(request["OutputDataConfig"]["S3OutputPath"])
    return str(base.join(request["TrainingJobName"], "output", "model.tar.gz"))


def _summary(job: Resource) -> dict[str, Any]:
    out = {
        "TrainingJobName": job.name,
        "TrainingJobArn": job.arn,
        "CreationTime": job.created_at,
        "TrainingJobStatus": job.status,
        "SecondaryStatus": job.state["SecondaryStatus"],
        "LastModifiedTime": job.state.get("LastModifiedTime", job.updated_at),
    }
    if "TrainingEndTime" in job.state:
        out["TrainingEndTime"] = job.state["TrainingEndTime"]
    return out


def validate_request(
    request: dict[str, Any], image_store: ImageStore | None = None
) -> dict[str, Any]:
    """A CreateTrainingJob request with its defaults; ValidationError for what SageMaker refuses
    (tuning jobs check their trials' requests with it too)."""
    request = _with_defaults(request)
    _validate(request, image_store)
    return request


def _with_defaults(request: dict[str, Any]) -> dict[str, Any]:
    request = dict(request)
    stopping = dict(request.get("StoppingCondition") or {})
    stopping.setdefault("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
    request["StoppingCondition"] = stopping
    if "ResourceConfig" in request:
        request["ResourceConfig"] = {"VolumeSizeInGB": 30, **request["ResourceConfig"]}
    request.setdefault("HyperParameters", {})
    return request


def _validate(request: dict[str, Any], image_store: ImageStore | None) -> None:
    """What botocore's model leaves optional but a runnable job needs (SageMaker checks these)."""
    spec = request.get("AlgorithmSpecification")
    if not spec or not spec.get("TrainingImage"):
        if spec and spec.get("AlgorithmName"):
            raise ValidationError("AlgorithmName (marketplace algorithms) is not supported yet")
        raise ValidationError("AlgorithmSpecification.TrainingImage is required")
    resources = request.get("ResourceConfig") or {}
    if "InstanceGroups" in resources:
        raise ValidationError("ResourceConfig.InstanceGroups is not supported yet")
    if not resources.get("InstanceType") or not resources.get("InstanceCount"):
        raise ValidationError("ResourceConfig.InstanceType and InstanceCount are required")
    S3Uri.parse(request["OutputDataConfig"]["S3OutputPath"])
    for definition in spec.get("MetricDefinitions", []):
        try:
            re.compile(definition["Regex"])
        except re.error as exc:
            raise ValidationError(
                f"MetricDefinitions '{definition['Name']}': invalid regex: {exc}"
            ) from exc
    channels = request.get("InputDataConfig", [])
    names = [c["ChannelName"] for c in channels]
    if len(set(names)) != len(names):
        raise ValidationError("Channel names in InputDataConfig must be unique")
    for channel in channels:
        _validate_channel(channel, spec["TrainingInputMode"])
    checkpoint = request.get("CheckpointConfig")
    if checkpoint:
        S3Uri.parse(checkpoint["S3Uri"])
        local = checkpoint.get("LocalPath", "/opt/ml/checkpoints")
        if local.rstrip("/") != "/opt/ml/checkpoints":
            raise ValidationError("CheckpointConfig.LocalPath other than /opt/ml/checkpoints "
                                  "is not supported yet")  # fmt: skip
    images.resolve(
        spec["TrainingImage"],
        request["HyperParameters"],
        spec.get("ContainerEntrypoint"),
        spec.get("ContainerArguments"),
        image_store,
    )


def _validate_channel(channel: dict[str, Any], default_mode: str) -> None:
    name = channel["ChannelName"]
    source = channel["DataSource"].get("S3DataSource")
    if source is None:
        raise ValidationError(f"Channel '{name}': only S3DataSource is supported")
    mode = channel.get("InputMode") or default_mode
    if mode == "FastFile" and source["S3DataType"] != "S3Prefix":
        raise ValidationError(f"Channel '{name}': FastFile input mode needs S3DataType S3Prefix")
    if source["S3DataType"] == "AugmentedManifestFile":
        if mode != "Pipe":
            raise ValidationError(
                f"Channel '{name}': AugmentedManifestFile is supported in Pipe input mode only"
            )
        if not source.get("AttributeNames"):
            raise ValidationError(
                f"Channel '{name}': AugmentedManifestFile needs S3DataSource.AttributeNames"
            )
    elif source["S3DataType"] not in ("S3Prefix", "ManifestFile"):
        raise ValidationError(
            f"Channel '{name}': S3DataType {source['S3DataType']} is not supported yet"
        )
    S3Uri.parse(source["S3Uri"])
