"""Application Auto Scaling for endpoint variants: scalable targets, scaling policies, activities.

This is the API half; `autoscaler` is the loop that evaluates the policies. A scalable target is a
stored resource of kind `ScalableTarget` named by its ResourceId
(`endpoint/<EndpointName>/variant/<VariantName>`). Its scaling policies and its latest scaling
activities live in its state, so they come and go with it: deregistering a target, or deleting
its endpoint, removes them all, and no schema change was needed to store them.

Only what SageMaker endpoints use is built: namespace `sagemaker`, dimension
`sagemaker:variant:DesiredInstanceCount`, target tracking on
`SageMakerVariantInvocationsPerInstance`. Everything else is refused with a ValidationException
that says it is not supported yet, rather than accepted and silently ignored.
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opensage.control.endpoints import EndpointService
from opensage.control.naming import decode_token, encode_token
from opensage.errors import (
    InvalidNextTokenError,
    LimitExceededError,
    NotFoundError,
    ObjectNotFoundError,
    OpenSageError,
    ValidationError,
)
from opensage.store import Resource, Store
from opensage.store.repository import ListQuery

KIND = "ScalableTarget"
STATUS = "Registered"
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
TARGET_TRACKING = "TargetTrackingScaling"
INVOCATIONS_PER_INSTANCE = "SageMakerVariantInvocationsPerInstance"
DEFAULT_COOLDOWN = 300  # seconds, both directions, for SageMaker variants
MAX_POLICIES = 50  # per scalable target
MAX_ACTIVITIES = 100  # kept per scalable target, newest first
MAX_RESULTS = 50  # the Describe* page size limit (and default)
_LIST_ALL = 100_000
_NAME = r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}"  # endpoint and variant names
_RESOURCE_ID = re.compile(rf"endpoint/(?P<endpoint>{_NAME})/variant/(?P<variant>{_NAME})")
_SERVICE_ROLE = (
    "arn:aws:iam::{account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
_SUSPENDED = (
    "DynamicScalingInSuspended",
    "DynamicScalingOutSuspended",
    "ScheduledScalingSuspended",
)
_ACTIVITY_FIELDS = (
    "ActivityId",
    "ServiceNamespace",
    "ResourceId",
    "ScalableDimension",
    "Description",
    "Cause",
    "StartTime",
    "EndTime",
    "StatusCode",
    "StatusMessage",
)


@dataclass(frozen=True)
class VariantRef:
    """The endpoint variant a ResourceId names."""

    endpoint: str
    variant: str

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.endpoint}/variant/{self.variant}"


def parse_resource_id(resource_id: str) -> VariantRef:
    match = _RESOURCE_ID.fullmatch(resource_id)
    if match is None:
        raise ValidationError(
            f'Invalid ResourceId "{resource_id}": for a SageMaker endpoint variant it must be '
            "endpoint/<EndpointName>/variant/<VariantName>, e.g. endpoint/my-endpoint/variant/"
            "AllTraffic."
        )
    return VariantRef(match["endpoint"], match["variant"])


def activity_outcome(
    capacity: int, status: str, values: dict[str, Any] | None, failure_reason: str | None
) -> tuple[str, str] | None:
    """How a scaling activity to `capacity` ended, judged from its endpoint; None: not yet.

    It succeeded once the endpoint is back InService with that many instances running; it
    failed when the endpoint failed, rolled the change back, or someone else changed the count.
    """
    failed = f"Failed to set desired instance count to {capacity}."
    if values is None or status == "Failed":
        return "Failed", f"{failed} {failure_reason or 'The endpoint variant is gone.'}"
    if status != "InService":
        return None
    desired = int(values["DesiredInstanceCount"])
    if desired != capacity:
        why = failure_reason or (
            f"The variant's desired instance count is {desired} now: another request changed it."
        )
        return "Failed", f"{failed} {why}"
    if int(values["CurrentInstanceCount"]) == capacity:
        return "Successful", (
            f"Successfully set desired instance count to {capacity}. Change successfully "
            "fulfilled by sagemaker."
        )
    return None


class AutoscalingService:
    """The `application-autoscaling` operations, and the capacity changes the autoscaler makes."""

    def __init__(self, store: Store, endpoints: EndpointService, region: str, account: str) -> None:
        self.store = store
        self.endpoints = endpoints
        self.region = region
        self.account = account
        # One capacity change at a time: a registration bringing the count into range and the
        # autoscaler must not both change it and both record an activity.
        self._lock = threading.RLock()

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "RegisterScalableTarget": self.register,
            "DescribeScalableTargets": self.describe_targets,
            "DeregisterScalableTarget": self.deregister,
            "PutScalingPolicy": self.put_policy,
            "DescribeScalingPolicies": self.describe_policies,
            "DeleteScalingPolicy": self.delete_policy,
            "DescribeScalingActivities": self.describe_activities,
        }

    # Scalable targets --------------------------------------------------------------------

    def register(self, request: dict[str, Any]) -> dict[str, Any]:
        _check_scope(request)
        ref = self._existing_variant(request["ResourceId"])
        target = self._create(ref, request) or self._update(ref, request)
        if target is None:  # deregistered while we updated it: register it anew
            target = self._create(ref, request)
            if target is None:
                raise OpenSageError("The scalable target changed concurrently; try again.")
        self.enforce_range(target)
        return {"ScalableTargetARN": target.arn}

    def _create(self, ref: VariantRef, request: dict[str, Any]) -> Resource | None:
        """The new target, or None when one is registered already."""
        if self.store.get(KIND, ref.resource_id) is not None:
            return None
        if "MinCapacity" not in request or "MaxCapacity" not in request:
            raise ValidationError(
                "MinCapacity and MaxCapacity are required to register a new scalable target "
                f"({ref.resource_id})."
            )
        _check_capacities(request["MinCapacity"], request["MaxCapacity"])
        now = time.time()
        suspended = dict.fromkeys(_SUSPENDED, False)
        suspended.update(request.get("SuspendedState") or {})
        state = {
            "MinCapacity": request["MinCapacity"],
            "MaxCapacity": request["MaxCapacity"],
            "RoleARN": request.get("RoleARN") or _SERVICE_ROLE.format(account=self.account),
            "SuspendedState": suspended,
            "Policies": [],
            "Activities": [],
            "RangePending": True,
        }
        arn = (
            f"arn:aws:application-autoscaling:{self.region}:{self.account}:scalable-target/"
            f"{secrets.token_hex(18)}"
        )
        stored = {k: v for k, v in request.items() if k != "Tags"}
        target = Resource(KIND, ref.resource_id, arn, STATUS, now, now, stored, state)
        if not self.store.insert(target):
            return None
        if request.get("Tags"):
            self.store.put_tags(arn, dict(request["Tags"]))
        return target

    def _update(self, ref: VariantRef, request: dict[str, Any]) -> Resource | None:
        """Registering again changes what the request names and keeps the rest."""

        def change(target: Resource) -> Resource:
            state = target.state
            low = request.get("MinCapacity", state["MinCapacity"])
            high = request.get("MaxCapacity", state["MaxCapacity"])
            _check_capacities(low, high)
            state["MinCapacity"], state["MaxCapacity"] = low, high
            if "MinCapacity" in request or "MaxCapacity" in request:
                state["RangePending"] = True
            if request.get("RoleARN"):
                state["RoleARN"] = request["RoleARN"]
            state["SuspendedState"].update(request.get("SuspendedState") or {})
            target.updated_at = time.time()
            return target

        return self.store.mutate(KIND, ref.resource_id, change)

    def describe_targets(self, request: dict[str, Any]) -> dict[str, Any]:
        _check_scope(request)
        targets = self._targets(request.get("ResourceIds") or None)
        return _page(request, [_target_summary(t) for t in targets], "ScalableTargets")

    def deregister(self, request: dict[str, Any]) -> dict[str, Any]:
        _check_scope(request)
        if not self.store.delete(KIND, request["ResourceId"]):
            raise ObjectNotFoundError(_no_target(request["ResourceId"]))
        return {}

    def targets(self) -> list[Resource]:
        """Every registered target, oldest first."""
        return self._targets(None)

    def _targets(self, resource_ids: Iterable[str] | None) -> list[Resource]:
        if resource_ids is not None:
            found = (self.store.get(KIND, rid) for rid in dict.fromkeys(resource_ids))
            targets = [t for t in found if t is not None]
        else:
            targets = self.store.query(ListQuery(kind=KIND, limit=_LIST_ALL))
        return sorted(targets, key=lambda t: (t.created_at, t.name))

    def _targets_of(self, endpoint: str) -> list[Resource]:
        prefix = f"endpoint/{endpoint}/variant/"
        query = ListQuery(kind=KIND, name_contains=prefix, limit=_LIST_ALL)
        return [t for t in self.store.query(query) if t.name.startswith(prefix)]

    def _existing_variant(self, resource_id: str) -> VariantRef:
        ref = parse_resource_id(resource_id)
        endpoint = self.endpoint(ref.endpoint)
        if endpoint is None:
            raise ValidationError(
                f'Endpoint "{ref.endpoint}" (ResourceId {resource_id}) does not exist; create it '
                "before registering its variant as a scalable target."
            )
        variants = endpoint.state["Variants"]
        if ref.variant not in variants:
            raise ValidationError(
                f'Variant "{ref.variant}" does not exist in endpoint "{ref.endpoint}" '
                f"(ResourceId {resource_id}); its variants are {sorted(variants)}."
            )
        return ref

    def endpoint(self, name: str) -> Resource | None:
        """The endpoint, or None when it does not exist (or is being deleted)."""
        try:
            endpoint = self.endpoints.get(name)
        except NotFoundError:
            return None
        return None if endpoint.status == "Deleting" else endpoint

    # Endpoint hooks ----------------------------------------------------------------------

    def deregister_endpoint(self, endpoint: str) -> None:
        """DeleteEndpoint silently deregisters the endpoint's targets and their policies."""
        for target in self._targets_of(endpoint):
            self.store.delete(KIND, target.name)

    def guard_update(self, endpoint: str, current: dict[str, Any], new: dict[str, Any]) -> None:
        """UpdateEndpoint must not remove, or change the instance type of, an autoscaled variant.

        Changing only the model of such a variant is fine: its instances stay what the scaling
        policies were tuned for.
        """
        old_types = {v["VariantName"]: v["InstanceType"] for v in current["Variants"]}
        new_types = {v["VariantName"]: v["InstanceType"] for v in new["Variants"]}
        for target in self._targets_of(endpoint):
            variant = parse_resource_id(target.name).variant
            if variant not in new_types:
                what = (
                    f'endpoint configuration "{new["EndpointConfigName"]}" has no variant {variant}'
                )
            elif variant in old_types and new_types[variant] != old_types[variant]:
                what = (
                    f"variant {variant} would change its InstanceType from {old_types[variant]} "
                    f"to {new_types[variant]}"
                )
            else:
                continue
            raise ValidationError(
                f'Cannot update endpoint "{self.endpoints.arn(endpoint)}": {what}, and variant '
                f"{variant} is registered with Application Auto Scaling (ResourceId "
                f"{target.name}). Deregister the scalable target (DeregisterScalableTarget) "
                "first, then update the endpoint and register the target again."
            )

    # Scaling policies --------------------------------------------------------------------

    def put_policy(self, request: dict[str, Any]) -> dict[str, Any]:
        _check_scope(request)
        resource_id, name = request["ResourceId"], request["PolicyName"]
        out: dict[str, Any] = {}

        def change(target: Resource) -> Resource:
            policies: list[dict[str, Any]] = target.state["Policies"]
            old = next((p for p in policies if p["PolicyName"] == name), None)
            policy_type = request.get("PolicyType") or (old or {}).get("PolicyType")
            config = _tracking_config(policy_type, request)
            if old is None and len(policies) >= MAX_POLICIES:
                raise LimitExceededError(
                    f"{resource_id} has {MAX_POLICIES} scaling policies already, the most a "
                    "scalable target can have; delete one (DeleteScalingPolicy) first."
                )
            policy = old if old is not None else self._new_policy(resource_id, name)
            policy["PolicyType"] = TARGET_TRACKING
            policy["TargetTrackingScalingPolicyConfiguration"] = config
            policy["Alarms"] = self._alarms(resource_id, config)
            if old is None:
                policies.append(policy)
            out.update(PolicyARN=policy["PolicyARN"], Alarms=policy["Alarms"])
            target.updated_at = time.time()
            return target

        if self.store.mutate(KIND, resource_id, change) is None:
            raise ObjectNotFoundError(_no_target(resource_id))
        return out

    def _new_policy(self, resource_id: str, name: str) -> dict[str, Any]:
        arn = (
            f"arn:aws:autoscaling:{self.region}:{self.account}:scalingPolicy:{uuid.uuid4()}:"
            f"resource/{NAMESPACE}/{resource_id}:policyName/{name}"
        )
        return {"PolicyName": name, "PolicyARN": arn, "CreationTime": time.time()}

    def _alarms(self, resource_id: str, config: dict[str, Any]) -> list[dict[str, str]]:
        """The CloudWatch alarms target tracking would create: none for scale-in when disabled."""
        kinds = ["AlarmHigh"] if config.get("DisableScaleIn") else ["AlarmHigh", "AlarmLow"]
        alarms = []
        for kind in kinds:
            alarm = f"TargetTracking-{resource_id}-{kind}-{uuid.uuid4()}"
            alarms.append(
                {
                    "AlarmName": alarm,
                    "AlarmARN": f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:{alarm}",
                }
            )
        return alarms

    def describe_policies(self, request: dict[str, Any]) -> dict[str, Any]:
        _check_scope(request)
        resource_id = request.get("ResourceId")
        names = request.get("PolicyNames") or None
        policies = [
            _policy_summary(target.name, policy)
            for target in self._targets([resource_id] if resource_id else None)
            for policy in target.state["Policies"]
            if names is None or policy["PolicyName"] in names
        ]
        return _page(request, policies, "ScalingPolicies")

    def delete_policy(self, request: dict[str, Any]) -> dict[str, Any]:
        _check_scope(request)
        resource_id, name = request["ResourceId"], request["PolicyName"]

        def change(target: Resource) -> Resource:
            policies = target.state["Policies"]
            kept = [p for p in policies if p["PolicyName"] != name]
            if len(kept) == len(policies):
                raise ObjectNotFoundError(_no_policy(resource_id, name))
            target.state["Policies"] = kept
            target.updated_at = time.time()
            return target

        if self.store.mutate(KIND, resource_id, change) is None:
            raise ObjectNotFoundError(_no_policy(resource_id, name))
        return {}

    # Scaling activities ------------------------------------------------------------------

    def describe_activities(self, request: dict[str, Any]) -> dict[str, Any]:
        _check_scope(request)
        resource_id = request.get("ResourceId")
        activities = [
            activity
            for target in self._targets([resource_id] if resource_id else None)
            for activity in target.state["Activities"]
        ]
        activities.sort(key=lambda a: a["StartTime"], reverse=True)
        rendered = [{k: a[k] for k in _ACTIVITY_FIELDS if k in a} for a in activities]
        return _page(request, rendered, "ScalingActivities")

    def enforce_range(self, target: Resource) -> bool:
        """Bring the variant's desired count into a newly registered [Min, Max].

        True when a change was started. Registration sets `RangePending`; it stays set, and the
        autoscaler retries, while the endpoint cannot change (it is Updating, say). Only a new
        range is enforced: a count someone sets outside the range later is left to the policies,
        as on AWS.
        """
        ref = parse_resource_id(target.name)
        with self._lock:
            stored = self.store.get(KIND, target.name)  # fresh: registration may have settled it
            if stored is None or not stored.state.get("RangePending"):
                return False
            endpoint = self.endpoint(ref.endpoint)
            if endpoint is None or endpoint.status != "InService":
                return False
            low, high = stored.state["MinCapacity"], stored.state["MaxCapacity"]
            values = endpoint.state["Variants"].get(ref.variant)
            desired = int(values["DesiredInstanceCount"]) if values is not None else low
            scaled = False
            if desired < low:
                scaled = self.scale(stored, low, f"minimum capacity was set to {low}")
            elif desired > high:
                scaled = self.scale(stored, high, f"maximum capacity was set to {high}")
            if scaled or low <= desired <= high:
                self.store.mutate(KIND, target.name, _range_settled)
            return scaled

    def scale(self, target: Resource, capacity: int, cause: str) -> bool:
        """Set the variant's desired instance count and record why; False when it cannot now."""
        ref = parse_resource_id(target.name)
        with self._lock:
            if not self.endpoints.set_instance_count(ref.endpoint, ref.variant, capacity):
                return False
            activity = {
                "ActivityId": str(uuid.uuid4()),
                "ServiceNamespace": NAMESPACE,
                "ResourceId": target.name,
                "ScalableDimension": DIMENSION,
                "Description": f"Setting desired instance count to {capacity}.",
                "Cause": cause,
                "StartTime": time.time(),
                "StatusCode": "InProgress",
                "DesiredCapacity": capacity,  # ours, not rendered: what settling checks
            }

            def record(stored: Resource) -> Resource:
                activities = [activity, *stored.state["Activities"]]
                stored.state["Activities"] = activities[:MAX_ACTIVITIES]
                return stored

            self.store.mutate(KIND, target.name, record)
            return True

    def settle(self, target: Resource, endpoint: Resource) -> None:
        """Finish the target's in-progress activities that its endpoint has carried out."""
        ref = parse_resource_id(target.name)
        values = endpoint.state["Variants"].get(ref.variant)
        reason = endpoint.state.get("FailureReason")
        outcomes = {
            a["ActivityId"]: outcome
            for a in target.state["Activities"]
            if a["StatusCode"] == "InProgress"
            and (outcome := activity_outcome(a["DesiredCapacity"], endpoint.status, values, reason))
        }
        if not outcomes:
            return
        now = time.time()

        def finish(stored: Resource) -> Resource:
            for activity in stored.state["Activities"]:
                done = outcomes.get(activity["ActivityId"])
                if done is not None and activity["StatusCode"] == "InProgress":
                    activity["StatusCode"], activity["StatusMessage"] = done
                    activity["EndTime"] = now
            return stored

        self.store.mutate(KIND, target.name, finish)

    def forget(self, resource_id: str) -> None:
        """Drop a target whose endpoint is gone (deleted while no hook could see it)."""
        self.store.delete(KIND, resource_id)


