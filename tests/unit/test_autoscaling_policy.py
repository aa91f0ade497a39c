"""The autoscaler's decision logic (pure functions) and one simulated run of the loop."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from opensage.control.autoscaler import (
    Autoscaler,
    Decision,
    Streak,
    Timing,
    Vote,
    advance,
    clamp,
    cooled_down,
    decide,
    desired_capacity,
)
from opensage.control.autoscaling import (
    DIMENSION,
    INVOCATIONS_PER_INSTANCE,
    AutoscalingService,
    activity_outcome,
    parse_resource_id,
)
from opensage.errors import NotFoundError, ValidationError
from opensage.store import Resource, Store

capacities = st.integers(min_value=1, max_value=100)
metrics = st.floats(min_value=0, max_value=1e12, allow_nan=False)
targets = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False)


# desired_capacity --------------------------------------------------------------------------


@given(current=capacities, metric=metrics, target=targets, low=capacities, span=capacities)
def test_desired_is_always_within_min_and_max(
    current: int, metric: float, target: float, low: int, span: int
) -> None:
    high = low + span - 1
    assert low <= desired_capacity(current, metric, target, low, high) <= high


@given(current=capacities, target=targets)
def test_on_target_keeps_the_capacity(current: int, target: float) -> None:
    assert desired_capacity(current, target, target, 1, 1000) == current


@given(current=capacities, metric=metrics, target=targets)
def test_desired_brings_the_metric_to_target(current: int, metric: float, target: float) -> None:
    assume(current * metric / target < 10**9)
    desired = desired_capacity(current, metric, target, 1, 10**9)
    # With `desired` instances the same load is at or under target; one fewer would be over it.
    load = current * metric
    assert load / desired <= target * (1 + 1e-6)
    if desired > 1:
        assert load / (desired - 1) > target * (1 - 1e-6)


def test_desired_examples() -> None:
    assert desired_capacity(1, 0.0, 10.0, 1, 5) == 1  # no traffic: down to min
    assert desired_capacity(4, 0.0, 10.0, 2, 5) == 2
    assert desired_capacity(1, 25.0, 10.0, 1, 5) == 3
    assert desired_capacity(2, 25.0, 10.0, 1, 4) == 4  # 5 wanted, clamped to max
    assert desired_capacity(3, 0.1, 0.1, 1, 10) == 3  # no float drift to 4
    assert desired_capacity(1, 1e308, 1e-300, 1, 7) == 7  # overflow goes to max


@given(value=st.integers(), low=capacities, span=capacities)
def test_clamp(value: int, low: int, span: int) -> None:
    high = low + span - 1
    assert low <= clamp(value, low, high) <= high
    if low <= value <= high:
        assert clamp(value, low, high) == value


# streaks and cooldowns ---------------------------------------------------------------------


def test_streaks_count_consecutive_points_and_reset() -> None:
    streak = Streak()
    for expected in (1, 2, 3):
        streak = advance(
            streak, current=1, desired=2, metric=20, target_value=10, scale_in_enabled=True
        )
        assert streak == Streak(high=expected, low=0)
    streak = advance(
        streak, current=1, desired=1, metric=10, target_value=10, scale_in_enabled=True
    )
    assert streak == Streak()


def test_low_streak_needs_metric_under_90_percent_of_target() -> None:
    kwargs: dict[str, Any] = {"current": 3, "desired": 2, "target_value": 10.0}
    assert advance(Streak(), metric=5.0, scale_in_enabled=True, **kwargs).low == 1
    assert advance(Streak(low=4), metric=9.5, scale_in_enabled=True, **kwargs).low == 0
    assert advance(Streak(low=4), metric=0.0, scale_in_enabled=False, **kwargs).low == 0


@given(
    conditions=st.lists(st.tuples(capacities, capacities, metrics, targets, st.booleans())),
)
def test_streaks_never_hold_both_directions(
    conditions: list[tuple[int, int, float, float, bool]],
) -> None:
    streak = Streak()
    for current, desired, metric, target, scale_in in conditions:
        streak = advance(
            streak,
            current=current,
            desired=desired,
            metric=metric,
            target_value=target,
            scale_in_enabled=scale_in,
        )
        assert streak.high == 0 or streak.low == 0


def test_cooled_down() -> None:
    assert cooled_down(None, 300, 0.0)
    assert not cooled_down(100.0, 300, 399.0)
    assert cooled_down(100.0, 300, 400.0)
    assert cooled_down(100.0, 0, 100.0)


# decide ------------------------------------------------------------------------------------


def vote(policy: str, desired: int, high: int = 0, low: int = 0, **extra: Any) -> Vote:
    return Vote(
        policy=policy,
        desired=desired,
        streak=Streak(high, low),
        scale_in_enabled=extra.pop("scale_in_enabled", True),
        high_alarm=f"TargetTracking-x-AlarmHigh-{policy}",
        low_alarm=f"TargetTracking-x-AlarmLow-{policy}",
        **extra,
    )


NOW = Timing(now=1000.0)


def test_scale_out_after_enough_points() -> None:
    assert decide(1, [vote("p", 3, high=2)], NOW, out_points=3) is None
    decision = decide(1, [vote("p", 3, high=3)], NOW, out_points=3)
    assert decision == Decision(3, "out", "p", "TargetTracking-x-AlarmHigh-p")
    assert decision.cause == (
        "monitor alarm TargetTracking-x-AlarmHigh-p in state ALARM triggered policy p"
    )


def test_the_largest_desired_wins() -> None:
    votes = [vote("small", 2, high=3), vote("big", 4, high=3)]
    assert decide(1, votes, NOW) == Decision(4, "out", "big", "TargetTracking-x-AlarmHigh-big")
    # Scale-in goes only as far as the policy wanting the most capacity allows.
    votes = [vote("a", 1, low=15), vote("b", 2, low=15)]
    assert decide(3, votes, NOW) == Decision(2, "in", "b", "TargetTracking-x-AlarmLow-b")


def test_scale_in_needs_every_voter() -> None:
    assert decide(3, [vote("a", 1, low=15), vote("b", 1, low=4)], NOW) is None
    assert decide(3, [vote("a", 1, low=14)], NOW, in_points=15) is None
    # A policy with DisableScaleIn does not vote, but still holds the capacity it wants.
    votes = [vote("a", 1, low=15), vote("keep", 2, scale_in_enabled=False)]
    assert decide(3, votes, NOW) == Decision(2, "in", "a", "TargetTracking-x-AlarmLow-a")
    votes = [vote("a", 1, low=15), vote("keep", 3, scale_in_enabled=False)]
    assert decide(3, votes, NOW) is None
    assert decide(3, [vote("keep", 1, scale_in_enabled=False)], NOW) is None


def test_cooldowns_and_suspension() -> None:
    out = [vote("p", 3, high=3, scale_out_cooldown=60)]
    assert decide(1, out, Timing(now=1000.0, last_out=950.0)) is None
    assert decide(1, out, Timing(now=1000.0, last_out=940.0)) is not None
    assert decide(1, out, Timing(now=1000.0, last_in=999.0)) is not None  # in-cooldown: no block
    assert decide(1, out, Timing(now=1000.0, out_suspended=True)) is None
    inward = [vote("p", 1, low=15, scale_in_cooldown=60)]
    assert decide(3, inward, Timing(now=1000.0, last_in=950.0)) is None
    assert decide(3, inward, Timing(now=1000.0, last_in=940.0)) is not None
    assert decide(3, inward, Timing(now=1000.0, in_suspended=True)) is None


@given(
    current=capacities,
    wanted=st.lists(st.tuples(capacities, st.integers(0, 20), st.integers(0, 20), st.booleans())),
)
def test_decisions_move_towards_what_a_policy_wants(
    current: int, wanted: list[tuple[int, int, int, bool]]
) -> None:
    votes = [
        vote(f"p{i}", desired, high, low, scale_in_enabled=scale_in)
        for i, (desired, high, low, scale_in) in enumerate(wanted)
    ]
    decision = decide(current, votes, NOW)
    if decision is None:
        return
    assert decision.capacity != current
    assert decision.capacity in {v.desired for v in votes}
    assert (decision.direction == "out") == (decision.capacity > current)
    if decision.direction == "in":
        assert decision.capacity == max(v.desired for v in votes)


# activities and resource ids ---------------------------------------------------------------


def test_activity_outcome() -> None:
    values = {"DesiredInstanceCount": 3, "CurrentInstanceCount": 1}
    assert activity_outcome(3, "Updating", values, None) is None
    assert activity_outcome(3, "InService", values, None) is None
    done = {"DesiredInstanceCount": 3, "CurrentInstanceCount": 3}
    assert activity_outcome(3, "InService", done, None) == (
        "Successful",
        "Successfully set desired instance count to 3. Change successfully fulfilled by sagemaker.",
    )
    rolled_back = {"DesiredInstanceCount": 1, "CurrentInstanceCount": 1}
    status, message = activity_outcome(3, "InService", rolled_back, "no capacity") or ("", "")
    assert status == "Failed"
    assert message == "Failed to set desired instance count to 3. no capacity"
    status, message = activity_outcome(3, "Failed", values, "boom") or ("", "")
    assert (status, message) == ("Failed", "Failed to set desired instance count to 3. boom")


def test_parse_resource_id() -> None:
    ref = parse_resource_id("endpoint/my-ep/variant/AllTraffic")
    assert (ref.endpoint, ref.variant) == ("my-ep", "AllTraffic")
    assert ref.resource_id == "endpoint/my-ep/variant/AllTraffic"
    for bad in (
        "endpoint/my-ep",
        "endpoint//variant/v",
        "table/t",
        "endpoint/a/variant/b/c",
        "endpoint/-a/variant/b",
        f"endpoint/{'a' * 64}/variant/b",
    ):
        with pytest.raises(ValidationError, match="Invalid ResourceId"):
            parse_resource_id(bad)


# the loop, simulated -----------------------------------------------------------------------


class FakeEndpoints:
    """What the autoscaling service needs of EndpointService; the test plays the supervisor."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Resource] = {}

    def add(self, name: str, variant: str, count: int = 1) -> None:
        values = {"DesiredInstanceCount": count, "CurrentInstanceCount": count}
        state = {
            "Deployment": {"Variants": [{"VariantName": variant, "InstanceType": "ml.m5.large"}]},
            "Variants": {variant: values},
        }
        self.endpoints[name] = Resource(
            "Endpoint", name, self.arn(name), "InService", 0, 0, {}, state
        )

    def arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name.lower()}"

    def get(self, name: str) -> Resource:
        if name not in self.endpoints:
            raise NotFoundError(f'Could not find endpoint "{self.arn(name)}".')
        return self.endpoints[name]

    def set_instance_count(self, name: str, variant: str, count: int) -> bool:
        endpoint = self.endpoints[name]
        if endpoint.status != "InService":
            return False
        endpoint.state["Variants"][variant]["DesiredInstanceCount"] = count
        endpoint.status = "Updating"
        return True

    def carry_out(self, name: str) -> None:
        endpoint = self.endpoints[name]
        for values in endpoint.state["Variants"].values():
            values["CurrentInstanceCount"] = values["DesiredInstanceCount"]
        endpoint.status = "InService"

    def count(self, name: str, variant: str) -> int:
        return int(self.endpoints[name].state["Variants"][variant]["DesiredInstanceCount"])


