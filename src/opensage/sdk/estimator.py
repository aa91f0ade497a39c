"""`Estimator`: a training job described once, run with `fit`, as in the SageMaker SDK.

>>> est = Estimator(image_uri="opensage/python:3", entry_point="train.py",
...                 role="arn:aws:iam::123456789012:role/R", instance_count=1,
...                 instance_type="ml.m5.large", hyperparameters={"epochs": 2})  # doctest: +SKIP
>>> est.fit({"train": "s3://bucket/train/"})                                   # doctest: +SKIP
>>> est.model_data                                                             # doctest: +SKIP
's3://sagemaker-us-east-1-123456789012/<job>/output/model.tar.gz'
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from opensage.sdk.deserializers import BaseDeserializer
from opensage.sdk.errors import DEFAULT_ROLE, UnexpectedStatusError
from opensage.sdk.logs import LogTailer
from opensage.sdk.model import Model
from opensage.sdk.naming import pack_source, sagemaker_timestamp, unique_name
from opensage.sdk.predictor import Predictor
from opensage.sdk.serializers import BaseSerializer
from opensage.sdk.session import Session
from opensage.sdk.transformer import Transformer

if TYPE_CHECKING:
    from opensage.sdk.amazon import RecordSet

TERMINAL = {"Completed", "Failed", "Stopped"}


@dataclass
class TrainingInput:
    s3_data: str
    distribution: str = "FullyReplicated"
    content_type: str | None = None
    s3_data_type: str = "S3Prefix"
    input_mode: str | None = None

    def channel(self, name: str) -> dict[str, Any]:
        channel: dict[str, Any] = {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": self.s3_data_type,
                    "S3Uri": self.s3_data,
                    "S3DataDistributionType": self.distribution,
                }
            },
        }
        if self.content_type:
            channel["ContentType"] = self.content_type
        if self.input_mode:
            channel["InputMode"] = self.input_mode
        return channel


class Estimator:
    def __init__(
        self,
        image_uri: str | None = None,
        role: str = DEFAULT_ROLE,
        instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        hyperparameters: dict[str, Any] | None = None,
        output_path: str | None = None,
        entry_point: str | None = None,
        source_dir: str | None = None,
        sagemaker_session: Session | None = None,
        max_run: int = 86400,
        volume_size: int = 30,
        input_mode: str = "File",
        environment: dict[str, str] | None = None,
        metric_definitions: list[dict[str, str]] | None = None,
        base_job_name: str | None = None,
        enable_network_isolation: bool = False,
        checkpoint_s3_uri: str | None = None,
        tags: list[dict[str, str]] | None = None,
    ) -> None:
        if image_uri is None and entry_point is None:
            raise ValueError("Give image_uri, entry_point, or both")
        self.image_uri = image_uri or "opensage/python:3"
        self.role = role
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.hyperparameters = dict(hyperparameters or {})
        self.output_path = output_path
        self.entry_point = entry_point
        self.source_dir = source_dir
        self.sagemaker_session = sagemaker_session
        self.max_run = max_run
        self.volume_size = volume_size
        self.input_mode = input_mode
        self.environment = dict(environment or {})
        self.metric_definitions = list(metric_definitions or [])
        self.base_job_name = base_job_name
        self.enable_network_isolation = enable_network_isolation
        self.checkpoint_s3_uri = checkpoint_s3_uri
        self.tags = list(tags or [])
        self.latest_training_job: str | None = None

    @classmethod
    def attach(cls, training_job_name: str, sagemaker_session: Session | None = None) -> Self:
        """An estimator rebuilt from a training job, once the job has ended, as the SDK's
        `attach`: its model can then be deployed or batch-transformed. Raises if the job did
        not complete."""
        session = sagemaker_session or Session()
        desc = session.sagemaker_client.describe_training_job(TrainingJobName=training_job_name)
        estimator = cls._from_definition(session, desc, desc.get("HyperParameters", {}))
        estimator.latest_training_job = training_job_name
        estimator.wait(logs=False)
        return estimator

    @classmethod
    def _from_definition(
        cls, session: Session, job: dict[str, Any], hyperparameters: dict[str, str]
    ) -> Self:
        """The estimator that sends `job` (a DescribeTrainingJob answer, or a tuning job's
        TrainingJobDefinition with its static `hyperparameters`): its image, resources,
        hyperparameters and, in script mode, its uploaded code bundle as `source_dir`."""
        algorithm = job["AlgorithmSpecification"]
        resources = job["ResourceConfig"]
        values: dict[str, Any] = dict(hyperparameters)
        entry_point = source_dir = None
        if "sagemaker_program" in values:  # script mode: JSON-encoded values
            values = {key: _json_or_text(value) for key, value in values.items()}
            entry_point = str(values["sagemaker_program"])
            source_dir = str(values["sagemaker_submit_directory"])
            values = {k: v for k, v in values.items() if not k.startswith("sagemaker_")}
        estimator = cls.__new__(cls)  # a built-in's own __init__ wants its hyperparameters
        Estimator.__init__(
            estimator,
            image_uri=algorithm["TrainingImage"],
            role=job["RoleArn"],
            instance_count=resources["InstanceCount"],
            instance_type=resources["InstanceType"],
            hyperparameters=values,
            output_path=job["OutputDataConfig"]["S3OutputPath"],
            entry_point=entry_point,
            source_dir=source_dir,
            sagemaker_session=session,
            max_run=job["StoppingCondition"]["MaxRuntimeInSeconds"],
            volume_size=resources.get("VolumeSizeInGB", 30),
            input_mode=algorithm.get("TrainingInputMode", "File"),
            environment=job.get("Environment"),
            metric_definitions=algorithm.get("MetricDefinitions"),
            enable_network_isolation=job.get("EnableNetworkIsolation", False),
            checkpoint_s3_uri=job.get("CheckpointConfig", {}).get("S3Uri"),
        )
        return estimator

    def logs(self) -> None:
        """Print the latest job's logs, following them until it ends (the SDK's `logs()`)."""
        self.wait(logs=True)

    @property
    def session(self) -> Session:
        if self.sagemaker_session is None:
            self.sagemaker_session = Session()
        return self.sagemaker_session

    def _job_name(self) -> str:
        return unique_name(self.base_job_name, self.image_uri, "job")

    def _hyperparameters(self, job_name: str, output: str) -> dict[str, str]:
        if self.entry_point is None:
            return {k: str(v) for k, v in self.hyperparameters.items()}
        code_uri = self._upload_code(job_name, output)
        script_hps = {
            **self.hyperparameters,
            "sagemaker_program": Path(self.entry_point).name,
            "sagemaker_submit_directory": code_uri,
            "sagemaker_container_log_level": 20,
            "sagemaker_job_name": job_name,
            "sagemaker_region": self.session.boto_region_name,
        }
        return {k: json.dumps(v) for k, v in script_hps.items()}

    def _upload_code(self, job_name: str, output: str) -> str:
        """Pack `source_dir` (or the entry point alone) as sourcedir.tar.gz next to the output;
        a `source_dir` on S3 is such a bundle already (an attached job's), used as it is."""
        assert self.entry_point is not None
        if self.source_dir and self.source_dir.startswith("s3://"):
            return self.source_dir
        bundle = pack_source(self.entry_point, self.source_dir)
        bucket, _, prefix = output.removeprefix("s3://").partition("/")
        key = "/".join(p for p in (prefix.strip("/"), job_name, "source", "sourcedir.tar.gz") if p)
        self.session.s3_client.put_object(Bucket=bucket, Key=key, Body=bundle)
        return f"s3://{bucket}/{key}"

    def fit(
        self,
        inputs: str | TrainingInput | dict[str, str | TrainingInput] | None = None,
        wait: bool = True,
        logs: bool = True,
        job_name: str | None = None,
    ) -> None:
        name = job_name or self._job_name()
        self.session.sagemaker_client.create_training_job(**self._training_request(name, inputs))
        self.latest_training_job = name
        if wait:
            self.wait(logs=logs)

    def _training_request(
        self,
        name: str,
        inputs: str | TrainingInput | dict[str, str | TrainingInput] | None,
    ) -> dict[str, Any]:
        """The CreateTrainingJob request `fit` sends (script mode: the code uploaded under
        `name`); the HyperparameterTuner turns it into its TrainingJobDefinition."""
        output = self.output_path or f"s3://{self.session.default_bucket()}"
        request: dict[str, Any] = {
            "TrainingJobName": name,
            "RoleArn": self.role,
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri,
                "TrainingInputMode": self.input_mode,
            },
            "HyperParameters": self._hyperparameters(name, output),
            "OutputDataConfig": {"S3OutputPath": output},
            "ResourceConfig": {
                "InstanceType": self.instance_type,
                "InstanceCount": self.instance_count,
                "VolumeSizeInGB": self.volume_size,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": self.max_run},
            "EnableNetworkIsolation": self.enable_network_isolation,
        }
        channels = _channels(inputs)
        if channels:
            request["InputDataConfig"] = channels
        if self.metric_definitions:
            request["AlgorithmSpecification"]["MetricDefinitions"] = self.metric_definitions
        if self.environment:
            request["Environment"] = self.environment
        if self.checkpoint_s3_uri:
            request["CheckpointConfig"] = {"S3Uri": self.checkpoint_s3_uri}
        if self.tags:
            request["Tags"] = self.tags
        return request

    def describe(self) -> dict[str, Any]:
        if self.latest_training_job is None:
            raise ValueError("No training job yet: call fit() first")
        client = self.session.sagemaker_client
        return dict(client.describe_training_job(TrainingJobName=self.latest_training_job))

    def wait(self, logs: bool = True, poll: float = 0.5) -> dict[str, Any]:
        """Follow the job to its end, printing its logs; raise if it did not complete."""
        assert self.latest_training_job is not None
        tailer = LogTailer(self.session.logs_client, self.latest_training_job) if logs else None
        last_message = None
        while True:
            desc = self.describe()
            transitions = desc.get("SecondaryStatusTransitions", [])
            message = transitions[-1].get("StatusMessage") if transitions else None
            if message != last_message:
                print(f"{desc['SecondaryStatus']} - {message}", flush=True)
                last_message = message
            if tailer:
                tailer.flush()
            if desc["TrainingJobStatus"] in TERMINAL:
                if tailer:
                    tailer.flush()
                break
            time.sleep(poll)
        if desc["TrainingJobStatus"] != "Completed":
            reason = desc.get("FailureReason", "(no reason given)")
            raise UnexpectedStatusError(
                f"Error for Training job {self.latest_training_job}: "
                f"{desc['TrainingJobStatus']}. Reason: {reason}",
                desc["TrainingJobStatus"],
            )
        return desc

    def record_set(
        self,
        train: Any,
        labels: Any = None,
        channel: str = "train",
        encrypt: bool = False,
        distribution: str = "ShardedByS3Key",
    ) -> RecordSet:
        """Upload a 2-D array (and labels) as RecordIO-protobuf shards, one per instance, plus a
        manifest, as the SageMaker SDK's `AmazonAlgorithmEstimatorBase.record_set` does.

        Objects land under `s3://<default bucket>/sagemaker-record-sets/<base_job_name or class
        name>-<timestamp>/` as `matrix_<i>.pbr` and `.amazon.manifest`. The returned RecordSet's
        channel is a `ManifestFile` with `ShardedByS3Key` and no content type (built-ins then
        read RecordIO-protobuf): `est.fit(record_set.data_channel())`.
        """
        from opensage.sdk.amazon import RecordSet, upload_numpy_to_s3_shards

        bucket = self.session.default_bucket()
        name = self.base_job_name or type(self).__name__
        key_prefix = f"sagemaker-record-sets/{name}-{sagemaker_timestamp()}/"
        manifest_uri = upload_numpy_to_s3_shards(
            self.instance_count, self.session.s3_client, bucket, key_prefix, train, labels, encrypt
        )
        return RecordSet(
            manifest_uri,
            num_records=train.shape[0],
            feature_dim=train.shape[1],
            channel=channel,
            distribution=distribution,
        )

    @property
    def model_data(self) -> str:
        return str(self.describe()["ModelArtifacts"]["S3ModelArtifacts"])

    def create_model(
        self,
        image_uri: str | None = None,
        entry_point: str | None = None,
        source_dir: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Model:
        """The trained model, served by the same image (and, in script mode, the same code,
        whose `model_fn` & co. the serving toolkit loads), unless told otherwise."""
        return Model(
            image_uri=image_uri or self.image_uri,
            model_data=self.model_data,
            role=self.role,
            env=env if env is not None else dict(self.environment),
            entry_point=entry_point or self.entry_point,
            source_dir=source_dir or self.source_dir,
            sagemaker_session=self.session,
            enable_network_isolation=self.enable_network_isolation,
        )

    def transformer(
        self,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        env: dict[str, str] | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: list[dict[str, str]] | None = None,
        model_name: str | None = None,
        volume_kms_key: str | None = None,
    ) -> Transformer:
        """A Transformer over the latest training job's model, registered under the job's name
        (or `model_name`), as the SageMaker SDK does."""
        model = self.create_model()
        model.name = model_name or self.latest_training_job
        transformer = model.transformer(
            instance_count,
            instance_type,
            strategy=strategy,
            assemble_with=assemble_with,
            output_path=output_path,
            output_kms_key=output_kms_key,
            accept=accept,
            env=env,
            max_concurrent_transforms=max_concurrent_transforms,
            max_payload=max_payload,
            tags=tags,
            volume_kms_key=volume_kms_key,
        )
        transformer.base_transform_job_name = self.base_job_name
        return transformer

    def deploy(
        self,
        initial_instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None,
        endpoint_name: str | None = None,
        wait: bool = True,
        image_uri: str | None = None,
        entry_point: str | None = None,
    ) -> Predictor:
        """Deploy the latest training job's model to a new endpoint named after the job."""
        model = self.create_model(image_uri=image_uri, entry_point=entry_point)
        model.name = self.latest_training_job
        return model.deploy(
            initial_instance_count,
            instance_type,
            serializer,
            deserializer,
            endpoint_name or self.latest_training_job,
            wait,
        )


def _channels(
    inputs: str | TrainingInput | dict[str, str | TrainingInput] | None,
) -> list[dict[str, Any]]:
    if inputs is None:
        return []
    if not isinstance(inputs, dict):
        inputs = {"training": inputs}
    return [
        (value if isinstance(value, TrainingInput) else TrainingInput(value)).channel(name)
        for name, value in inputs.items()
    ]


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
