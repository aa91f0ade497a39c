"""`Predictor`: calls one endpoint, serializing requests and deserializing answers.

>>> predictor = Predictor("my-endpoint", serializer=CSVSerializer(),
...                       deserializer=CSVDeserializer())            # doctest: +SKIP
>>> predictor.predict([[0.5, 1.2, 3.4]])                              # doctest: +SKIP
[['0.731']]
"""

from __future__ import annotations

import io
from typing import Any

from opensage.sdk.deserializers import BaseDeserializer, BytesDeserializer
from opensage.sdk.serializers import BaseSerializer, IdentitySerializer
from opensage.sdk.session import Session


class Predictor:
    def __init__(
        self,
        endpoint_name: str,
        sagemaker_session: Session | None = None,
        serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.sagemaker_session = sagemaker_session or Session()
        self.serializer = serializer or IdentitySerializer()
        self.deserializer = deserializer or BytesDeserializer()
        self._config_name: str | None = None
        self._model_names: list[str] | None = None

    @property
    def content_type(self) -> str:
        return self.serializer.content_type

    @property
    def accept(self) -> str:
        accept = self.deserializer.accept
        return accept if isinstance(accept, str) else ", ".join(accept)

    def predict(
        self,
        data: Any,
        initial_args: dict[str, Any] | None = None,
        target_variant: str | None = None,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
    ) -> Any:
        request: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "ContentType": self.content_type,
            "Accept": self.accept,
            **(initial_args or {}),
            "Body": self.serializer.serialize(data),
        }
        if target_variant is not None:
            request["TargetVariant"] = target_variant
        if inference_id is not None:
            request["InferenceId"] = inference_id
        if custom_attributes is not None:
            request["CustomAttributes"] = custom_attributes
        client = self.sagemaker_session.sagemaker_runtime_client
        response = client.invoke_endpoint(**request)
        body = response["Body"].read()
        return self.deserializer.deserialize(io.BytesIO(body), response.get("ContentType"))

    def _remember_models(self) -> None:
        """Learn the config and model names while the endpoint still exists (for the deletes)."""
        if self._model_names is not None:
            return
        client = self.sagemaker_session.sagemaker_client
        endpoint = client.describe_endpoint(EndpointName=self.endpoint_name)
        self._config_name = str(endpoint["EndpointConfigName"])
        config = client.describe_endpoint_config(EndpointConfigName=self._config_name)
        self._model_names = [v["ModelName"] for v in config["ProductionVariants"]]

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        client = self.sagemaker_session.sagemaker_client
        self._remember_models()
        client.delete_endpoint(EndpointName=self.endpoint_name)
        if delete_endpoint_config and self._config_name is not None:
            client.delete_endpoint_config(EndpointConfigName=self._config_name)

    def delete_model(self) -> None:
        self._remember_models()
        client = self.sagemaker_session.sagemaker_client
        for name in self._model_names or []:
            client.delete_model(ModelName=name)