class FakeMetrics:
    def __init__(self) -> None:
        self.value = 0.0

    def invocations_per_instance(self, endpoint: str, variant: str, seconds: float) -> float:
        return self.value


RID = "endpoint/ep/variant/v"


def scope(**extra: Any) -> dict[str, Any]:
    return {"ServiceNamespace": "sagemaker", "ScalableDimension": DIMENSION, **extra}


def test_a_simulated_run_scales_out_and_back_in(store: Store) -> None:
    endpoints, metrics = FakeEndpoints(), FakeMetrics()
    endpoints.add("ep", "v")
    service = AutoscalingService(store, endpoints, "us-east-1", "123456789012")
    clock = [0.0]
    scaler = Autoscaler(service, metrics, 60.0, scale_in_points=4, clock=lambda: clock[0])
    service.register(scope(ResourceId=RID, MinCapacity=1, MaxCapacity=3))
    config = {
        "TargetValue": 10.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_PER_INSTANCE},
        "ScaleOutCooldown": 120,
        "ScaleInCooldown": 120,
    }
    alarms = service.put_policy(
        scope(
            ResourceId=RID,
            PolicyName="p",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=config,
        )
    )["Alarms"]
    high = next(a["AlarmName"] for a in alarms if "-AlarmHigh-" in a["AlarmName"])
    low = next(a["AlarmName"] for a in alarms if "-AlarmLow-" in a["AlarmName"])

    def tick() -> None:
        clock[0] += 60
        scaler.step()

    metrics.value = 25.0  # 2.5 times the target on one instance: 3 wanted
    tick()
    tick()
    assert endpoints.count("ep", "v") == 1
    tick()
    assert endpoints.count("ep", "v") == 3
    (activity,) = service.describe_activities(scope())["ScalingActivities"]
    assert activity["StatusCode"] == "InProgress"
    assert activity["Cause"] == f"monitor alarm {high} in state ALARM triggered policy p"
    assert activity["Description"] == "Setting desired instance count to 3."
    tick()  # still Updating: nothing settles, nothing is evaluated
    assert service.describe_activities(scope())["ScalingActivities"][0]["StatusCode"] == (
        "InProgress"
    )
    endpoints.carry_out("ep")
    metrics.value = 0.0
    tick()  # settles the scale-out, then counts the first low point
    first = service.describe_activities(scope())["ScalingActivities"][0]
    assert first["StatusCode"] == "Successful"
    assert first["EndTime"] >= first["StartTime"]
    tick()
    tick()
    assert endpoints.count("ep", "v") == 3  # 4 low points needed
    tick()
    assert endpoints.count("ep", "v") == 1  # zero traffic: down to MinCapacity
    newest = service.describe_activities(scope())["ScalingActivities"][0]
    assert newest["Cause"] == f"monitor alarm {low} in state ALARM triggered policy p"
    assert newest["Description"] == "Setting desired instance count to 1."

    # Raising MinCapacity brings the variant into range at once.
    endpoints.carry_out("ep")
    service.register(scope(ResourceId=RID, MinCapacity=2))
    assert endpoints.count("ep", "v") == 2
    newest = service.describe_activities(scope())["ScalingActivities"][0]
    assert newest["Cause"] == "minimum capacity was set to 2"

    # Only a new range is enforced: a count set by hand later is left to the policies.
    endpoints.carry_out("ep")
    assert endpoints.set_instance_count("ep", "v", 5)
    endpoints.carry_out("ep")
    metrics.value = 10.0  # on target: neither alarm's condition holds
    for _ in range(6):
        tick()
    assert endpoints.count("ep", "v") == 5

    # A target whose endpoint disappeared goes away with it.
    del endpoints.endpoints["ep"]
    tick()
    assert service.describe_targets(scope())["ScalableTargets"] == []