# Validation and rendering ------------------------------------------------------------------


def _range_settled(target: Resource) -> Resource:
    target.state.pop("RangePending", None)
    return target


def _check_scope(request: dict[str, Any]) -> None:
    namespace = request["ServiceNamespace"]
    if namespace != NAMESPACE:
        raise ValidationError(
            f"ServiceNamespace {namespace} is not supported yet: opensage scales SageMaker "
            f"endpoint variants only (ServiceNamespace {NAMESPACE})."
        )
    dimension = request.get("ScalableDimension")
    if dimension is not None and dimension != DIMENSION:
        raise ValidationError(
            f"ScalableDimension {dimension} is not supported yet: opensage scales {DIMENSION} only."
        )


def _check_capacities(low: int, high: int) -> None:
    if low < 1:
        raise ValidationError(
            f"MinCapacity must be at least 1 for a SageMaker endpoint variant, got {low}."
        )
    if low > high:
        raise ValidationError(f"MinCapacity ({low}) cannot be greater than MaxCapacity ({high}).")


def _tracking_config(policy_type: str | None, request: dict[str, Any]) -> dict[str, Any]:
    """The request's target-tracking configuration, checked; anything else is refused."""
    if policy_type != TARGET_TRACKING:
        shown = policy_type or "StepScaling (the default when PolicyType is omitted)"
        raise ValidationError(
            f"PolicyType {shown} is not supported yet: opensage supports PolicyType "
            f"{TARGET_TRACKING} with PredefinedMetricType {INVOCATIONS_PER_INSTANCE}."
        )
    for other in ("StepScalingPolicyConfiguration", "PredictiveScalingPolicyConfiguration"):
        if request.get(other):
            raise ValidationError(
                f"{other} cannot be used with PolicyType {TARGET_TRACKING}; pass "
                "TargetTrackingScalingPolicyConfiguration."
            )
    config = request.get("TargetTrackingScalingPolicyConfiguration")
    if config is None:
        raise ValidationError(
            f"TargetTrackingScalingPolicyConfiguration is required for PolicyType "
            f"{TARGET_TRACKING}."
        )
    if config.get("CustomizedMetricSpecification"):
        raise ValidationError(
            "CustomizedMetricSpecification is not supported yet: use "
            f"PredefinedMetricSpecification with PredefinedMetricType {INVOCATIONS_PER_INSTANCE}."
        )
    spec = config.get("PredefinedMetricSpecification")
    if spec is None:
        raise ValidationError(
            "TargetTrackingScalingPolicyConfiguration needs a PredefinedMetricSpecification "
            f"(PredefinedMetricType {INVOCATIONS_PER_INSTANCE})."
        )
    if spec["PredefinedMetricType"] != INVOCATIONS_PER_INSTANCE:
        raise ValidationError(
            f"PredefinedMetricType {spec['PredefinedMetricType']} is not supported yet for "
            f"{DIMENSION}: use {INVOCATIONS_PER_INSTANCE}."
        )
    value = config["TargetValue"]
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(f"TargetValue must be a number greater than 0, got {value}.")
    for key in ("ScaleOutCooldown", "ScaleInCooldown"):
        if config.get(key, 0) < 0:
            raise ValidationError(f"{key} must be 0 or more seconds, got {config[key]}.")
    return dict(config)


