"""The autoscaler: evaluates every target-tracking policy the way Application Auto Scaling does.

Every `period` seconds (60 on AWS: one CloudWatch datapoint) each scalable target's policies read
SageMakerVariantInvocationsPerInstance summed over the last period and compute the capacity that
would bring it to the policy's TargetValue:

    desired = ceil(current * metric / TargetValue), clamped to [MinCapacity, MaxCapacity]

Target tracking acts through two CloudWatch alarms per policy, and we keep their semantics:

- AlarmHigh fires when desired > current for `scale_out_points` consecutive evaluations (3): the
  variant scales out to the largest desired among the firing policies, unless the policy's
  ScaleOutCooldown since the last scale-out has not passed or scale-out is suspended.
- AlarmLow fires when desired < current and the metric is under 90% of TargetValue for
  `scale_in_points` consecutive evaluations (15): scale-in is slow on purpose. The variant scales
  in only when every policy that may scale in agrees, to the largest capacity any policy wants
  ("the largest wins"), after ScaleInCooldown since the last scale-in. DisableScaleIn policies
  never vote to scale in. No traffic means a metric of 0, so an idle variant goes to MinCapacity.

Nothing happens while the endpoint is not InService (a scaling change is still being carried out,
or someone else is updating it). Each change is recorded as a scaling activity, and settled
(Successful or Failed) once the endpoint has carried it out. Decision logic is in the pure
functions below; the consecutive-point counts and last scale times live in memory (a restart
starts them afresh), while targets, policies and activities are stored.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opensage.control.autoscaling import (
    DEFAULT_COOLDOWN,
    TARGET_TRACKING,
    AutoscalingService,
    parse_resource_id,
)
from opensage.control.endpoint_metrics import EndpointMetrics
from opensage.errors import NotFoundError
from opensage.store import Resource

log = logging.getLogger(__name__)
SCALE_IN_RATIO = 0.9  # AlarmLow's threshold, as a share of TargetValue
SCALE_OUT_POINTS = 3
SCALE_IN_POINTS = 15
_SETTLE_TICK = 1.0  # seconds: how soon a carried-out change is reported Successful


# Pure decision logic -----------------------------------------------------------------------


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def desired_capacity(current: int, metric: float, target_value: float, low: int, high: int) -> int:
    """The capacity that brings `metric` to `target_value`, within [low, high].

    The ratio is rounded to 9 decimals before the ceiling so that a metric exactly on target
    (3 * 0.1 / 0.1 = 3.0000000000000004 in floating point) does not ask for one more instance.
    """
    ratio = current * metric / target_value
    if math.isnan(ratio):
        return clamp(current, low, high)
    if ratio >= high:
        return high
    return clamp(math.ceil(round(ratio, 9)), low, high)


@dataclass(frozen=True)
class Streak:
    """Consecutive evaluations for which a policy's high / low alarm condition held."""

    high: int = 0
    low: int = 0


def advance(
    streak: Streak,
    *,
    current: int,
    desired: int,
    metric: float,
    target_value: float,
    scale_in_enabled: bool,
) -> Streak:
    """One more evaluation: a condition that held extends its streak, one that did not ends it."""
    high = streak.high + 1 if desired > current else 0
    low_holds = scale_in_enabled and desired < current and metric < SCALE_IN_RATIO * target_value
    return Streak(high, streak.low + 1 if low_holds else 0)


def cooled_down(last: float | None, cooldown: float, now: float) -> bool:
    return last is None or now - last >= cooldown


@dataclass(frozen=True)
class Vote:
    """What one policy wants after an evaluation."""

    policy: str
    desired: int
    streak: Streak
    scale_in_enabled: bool
    high_alarm: str
    low_alarm: str
    scale_out_cooldown: float = DEFAULT_COOLDOWN
    scale_in_cooldown: float = DEFAULT_COOLDOWN


@dataclass(frozen=True)
class Decision:
    capacity: int
    direction: Literal["out", "in"]
    policy: str
    alarm: str

    @property
    def cause(self) -> str:
        return f"monitor alarm {self.alarm} in state ALARM triggered policy {self.policy}"


@dataclass(frozen=True)
class Timing:
    """When the target last scaled each way (None: never), and the suspensions in force."""

    now: float
    last_out: float | None = None
    last_in: float | None = None
    out_suspended: bool = False
    in_suspended: bool = False


def decide(
    current: int,
    votes: Sequence[Vote],
    timing: Timing,
    *,
    out_points: int = SCALE_OUT_POINTS,
    in_points: int = SCALE_IN_POINTS,
) -> Decision | None:
    """The change to make now, if any: scale-out first, then a scale-in every voter agrees to."""
    firing = [v for v in votes if v.streak.high >= out_points and v.desired > current]
    if firing:
        best = max(firing, key=lambda v: v.desired)
        if timing.out_suspended or not cooled_down(
            timing.last_out, best.scale_out_cooldown, timing.now
        ):
            return None
        return Decision(best.desired, "out", best.policy, best.high_alarm)
    voters = [v for v in votes if v.scale_in_enabled]
    if not voters or any(v.streak.low < in_points for v in voters):
        return None
    best = max(voters, key=lambda v: v.desired)
    capacity = max(v.desired for v in votes)  # a policy that never scales in still holds its own
    if capacity >= current:
        return None
    if timing.in_suspended or not cooled_down(timing.last_in, best.scale_in_cooldown, timing.now):
        return None
    return Decision(capacity, "in", best.policy, best.low_alarm)


