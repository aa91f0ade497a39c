"""Endpoint configurations: immutable lists of production variants, each naming a model."""

from __future__ import annotations

import time
from typing import Any

from opensage.control.listing import page
from opensage.control.models import ModelService
from opensage.control.naming import arn
from opensage.control.tags import insert_tagged
from opensage.errors import NotFoundError, ValidationError
from opensage.store import Resource, Store

KIND = "EndpointConfig"


class EndpointConfigService:
    def __init__(self, store: Store, models: ModelService, region: str, account: str) -> None:
        self.store = store
        self.models = models
        self.region = region
        self.account = account

    def arn(self, name: str) -> str:
        return arn(self.region, self.account, "endpoint-config", name)

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointConfigName"]
        config_arn = self.arn(name)
        request = {**request, "ProductionVariants": self._variants(request)}
        for unsupported in ("DataCaptureConfig", "AsyncInferenceConfig", "ExplainerConfig",
                            "ShadowProductionVariants"):  # fmt: skip
            if request.get(unsupported):
                raise ValidationError(f"{unsupported} is not supported yet.")
        now = time.time()
        resource = Resource(KIND, name, config_arn, "Created", now, now, request, {})
        duplicate = ValidationError(
            f'Cannot create already existing endpoint configuration "{config_arn}".'
        )
        insert_tagged(self.store, resource, request, duplicate)
        return {"EndpointConfigArn": config_arn}

    def _variants(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        variants = request["ProductionVariants"]
        names = [v["VariantName"] for v in variants]
        if len({n.lower() for n in names}) != len(names):
            raise ValidationError("VariantName values must be unique within an endpoint config.")
        out = []
        for variant in variants:
            name = variant["VariantName"]
            if variant.get("ServerlessConfig"):
                raise ValidationError(f"Variant {name}: ServerlessConfig is not supported yet.")
            if not variant.get("ModelName"):
                raise ValidationError(f"Variant {name}: ModelName is required.")
            if not variant.get("InstanceType") or not variant.get("InitialInstanceCount"):
                raise ValidationError(
                    f"Variant {name}: InstanceType and InitialInstanceCount are required."
                )
            self.models.get(variant["ModelName"])
            out.append({"InitialVariantWeight": 1.0, **variant})
        return out

    def get(self, name: str) -> Resource:
        config = self.store.get(KIND, name)
        if config is None:
            raise NotFoundError(f'Could not find endpoint configuration "{self.arn(name)}".')
        return config

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        config = self.get(request["EndpointConfigName"])
        echoed = {k: v for k, v in config.request.items() if k != "Tags"}
        return {**echoed, "EndpointConfigArn": config.arn, "CreationTime": config.created_at}

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        def summary(config: Resource) -> dict[str, Any]:
            return {
                "EndpointConfigName": config.name,
                "EndpointConfigArn": config.arn,
                "CreationTime": config.created_at,
            }

        return page(self.store, KIND, request, summary, "EndpointConfigs", default_descending=True)

    def delete(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointConfigName"]
        if not self.store.delete(KIND, name):
            raise NotFoundError(f'Could not find endpoint configuration "{self.arn(name)}".')
        return {}