def _page(request: dict[str, Any], items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    limit = request.get("MaxResults", MAX_RESULTS)
    if not 1 <= limit <= MAX_RESULTS:
        bound = (
            "greater than or equal to 1" if limit < 1 else f"less than or equal to {MAX_RESULTS}"
        )
        raise ValidationError(
            f"1 validation error detected: Value '{limit}' at 'maxResults' failed to satisfy "
            f"constraint: Member must have value {bound}"
        )
    try:
        offset = decode_token(request.get("NextToken"))
    except ValidationError as exc:
        raise InvalidNextTokenError(
            "Invalid NextToken: pass the NextToken of a previous response unchanged."
        ) from exc
    out: dict[str, Any] = {key: items[offset : offset + limit]}
    if offset + limit < len(items):
        out["NextToken"] = encode_token(offset + limit)
    return out


def _target_summary(target: Resource) -> dict[str, Any]:
    state = target.state
    return {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": target.name,
        "ScalableDimension": DIMENSION,
        "MinCapacity": state["MinCapacity"],
        "MaxCapacity": state["MaxCapacity"],
        "RoleARN": state["RoleARN"],
        "CreationTime": target.created_at,
        "SuspendedState": dict(state["SuspendedState"]),
        "ScalableTargetARN": target.arn,
    }


def _policy_summary(resource_id: str, policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "PolicyARN": policy["PolicyARN"],
        "PolicyName": policy["PolicyName"],
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id,
        "ScalableDimension": DIMENSION,
        "PolicyType": policy["PolicyType"],
        "TargetTrackingScalingPolicyConfiguration": policy[
            "TargetTrackingScalingPolicyConfiguration"
        ],
        "Alarms": policy["Alarms"],
        "CreationTime": policy["CreationTime"],
    }


def _no_target(resource_id: str) -> str:
    return (
        f"No scalable target registered for service namespace: {NAMESPACE}, resource ID: "
        f"{resource_id}, scalable dimension: {DIMENSION}"
    )


def _no_policy(resource_id: str, name: str) -> str:
    return (
        f"No scaling policy found for service namespace: {NAMESPACE}, resource ID: "
        f"{resource_id}, scalable dimension: {DIMENSION}, policy name: {name}"
    )
