"""Application Auto Scaling through the real boto3 clients: targets, policies, activities, and a
target-tracking policy scaling a variant out under load and back in when the load stops."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import Clients, wait_for
from tests.integration.hosting import ROW, delete, deploy, variant, wait_in_service, xgboost_model

DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def scope(resource_id: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"ServiceNamespace": "sagemaker", **extra}
    if resource_id is not None:
        out.update(ResourceId=resource_id, ScalableDimension=DIMENSION)
    return out


def tracking(target_value: float, **extra: Any) -> dict[str, Any]:
    return {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": target_value,
            "PredefinedMetricSpecification": METRIC,
            **extra,
        },
    }


def counts(clients: Clients, endpoint: str) -> tuple[str, int, int]:
    desc = clients.sagemaker.describe_endpoint(EndpointName=endpoint)
    (summary,) = desc["ProductionVariants"]
    return (
        desc["EndpointStatus"],
        summary["DesiredInstanceCount"],
        summary["CurrentInstanceCount"],
    )


def activities(clients: Clients, resource_id: str) -> list[dict[str, Any]]:
    response = clients.autoscaling.describe_scaling_activities(**scope(resource_id))
    return list(response["ScalingActivities"])


def all_settled(clients: Clients, resource_id: str) -> list[dict[str, Any]] | None:
    found = activities(clients, resource_id)
    return found if found and all(a["StatusCode"] != "InProgress" for a in found) else None


def test_targets_policies_and_activities(server: Clients) -> None:
    aas, sm = server.autoscaling, server.sagemaker
    xgboost_model(server, "scaled-model")
    deploy(server, "scaled", [variant("scaled-model")])
    rid = "endpoint/scaled/variant/AllTraffic"

    # What cannot be registered, and why.
    refused = [
        (scope("endpoint/scaled", MinCapacity=1, MaxCapacity=2), "Invalid ResourceId"),
        (scope("endpoint/ghost/variant/AllTraffic", MinCapacity=1, MaxCapacity=2),
         'Endpoint "ghost" (ResourceId endpoint/ghost/variant/AllTraffic) does not exist'),
        (scope("endpoint/scaled/variant/Nope", MinCapacity=1, MaxCapacity=2),
         "Variant \"Nope\" does not exist in endpoint \"scaled\" (ResourceId "
         "endpoint/scaled/variant/Nope); its variants are ['AllTraffic']."),
        ({**scope(rid, MinCapacity=1, MaxCapacity=2), "ServiceNamespace": "ecs"},
         "ServiceNamespace ecs is not supported yet"),
        ({**scope(rid, MinCapacity=1, MaxCapacity=2),
          "ScalableDimension": "sagemaker:variant:DesiredProvisionedConcurrency"},
         "ScalableDimension sagemaker:variant:DesiredProvisionedConcurrency is not supported yet"),
        (scope(rid, MinCapacity=3, MaxCapacity=2),
         "MinCapacity (3) cannot be greater than MaxCapacity (2)."),
        (scope(rid, MinCapacity=0, MaxCapacity=2), "MinCapacity must be at least 1"),
        (scope(rid, MinCapacity=1), "MinCapacity and MaxCapacity are required"),
    ]  # fmt: skip
    for request, message in refused:
        with pytest.raises(ClientError) as exc:
            aas.register_scalable_target(**request)
        code, text = error_of(exc)
        assert code == "ValidationException"
        assert message in text
    with pytest.raises(ClientError) as exc:
        aas.put_scaling_policy(PolicyName="early", **scope(rid), **tracking(5.0))
    assert error_of(exc) == (
        "ObjectNotFoundException",
        f"No scalable target registered for service namespace: sagemaker, resource ID: {rid}, "
        f"scalable dimension: {DIMENSION}",
    )

    # Register, describe, register again to update.
    arn = aas.register_scalable_target(**scope(rid, MinCapacity=1, MaxCapacity=2))[
        "ScalableTargetARN"
    ]
    assert re.fullmatch(
        r"arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/[0-9a-f]{36}", arn
    )
    assert aas.register_scalable_target(**scope(rid, MaxCapacity=3))["ScalableTargetARN"] == arn
    (target,) = aas.describe_scalable_targets(**scope())["ScalableTargets"]
    assert {k: target[k] for k in ("ResourceId", "ScalableDimension", "MinCapacity",
                                   "MaxCapacity", "ScalableTargetARN")} == {
        "ResourceId": rid, "ScalableDimension": DIMENSION, "MinCapacity": 1, "MaxCapacity": 3,
        "ScalableTargetARN": arn,
    }  # fmt: skip
    assert target["SuspendedState"] == {
        "DynamicScalingInSuspended": False,
        "DynamicScalingOutSuspended": False,
        "ScheduledScalingSuspended": False,
    }
    assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in target["RoleARN"]
    assert (
        aas.describe_scalable_targets(**scope(), ResourceIds=["endpoint/x/variant/y"])[
            "ScalableTargets"
        ]
        == []
    )

    # Policies: create, update by name, page through, refuse what is not built.
    policy = aas.put_scaling_policy(PolicyName="calls", **scope(rid), **tracking(70.0))
    assert re.fullmatch(
        r"arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:[0-9a-f-]{36}:"
        rf"resource/sagemaker/{rid}:policyName/calls",
        policy["PolicyARN"],
    )
    names = sorted(a["AlarmName"] for a in policy["Alarms"])
    assert [re.sub(r"[0-9a-f-]{36}$", "<uuid>", n) for n in names] == [
        f"TargetTracking-{rid}-AlarmHigh-<uuid>",
        f"TargetTracking-{rid}-AlarmLow-<uuid>",
    ]
    for alarm in policy["Alarms"]:
        assert alarm["AlarmARN"] == (
            f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm['AlarmName']}"
        )
    updated = aas.put_scaling_policy(
        PolicyName="calls", **scope(rid), **tracking(50.0, DisableScaleIn=True)
    )
    assert updated["PolicyARN"] == policy["PolicyARN"]
    assert ["AlarmHigh" in a["AlarmName"] for a in updated["Alarms"]] == [True]
    aas.put_scaling_policy(PolicyName="other", **scope(rid), **tracking(200.0))
    first = aas.describe_scaling_policies(**scope(), ResourceId=rid, MaxResults=1)
    second = aas.describe_scaling_policies(**scope(), NextToken=first["NextToken"], MaxResults=1)
    assert "NextToken" not in second
    listed = first["ScalingPolicies"] + second["ScalingPolicies"]
    assert [p["PolicyName"] for p in listed] == ["calls", "other"]
    calls = listed[0]
    assert calls["PolicyType"] == "TargetTrackingScaling"
    assert calls["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 50.0, "PredefinedMetricSpecification": METRIC, "DisableScaleIn": True,
    }  # fmt: skip
    assert (calls["ResourceId"], calls["ScalableDimension"]) == (rid, DIMENSION)
    only = aas.describe_scaling_policies(**scope(), PolicyNames=["other"])["ScalingPolicies"]
    assert [p["PolicyName"] for p in only] == ["other"]

    not_built = [
        ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [{"ScalingAdjustment": 1, "MetricIntervalLowerBound": 0.0}]}},
         "PolicyType StepScaling is not supported yet"),
        ({"PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 1.0, "CustomizedMetricSpecification": {
                "MetricName": "CPUUtilization", "Namespace": "/aws/sagemaker/Endpoints",
                "Statistic": "Average"}}},
         "CustomizedMetricSpecification is not supported yet"),
        (tracking(1.0, PredefinedMetricSpecification={
            "PredefinedMetricType": "SageMakerVariantProvisionedConcurrencyUtilization"}),
         "PredefinedMetricType SageMakerVariantProvisionedConcurrencyUtilization is not "
         "supported yet"),
        ({}, "PolicyType StepScaling (the default when PolicyType is omitted) is not supported"),
        (tracking(0.0), "TargetValue must be a number greater than 0"),
    ]  # fmt: skip
    for request, message in not_built:
        with pytest.raises(ClientError) as exc:
            aas.put_scaling_policy(PolicyName="new", **scope(rid), **request)
        assert error_of(exc)[0] == "ValidationException"
        assert message in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        aas.describe_scaling_policies(**scope(), NextToken="garbage")
    assert error_of(exc)[0] == "InvalidNextTokenException"
    with pytest.raises(ClientError) as exc:
        aas.describe_scalable_targets(**scope(), MaxResults=51)
    assert error_of(exc)[0] == "ValidationException"

    aas.delete_scaling_policy(PolicyName="other", **scope(rid))
    with pytest.raises(ClientError) as exc:
        aas.delete_scaling_policy(PolicyName="other", **scope(rid))
    assert error_of(exc) == (
        "ObjectNotFoundException",
        f"No scaling policy found for service namespace: sagemaker, resource ID: {rid}, "
        f"scalable dimension: {DIMENSION}, policy name: other",
    )

    # UpdateEndpoint may change an autoscaled variant's model, not remove it or its instances.
    xgboost_model(server, "scaled-model-2", seed=1)
    for config, change in [
        ("scaled-renamed", variant("scaled-model-2", "Renamed")),
        ("scaled-bigger", {**variant("scaled-model-2"), "InstanceType": "ml.c5.xlarge"}),
    ]:
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[change])
        with pytest.raises(ClientError) as exc:
            sm.update_endpoint(EndpointName="scaled", EndpointConfigName=config)
        code, message = error_of(exc)
        assert code == "ValidationException"
        assert f"is registered with Application Auto Scaling (ResourceId {rid})" in message
        assert "DeregisterScalableTarget" in message
    sm.create_endpoint_config(
        EndpointConfigName="scaled-new-model", ProductionVariants=[variant("scaled-model-2")]
    )
    sm.update_endpoint(EndpointName="scaled", EndpointConfigName="scaled-new-model")
    wait_in_service(server, "scaled")

    # Registering a range the variant is outside of scales it into the range.
    aas.register_scalable_target(**scope(rid, MinCapacity=2))
    wait_for(lambda: counts(server, "scaled") == ("InService", 2, 2), 60, 0.1,
             "the variant to scale into its new range")  # fmt: skip
    (activity,) = wait_for(lambda: all_settled(server, rid), 30, 0.1, "the activity to settle")
    assert {k: activity[k] for k in ("ServiceNamespace", "ResourceId", "ScalableDimension",
                                     "Description", "Cause", "StatusCode", "StatusMessage")} == {
        "ServiceNamespace": "sagemaker", "ResourceId": rid, "ScalableDimension": DIMENSION,
        "Description": "Setting desired instance count to 2.",
        "Cause": "minimum capacity was set to 2", "StatusCode": "Successful",
        "StatusMessage": "Successfully set desired instance count to 2. Change successfully "
                         "fulfilled by sagemaker.",
    }  # fmt: skip
    assert activity["EndTime"] >= activity["StartTime"]

    # Deregistering removes the target and its policies.
    aas.deregister_scalable_target(**scope(rid))
    assert aas.describe_scalable_targets(**scope())["ScalableTargets"] == []
    assert aas.describe_scaling_policies(**scope())["ScalingPolicies"] == []
    with pytest.raises(ClientError) as exc:
        aas.deregister_scalable_target(**scope(rid))
    assert error_of(exc)[0] == "ObjectNotFoundException"

    # Deleting the endpoint silently deregisters its targets.
    aas.register_scalable_target(**scope(rid, MinCapacity=1, MaxCapacity=2))
    aas.put_scaling_policy(PolicyName="calls", **scope(rid), **tracking(70.0))
    sm.delete_endpoint(EndpointName="scaled")
    assert aas.describe_scalable_targets(**scope(), ResourceIds=[rid])["ScalableTargets"] == []
    assert aas.describe_scaling_policies(**scope())["ScalingPolicies"] == []
    delete_waited(server, "scaled")


def delete_waited(clients: Clients, name: str) -> None:
    clients.sagemaker.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )


def test_target_tracking_scales_out_under_load_and_back_in(server: Clients) -> None:
    """Done-when: under a bounded load on loopback the target-tracking policy scales a variant
    out and back in within its min/max, and DescribeScalingActivities shows why."""
    aas = server.autoscaling
    xgboost_model(server, "busy-model")
    deploy(server, "busy", [variant("busy-model")])
    rid = "endpoint/busy/variant/AllTraffic"
    aas.register_scalable_target(**scope(rid, MinCapacity=1, MaxCapacity=3))
    # Any traffic at all is far above one invocation per instance per (one-second) period.
    aas.put_scaling_policy(
        PolicyName="busy-calls",
        **scope(rid),
        **tracking(1.0, ScaleOutCooldown=0, ScaleInCooldown=1),
    )

    stop = threading.Event()
    failures: list[BaseException] = []

    def load() -> None:
        deadline = time.monotonic() + 90  # bounded even if the test fails midway
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                server.runtime_client.invoke_endpoint(
                    EndpointName="busy", Body=ROW, ContentType="text/csv"
                )["Body"].read()
            except BaseException as exc:
                failures.append(exc)

    seen: list[int] = []

    def desired_at_least(count: int) -> bool:
        desired = counts(server, "busy")[1]
        seen.append(desired)
        return desired >= count

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_for(lambda: desired_at_least(2), 60, 0.1, "the variant to scale out")
    finally:
        stop.set()
        worker.join(60)
    assert failures == []

    def back_to_min() -> bool:
        status, desired, current = counts(server, "busy")
        seen.append(desired)
        return (status, desired, current) == ("InService", 1, 1)

    wait_for(back_to_min, 60, 0.1, "the variant to scale back in")
    assert max(seen) <= 3
    assert min(seen) >= 1

    found = wait_for(lambda: all_settled(server, rid), 30, 0.1, "the activities to settle")
    outward = [a for a in found if "-AlarmHigh-" in a["Cause"]]
    inward = [a for a in found if "-AlarmLow-" in a["Cause"]]
    assert outward
    assert inward
    assert found[0] is inward[0]  # newest first: the scale-in came last
    cause = (
        rf"monitor alarm TargetTracking-{rid}-Alarm(High|Low)-[0-9a-f-]{{36}} in state ALARM "
        r"triggered policy busy-calls"
    )
    for activity in found:
        assert re.fullmatch(cause, activity["Cause"])
        assert activity["StatusCode"] == "Successful"
        described = re.fullmatch(
            r"Setting desired instance count to (\d)\.", activity["Description"]
        )
        assert described is not None
        count = int(described[1])
        assert 1 <= count <= 3
        assert activity["StatusMessage"] == (
            f"Successfully set desired instance count to {count}. Change successfully fulfilled "
            "by sagemaker."
        )
    assert outward[-1]["Description"] in (
        "Setting desired instance count to 2.",
        "Setting desired instance count to 3.",
    )
    assert inward[0]["Description"] == "Setting desired instance count to 1."
    page = aas.describe_scaling_activities(**scope(), MaxResults=1)
    assert page["ScalingActivities"][0]["ActivityId"] == found[0]["ActivityId"]
    assert "NextToken" in page
    delete(server, "busy")
