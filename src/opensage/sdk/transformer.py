"""`Transformer`: batch transform jobs over a model, with the SageMaker Python SDK's shape.

>>> transformer = estimator.transformer(instance_count=1, instance_type="ml.m5.large",
...                                     strategy="MultiRecord", assemble_with="Line")
...                                                                    # doctest: +SKIP
>>> transformer.transform("s3://bucket/test/", content_type="text/csv", split_type="Line")
...                                                                    # doctest: +SKIP
>>> transformer.output_path                                            # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Self

from opensage.sdk.errors import UnexpectedStatusError
from opensage.sdk.logs import TRANSFORM_GROUP, LogTailer
from opensage.sdk.naming import unique_name
from opensage.sdk.progress import Bar, TransformOutputs
from opensage.sdk.session import Session

IN_PROGRESS = {"InProgress", "Stopping"}


@dataclass(frozen=True)
class TransformJob:
    """The latest job a Transformer started (the SDK's `transformer.latest_transform_job`)."""

    job_name: str
    session: Session

    def describe(self) -> dict[str, Any]:
        client = self.session.sagemaker_client
        return dict(client.describe_transform_job(TransformJobName=self.job_name))


class Transformer:
    def __init__(
        self,
        model_name: str,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: list[dict[str, str]] | None = None,
        env: dict[str, str] | None = None,
        base_transform_job_name: str | None = None,
        sagemaker_session: Session | None = None,
        volume_kms_key: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.strategy = strategy
        self.assemble_with = assemble_with
        self.output_path = output_path
        self.output_kms_key = output_kms_key
        self.accept = accept
        self.max_concurrent_transforms = max_concurrent_transforms
        self.max_payload = max_payload
        self.tags = tags
        self.env = env
        self.base_transform_job_name = base_transform_job_name
        self.sagemaker_session = sagemaker_session
        self.volume_kms_key = volume_kms_key
        self.latest_transform_job: TransformJob | None = None

    @classmethod
    def attach(cls, transform_job_name: str, sagemaker_session: Session | None = None) -> Self:
        """A Transformer rebuilt from a transform job, its `latest_transform_job` that job (to
        `wait()` on or `describe()`), as the SDK's `attach`."""
        session = sagemaker_session or Session()
        client = session.sagemaker_client
        desc = client.describe_transform_job(TransformJobName=transform_job_name)
        output, resources = desc["TransformOutput"], desc["TransformResources"]
        transformer = cls(
            desc["ModelName"],
            resources["InstanceCount"],
            resources["InstanceType"],
            strategy=desc.get("BatchStrategy"),
            assemble_with=output.get("AssembleWith"),
            output_path=output["S3OutputPath"],
            output_kms_key=output.get("KmsKeyId"),
            accept=output.get("Accept"),
            max_concurrent_transforms=desc.get("MaxConcurrentTransforms"),
            max_payload=desc.get("MaxPayloadInMB"),
            env=desc.get("Environment"),
            sagemaker_session=session,
            volume_kms_key=resources.get("VolumeKmsKeyId"),
        )
        transformer.latest_transform_job = TransformJob(transform_job_name, session)
        return transformer

    @property
    def session(self) -> Session:
        if self.sagemaker_session is None:
            self.sagemaker_session = Session()
        return self.sagemaker_session

    def transform(
        self,
        data: str,
        data_type: str = "S3Prefix",
        content_type: str | None = None,
        compression_type: str | None = None,
        split_type: str | None = None,
        job_name: str | None = None,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str | None = None,
        model_client_config: dict[str, Any] | None = None,
        wait: bool = True,
        logs: bool = True,
    ) -> None:
        """Start a transform job over `data` (an S3 prefix or manifest); with `wait`, follow it
        to its end and raise unless it completed."""
        name = job_name or unique_name(self.base_transform_job_name, self._image(), "transform")
        if self.output_path is None:  # the SDK's default: the default bucket, under the job name
            self.output_path = f"s3://{self.session.default_bucket()}/{name}"
        transform_input: dict[str, Any] = {
            "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": data}}
        }
        for key, value in (("ContentType", content_type), ("CompressionType", compression_type),
                           ("SplitType", split_type)):  # fmt: skip
            if value is not None:
                transform_input[key] = value
        output: dict[str, Any] = {"S3OutputPath": self.output_path}
        for key, value in (("Accept", self.accept), ("AssembleWith", self.assemble_with),
                           ("KmsKeyId", self.output_kms_key)):  # fmt: skip
            if value is not None:
                output[key] = value
        request: dict[str, Any] = {
            "TransformJobName": name,
            "ModelName": self.model_name,
            "TransformInput": transform_input,
            "TransformOutput": output,
            "TransformResources": {
                "InstanceCount": self.instance_count,
                "InstanceType": self.instance_type,
            },
        }
        optional = {
            "BatchStrategy": self.strategy,
            "MaxConcurrentTransforms": self.max_concurrent_transforms,
            "MaxPayloadInMB": self.max_payload,
            "Environment": self.env,
            "Tags": self.tags,
            "ModelClientConfig": model_client_config,
        }
        request.update({k: v for k, v in optional.items() if v is not None})
        processing = {"InputFilter": input_filter, "OutputFilter": output_filter,
                      "JoinSource": join_source}  # fmt: skip
        if any(v is not None for v in processing.values()):
            request["DataProcessing"] = {k: v for k, v in processing.items() if v is not None}
        self.session.sagemaker_client.create_transform_job(**request)
        self.latest_transform_job = TransformJob(name, self.session)
        if wait:
            self.wait(logs=logs)

    def _image(self) -> str:
        """The model's (first) image, whose repository names the job as in the SDK; the model's
        name when it has none to read."""
        try:
            model = self.session.sagemaker_client.describe_model(ModelName=self.model_name)
        except self.session.sagemaker_client.exceptions.ClientError:
            return self.model_name
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        return str(container.get("Image", self.model_name))

    def _job(self) -> TransformJob:
        if self.latest_transform_job is None:
            raise ValueError("No transform job yet: call transform() first")
        return self.latest_transform_job

    def describe(self) -> dict[str, Any]:
        return self._job().describe()

    def wait(self, logs: bool = True, poll: float = 0.5) -> dict[str, Any]:
        """Follow the job to its end with a bar of its objects done (and its model servers'
        logs above it); raise with the FailureReason if it failed."""
        job = self._job()
        desc = job.describe()
        tailer = (
            LogTailer(self.session.logs_client, job.job_name, TRANSFORM_GROUP) if logs else None
        )
        outputs = TransformOutputs(self.session.s3_client, desc)
        with Bar(f"Transform job {job.job_name}", outputs.total) as bar:
            while True:
                if tailer:
                    tailer.flush()
                ended = desc["TransformJobStatus"] not in IN_PROGRESS
                bar.update(outputs.count(force=ended), desc["TransformJobStatus"])
                if ended:
                    break
                time.sleep(poll)
                desc = job.describe()
        if desc["TransformJobStatus"] == "Stopped":  # the SDK warns, it does not raise
            print(f"Transform job {job.job_name} was stopped.", file=sys.stderr, flush=True)
        elif desc["TransformJobStatus"] != "Completed":
            reason = desc.get("FailureReason", "(no reason given)")
            raise UnexpectedStatusError(
                f"Error for Transform job {job.job_name}: {desc['TransformJobStatus']}. "
                f"Reason: {reason}",
                desc["TransformJobStatus"],
            )
        return desc

    def stop_transform_job(self, wait: bool = True) -> None:
        job = self._job()
        self.session.sagemaker_client.stop_transform_job(TransformJobName=job.job_name)
        if wait:
            self.wait(logs=False)