# The loop ----------------------------------------------------------------------------------


@dataclass
class _Memory:
    """One target's evaluation state (keyed by its ARN, so a re-registered target starts anew)."""

    streaks: dict[str, Streak] = field(default_factory=dict)
    last_out: float | None = None
    last_in: float | None = None


class Autoscaler:
    """A background thread: settles activities every second, evaluates policies every period."""

    def __init__(
        self,
        service: AutoscalingService,
        metrics: EndpointMetrics,
        period: float,
        *,
        scale_out_points: int = SCALE_OUT_POINTS,
        scale_in_points: int = SCALE_IN_POINTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.period = period
        self.scale_out_points = scale_out_points
        self.scale_in_points = scale_in_points
        self.clock = clock
        self._memory: dict[str, _Memory] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autoscaler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        tick = min(self.period, _SETTLE_TICK)
        next_evaluation = self.clock() + self.period
        while not self._stop.wait(tick):
            now = self.clock()
            due = now >= next_evaluation - tick / 2  # a wait may end a hair early
            if due:
                next_evaluation = now + self.period
            try:
                self.step(evaluate=due)
            except Exception:
                log.exception("autoscaler step failed")

    def step(self, *, evaluate: bool = True) -> None:
        """Settle every target's finished activities and, when `evaluate`, apply its policies."""
        targets = self.service.targets()
        for target in targets:
            try:
                self._step_target(target, evaluate)
            except Exception:
                log.exception("autoscaling %s failed", target.name)
        live = {t.arn for t in targets}
        for arn in [a for a in self._memory if a not in live]:
            del self._memory[arn]

    def _step_target(self, target: Resource, evaluate: bool) -> None:
        ref = parse_resource_id(target.name)
        try:
            endpoint = self.service.endpoints.get(ref.endpoint)
        except NotFoundError:
            self.service.forget(target.name)  # the endpoint is gone, and so is its target
            return
        if endpoint.status == "Deleting":
            return
        self.service.settle(target, endpoint)
        if not evaluate or endpoint.status != "InService":
            return
        values = endpoint.state["Variants"].get(ref.variant)
        if values is None:
            return
        memory = self._memory.setdefault(target.arn, _Memory())
        if self.service.enforce_range(target):
            memory.streaks.clear()
            return
        current = int(values["DesiredInstanceCount"])
        metric = self.metrics.invocations_per_instance(ref.endpoint, ref.variant, self.period)
        votes = self._votes(target, memory, current, metric)
        suspended = target.state["SuspendedState"]
        timing = Timing(
            now=self.clock(),
            last_out=memory.last_out,
            last_in=memory.last_in,
            out_suspended=bool(suspended.get("DynamicScalingOutSuspended")),
            in_suspended=bool(suspended.get("DynamicScalingInSuspended")),
        )
        decision = decide(
            current,
            votes,
            timing,
            out_points=self.scale_out_points,
            in_points=self.scale_in_points,
        )
        if decision is None or not self.service.scale(target, decision.capacity, decision.cause):
            return
        log.info("autoscaling %s: %s to %d (%s)", target.name, decision.direction,
                 decision.capacity, decision.cause)  # fmt: skip
        if decision.direction == "out":
            memory.last_out = timing.now
        else:
            memory.last_in = timing.now
        memory.streaks.clear()  # the alarms start counting afresh on the new capacity

    def _votes(self, target: Resource, memory: _Memory, current: int, metric: float) -> list[Vote]:
        low, high = target.state["MinCapacity"], target.state["MaxCapacity"]
        votes = []
        streaks: dict[str, Streak] = {}
        for policy in target.state["Policies"]:
            if policy["PolicyType"] != TARGET_TRACKING:
                continue
            config: dict[str, Any] = policy["TargetTrackingScalingPolicyConfiguration"]
            target_value = float(config["TargetValue"])
            desired = desired_capacity(current, metric, target_value, low, high)
            scale_in_enabled = not config.get("DisableScaleIn", False)
            name = policy["PolicyName"]
            streaks[name] = advance(
                memory.streaks.get(name, Streak()),
                current=current,
                desired=desired,
                metric=metric,
                target_value=target_value,
                scale_in_enabled=scale_in_enabled,
            )
            alarms = [a["AlarmName"] for a in policy["Alarms"]]
            votes.append(
                Vote(
                    policy=name,
                    desired=desired,
                    streak=streaks[name],
                    scale_in_enabled=scale_in_enabled,
                    high_alarm=next((a for a in alarms if "-AlarmHigh-" in a), ""),
                    low_alarm=next((a for a in alarms if "-AlarmLow-" in a), ""),
                    scale_out_cooldown=config.get("ScaleOutCooldown", DEFAULT_COOLDOWN),
                    scale_in_cooldown=config.get("ScaleInCooldown", DEFAULT_COOLDOWN),
                )
            )
        memory.streaks = streaks
        return votes
