"""Endpoints from production variants, as the SageMaker SDK makes them: `production_variant`
(`sagemaker.session.production_variant`), the config and endpoint behind both `Model.deploy` and
`Session.endpoint_from_production_variants`, and the wait for InService.

>>> session.endpoint_from_production_variants("ab", [
...     production_variant("model-a", "ml.m5.large", 1, variant_name="A", initial_weight=3),
...     production_variant("model-b", "ml.m5.large", 1, variant_name="B", initial_weight=1),
... ])                                                                  # doctest: +SKIP
'ab'
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from opensage.sdk.errors import UnexpectedStatusError

if TYPE_CHECKING:
    from opensage.sdk.session import Session

IN_PROGRESS = {"Creating", "Updating", "SystemUpdating", "RollingBack"}


def production_variant(
    model_name: str,
    instance_type: str | None = None,
    initial_instance_count: int | None = None,
    variant_name: str = "AllTraffic",
    initial_weight: float = 1,
    volume_size: int | None = None,
    model_data_download_timeout: int | None = None,
    container_startup_health_check_timeout: int | None = None,
    routing_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `ProductionVariant` of a CreateEndpointConfig request (an instance count of 1 when
    an instance type is given without one, as the SDK does)."""
    variant: dict[str, Any] = {
        "VariantName": variant_name,
        "ModelName": model_name,
        "InitialVariantWeight": initial_weight,
    }
    if instance_type is not None:
        variant["InstanceType"] = instance_type
        variant["InitialInstanceCount"] = initial_instance_count or 1
    optional = {
        "VolumeSizeInGB": volume_size,
        "ModelDataDownloadTimeoutInSeconds": model_data_download_timeout,
        "ContainerStartupHealthCheckTimeoutInSeconds": container_startup_health_check_timeout,
        "RoutingConfig": routing_config,
    }
    variant.update({key: value for key, value in optional.items() if value is not None})
    return variant


def create_endpoint(
    session: Session,
    name: str,
    variants: list[dict[str, Any]],
    tags: list[dict[str, str]] | None = None,
    kms_key: str | None = None,
    wait: bool = True,
) -> str:
    """An endpoint config named `name` with `variants`, and the endpoint on it."""
    client = session.sagemaker_client
    config: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": variants}
    if kms_key:
        config["KmsKeyId"] = kms_key
    if tags:
        config["Tags"] = tags
    client.create_endpoint_config(**config)
    client.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags or [])
    if wait:
        wait_for_endpoint(session, name)
    return name


def wait_for_endpoint(session: Session, name: str, poll: float = 0.5) -> dict[str, Any]:
    """Poll until the endpoint leaves Creating/Updating, printing a dash per poll as the SDK does;
    raise with the FailureReason unless it is InService."""
    client = session.sagemaker_client
    while True:
        desc = dict(client.describe_endpoint(EndpointName=name))
        if desc["EndpointStatus"] not in IN_PROGRESS:
            break
        print("-", end="", flush=True, file=sys.stdout)
        time.sleep(poll)
    print("!", flush=True)
    if desc["EndpointStatus"] != "InService":
        reason = desc.get("FailureReason", "(no reason given)")
        raise UnexpectedStatusError(
            f"Error hosting endpoint {name}: {desc['EndpointStatus']}. Reason: {reason}.",
            desc["EndpointStatus"],
        )
    return desc
