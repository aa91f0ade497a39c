"""Endpoints: the API operations. Endpoint supervisors in `fleet` run the instances.

An endpoint's state holds the deployment it serves (its config and models resolved and copied at
create or update time, so later changes to either never reach a running endpoint) and, per
variant, the desired and current weight and instance count. Every API change bumps
`Generation`, so a supervisor only records "done" for the request it actually carried out.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from opensage.control.endpoint_configs import EndpointConfigService
from opensage.control.listing import page
from opensage.control.models import ModelService, containers
from opensage.control.naming import arn
from opensage.errors import NotFoundError, ValidationError
from opensage.store import Resource, Store

KIND = "Endpoint"
ACTIVE = ["Creating", "InService", "Updating", "SystemUpdating", "RollingBack", "Deleting"]
DEFAULT_STARTUP_TIMEOUT = 240.0


class EndpointService:
    def __init__(
        self,
        store: Store,
        configs: EndpointConfigService,
        models: ModelService,
        region: str,
        account: str,
        launch: Callable[[str], None],
    ) -> None:
        self.store = store
        self.configs = configs
        self.models = models
        self.region = region
        self.account = account
        self._launch = launch  # hands an endpoint to its supervisor
        self.on_delete: list[Callable[[str], None]] = []
        # Called by UpdateEndpoint with (name, current deployment, new deployment); a guard
        # raises to refuse the update (autoscaling: an autoscaled variant must not go away).
        self.update_guards: list[Callable[[str, dict[str, Any], dict[str, Any]], None]] = []

    def arn(self, name: str) -> str:
        return arn(self.region, self.account, "endpoint", name)

    # Create ------------------------------------------------------------------------------

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointName"]
        endpoint_arn = self.arn(name)
        if self.store.get_by_arn(endpoint_arn) is not None:
            raise ValidationError(f'Cannot create already existing endpoint "{endpoint_arn}".')
        deployment = self._deployment(request["EndpointConfigName"])
        now = time.time()
        state = {
            "Deployment": deployment,
            "Variants": {
                v["VariantName"]: {
                    "DesiredWeight": v["InitialVariantWeight"],
                    "DesiredInstanceCount": v["InitialInstanceCount"],
                    "CurrentWeight": v["InitialVariantWeight"],
                    "CurrentInstanceCount": 0,
                }
                for v in deployment["Variants"]
            },
            "Generation": 1,
            "LastModifiedTime": now,
        }
        request = {k: v for k, v in request.items() if k != "Tags"}
        resource = Resource(KIND, name, endpoint_arn, "Creating", now, now, request, state)
        if not self.store.insert(resource):
            raise ValidationError(f'Cannot create already existing endpoint "{endpoint_arn}".')
        self._tag(endpoint_arn, request, name)
        self._launch(name)
        return {"EndpointArn": endpoint_arn}

    def _tag(self, endpoint_arn: str, request: dict[str, Any], name: str) -> None:
        tags = {t["Key"]: t["Value"] for t in request.get("Tags", [])}
        if tags:
            self.store.put_tags(endpoint_arn, tags)

    def _deployment(self, config_name: str) -> dict[str, Any]:
        """The config and its models, resolved now: what the supervisor will run."""
        config = self.configs.get(config_name)
        variants = []
        for variant in config.request["ProductionVariants"]:
            model = self.models.get(variant["ModelName"])
            mode = (model.request.get("InferenceExecutionConfig") or {}).get("Mode", "Serial")
            variants.append(
                {
                    "VariantName": variant["VariantName"],
                    "ModelName": variant["ModelName"],
                    "InstanceType": variant["InstanceType"],
                    "InitialInstanceCount": variant["InitialInstanceCount"],
                    "InitialVariantWeight": variant["InitialVariantWeight"],
                    "Containers": containers(model.request),
                    "Mode": mode,
                    "NetworkIsolation": bool(model.request.get("EnableNetworkIsolation")),
                    "StartupTimeout": variant.get(
                        "ContainerStartupHealthCheckTimeoutInSeconds", DEFAULT_STARTUP_TIMEOUT
                    ),
                }
            )
        return {
            "Id": f"d-{secrets.token_hex(4)}",
            "EndpointConfigName": config.name,
            "Variants": variants,
        }

    # Read --------------------------------------------------------------------------------

    def get(self, name: str) -> Resource:
        endpoint = self.store.get(KIND, name)
        if endpoint is None:
            raise NotFoundError(f'Could not find endpoint "{self.arn(name)}".')
        return endpoint

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.get(request["EndpointName"])
        state = endpoint.state
        deployment = state["Deployment"]
        out: dict[str, Any] = {
            "EndpointName": endpoint.name,
            "EndpointArn": endpoint.arn,
            "EndpointConfigName": deployment["EndpointConfigName"],
            "ProductionVariants": [
                _variant_summary(v, state["Variants"][v["VariantName"]], endpoint.created_at)
                for v in deployment["Variants"]
            ],
            "EndpointStatus": endpoint.status,
            "CreationTime": endpoint.created_at,
            "LastModifiedTime": state.get("LastModifiedTime", endpoint.updated_at),
        }
        if "FailureReason" in state:
            out["FailureReason"] = state["FailureReason"]
        pending = state.get("Pending")
        if pending:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": pending["Deployment"]["EndpointConfigName"],
                "ProductionVariants": [
                    {
                        "VariantName": v["VariantName"],
                        "DesiredWeight": pending["Variants"][v["VariantName"]]["DesiredWeight"],
                        "DesiredInstanceCount": pending["Variants"][v["VariantName"]][
                            "DesiredInstanceCount"
                        ],
                        "InstanceType": v["InstanceType"],
                    }
                    for v in pending["Deployment"]["Variants"]
                ],
                "StartTime": pending["StartTime"],
            }
        return out

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        def summary(endpoint: Resource) -> dict[str, Any]:
            return {
                "EndpointName": endpoint.name,
                "EndpointArn": endpoint.arn,
                "CreationTime": endpoint.created_at,
                "LastModifiedTime": endpoint.state.get("LastModifiedTime", endpoint.updated_at),
                "EndpointStatus": endpoint.status,
            }

        return page(self.store, KIND, request, summary, "Endpoints", default_descending=True)

    # Update ------------------------------------------------------------------------------

    def update(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointName"]
        current = self.get(name)
        if request.get("DeploymentConfig") and request["DeploymentConfig"].get(
            "RollingUpdatePolicy"
        ):
            raise ValidationError("DeploymentConfig.RollingUpdatePolicy is not supported yet.")
        deployment = self._deployment(request["EndpointConfigName"])
        for guard in self.update_guards:
            guard(name, current.state["Deployment"], deployment)
        retain = request.get("RetainAllVariantProperties", False)
        excluded = {
            p["VariantPropertyType"] for p in request.get("ExcludeRetainedVariantProperties", [])
        }

        def change(endpoint: Resource) -> Resource:
            _require_in_service(endpoint, self.arn(name))
            current = endpoint.state["Variants"]
            variants = {}
            for v in deployment["Variants"]:
                values = {
                    "DesiredWeight": v["InitialVariantWeight"],
                    "DesiredInstanceCount": v["InitialInstanceCount"],
                }
                old = current.get(v["VariantName"])
                if retain and old is not None:
                    if "DesiredWeight" not in excluded:
                        values["DesiredWeight"] = old["DesiredWeight"]
                    if "DesiredInstanceCount" not in excluded:
                        values["DesiredInstanceCount"] = old["DesiredInstanceCount"]
                variants[v["VariantName"]] = values
            now = time.time()
            endpoint.state["Pending"] = {
                "Deployment": deployment,
                "Variants": variants,
                "StartTime": now,
            }
            endpoint.state.pop("FailureReason", None)
            return _touch(endpoint, "Updating", now)

        self.store.mutate(KIND, name, change)
        self._launch(name)
        return {"EndpointArn": self.arn(name)}

    def update_weights_and_capacities(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointName"]
        self.get(name)
        desired = request["DesiredWeightsAndCapacities"]

        def change(endpoint: Resource) -> Resource:
            _require_in_service(endpoint, self.arn(name))
            variants = endpoint.state["Variants"]
            unknown = [d["VariantName"] for d in desired if d["VariantName"] not in variants]
            if unknown:
                raise ValidationError(
                    f"The variant(s) {unknown} are not present in endpoint "
                    f'"{self.arn(name)}"; variants: {sorted(variants)}.'
                )
            for d in desired:
                if "DesiredWeight" not in d and "DesiredInstanceCount" not in d:
                    raise ValidationError(
                        f"Variant {d['VariantName']}: specify DesiredWeight or "
                        "DesiredInstanceCount."
                    )
                if d.get("ServerlessUpdateConfig"):
                    raise ValidationError("ServerlessUpdateConfig is not supported yet.")
                if d.get("DesiredInstanceCount") == 0:
                    raise ValidationError(
                        f"Variant {d['VariantName']}: DesiredInstanceCount must be at least 1."
                    )
            for d in desired:
                values = variants[d["VariantName"]]
                for key in ("DesiredWeight", "DesiredInstanceCount"):
                    if key in d:
                        values[key] = d[key]
            endpoint.state.pop("FailureReason", None)
            return _touch(endpoint, "Updating", time.time())

        self.store.mutate(KIND, name, change)
        self._launch(name)
        return {"EndpointArn": self.arn(name)}

    def set_instance_count(self, name: str, variant: str, count: int) -> bool:
        """What autoscaling calls: False when the endpoint cannot change now (not InService)."""
        try:
            self.update_weights_and_capacities(
                {
                    "EndpointName": name,
                    "DesiredWeightsAndCapacities": [
                        {"VariantName": variant, "DesiredInstanceCount": count}
                    ],
                }
            )
        except ValidationError:
            return False
        return True

    # Delete ------------------------------------------------------------------------------

    def delete(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointName"]
        self.get(name)

        def change(endpoint: Resource) -> Resource | None:
            if endpoint.status == "Deleting":
                return None
            return _touch(endpoint, "Deleting", time.time())

        self.store.mutate(KIND, name, change)
        for hook in self.on_delete:
            hook(name)
        self._launch(name)
        return {}


def _require_in_service(endpoint: Resource, endpoint_arn: str) -> None:
    if endpoint.status != "InService":
        if endpoint.status in ("Creating", "Updating", "SystemUpdating", "RollingBack"):
            raise ValidationError(f'Cannot update in-progress endpoint "{endpoint_arn}".')
        raise ValidationError(
            f'Cannot update endpoint "{endpoint_arn}" in status {endpoint.status}; only an '
            "InService endpoint can be updated."
        )


def _touch(endpoint: Resource, status: str, now: float) -> Resource:
    endpoint.status = status
    endpoint.state["Generation"] = endpoint.state.get("Generation", 0) + 1
    endpoint.state["LastModifiedTime"] = now
    endpoint.updated_at = now
    return endpoint


def _variant_summary(
    variant: dict[str, Any], values: dict[str, Any], resolved_at: float
) -> dict[str, Any]:
    return {
        "VariantName": variant["VariantName"],
        "DeployedImages": [
            {
                "SpecifiedImage": c["Image"],
                "ResolvedImage": c["Image"],
                "ResolutionTime": resolved_at,
            }
            for c in variant["Containers"]
        ],
        "CurrentWeight": values["CurrentWeight"],
        "DesiredWeight": values["DesiredWeight"],
        "CurrentInstanceCount": values["CurrentInstanceCount"],
        "DesiredInstanceCount": values["DesiredInstanceCount"],
    }
