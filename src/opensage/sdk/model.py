"""`Model`: a model artifact and the image that serves it; `deploy()` makes an endpoint.

>>> model = Model(image_uri=xgboost_image, model_data="s3://bucket/job/output/model.tar.gz")
...                                                                    # doctest: +SKIP
>>> predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large")
...                                                                    # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from opensage.sdk.deserializers import BaseDeserializer
from opensage.sdk.endpoints import create_endpoint, production_variant
from opensage.sdk.errors import DEFAULT_ROLE
from opensage.sdk.naming import pack_source, unique_name
from opensage.sdk.predictor import Predictor
from opensage.sdk.serializers import BaseSerializer
from opensage.sdk.session import Session
from opensage.sdk.transformer import Transformer


class Model:
    def __init__(
        self,
        image_uri: str,
        model_data: str | None = None,
        role: str = DEFAULT_ROLE,
        env: dict[str, str] | None = None,
        name: str | None = None,
        entry_point: str | None = None,
        source_dir: str | None = None,
        sagemaker_session: Session | None = None,
        enable_network_isolation: bool = False,
        predictor_cls: type[Predictor] = Predictor,
    ) -> None:
        self.image_uri = image_uri
        self.model_data = model_data
        self.role = role
        self.env = dict(env or {})
        self.name = name
        self.entry_point = entry_point
        self.source_dir = source_dir
        self.sagemaker_session = sagemaker_session
        self.enable_network_isolation = enable_network_isolation
        self.predictor_cls = predictor_cls
        self.endpoint_name: str | None = None

    @property
    def session(self) -> Session:
        if self.sagemaker_session is None:
            self.sagemaker_session = Session()
        return self.sagemaker_session

    def _environment(self, name: str) -> dict[str, str]:
        """With an entry point, upload the code and name it, as the SageMaker SDK does; a
        `source_dir` on S3 is a packed `sourcedir.tar.gz`, used as it is."""
        if self.entry_point is None:
            return self.env
        if self.source_dir and self.source_dir.startswith("s3://"):
            code = self.source_dir  # a packed sourcedir.tar.gz already (an attached job's)
        else:
            bucket = self.session.default_bucket()
            key = f"{name}/sourcedir.tar.gz"
            bundle = pack_source(self.entry_point, self.source_dir)
            self.session.s3_client.put_object(Bucket=bucket, Key=key, Body=bundle)
            code = f"s3://{bucket}/{key}"
        return {
            "SAGEMAKER_PROGRAM": Path(self.entry_point).name,
            "SAGEMAKER_SUBMIT_DIRECTORY": code,
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_REGION": self.session.boto_region_name,
            **self.env,
        }

    def create(self) -> str:
        """Register the model (once); returns its name."""
        if self.name is not None and self._exists():
            return self.name
        self.name = self.name or unique_name(None, self.image_uri, "model")
        container: dict[str, Any] = {"Image": self.image_uri}
        if self.model_data:
            container["ModelDataUrl"] = self.model_data
        env = self._environment(self.name)
        if env:
            container["Environment"] = env
        self.session.sagemaker_client.create_model(
            ModelName=self.name,
            PrimaryContainer=container,
            ExecutionRoleArn=self.role,
            EnableNetworkIsolation=self.enable_network_isolation,
        )
        return self.name

    def _exists(self) -> bool:
        try:
            self.session.sagemaker_client.describe_model(ModelName=self.name)
        except ClientError:
            return False
        return True

    def deploy(
        self,
        initial_instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None,
        endpoint_name: str | None = None,
        wait: bool = True,
        tags: list[dict[str, str]] | None = None,
    ) -> Predictor:
        model_name = self.create()
        name = endpoint_name or model_name
        variant = production_variant(model_name, instance_type, initial_instance_count)
        create_endpoint(self.session, name, [variant], tags=tags, wait=wait)
        self.endpoint_name = name
        return self.predictor_cls(name, self.session, serializer, deserializer)

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
        volume_kms_key: str | None = None,
    ) -> Transformer:
        """A Transformer for batch transform jobs over this model (registered first)."""
        return Transformer(
            self.create(),
            instance_count,
            instance_type,
            strategy=strategy,
            assemble_with=assemble_with,
            output_path=output_path,
            output_kms_key=output_kms_key,
            accept=accept,
            max_concurrent_transforms=max_concurrent_transforms,
            max_payload=max_payload,
            tags=tags,
            env=env,
            sagemaker_session=self.session,
            volume_kms_key=volume_kms_key,
        )

    def delete_model(self) -> None:
        if self.name is not None:
            self.session.sagemaker_client.delete_model(ModelName=self.name)
