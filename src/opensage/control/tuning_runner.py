"""The tuning job supervisor: a durable loop over the stored trials (spec §5.3).

Each step reads the job, brings its trials up to date from their training jobs (status, times,
the objective's values as the training runner parsed them from the logs), stops the trials the
early-stopping rule or Hyperband condemns, decides whether the job is done, and launches trials
up to MaxParallelTrainingJobs. A new trial is stored (name, number, tuned values) before its
training job is created, and created again if the server died in between (a duplicate name is
ResourceInUse, taken as already created): after a restart the loop goes on from the store,
without losing, repeating or orphaning a trial. Every suggestion is a pure function of the stored
history (`opensage.tuning`), so nothing else needs to survive.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from opensage.control.supervision import Supervision
from opensage.control.tuning import (
    ACTIVE,
    IN_PROGRESS,
    KIND,
    STOPPING,
    TERMINAL_TRAINING,
    Plan,
    best_trial,
    observations,
    trial_request,
)
from opensage.errors import OpenSageError, ResourceInUseError
from opensage.store import Resource, Store
from opensage.tuning import (
    Strategy,
    TrialProgress,
    converged,
    hyperband_bracket,
    hyperband_stops,
    median_rule_stopping,
    not_improving,
    suggest,
    target_reached,
    trials_not_improving,
)

log = logging.getLogger(__name__)
TRAINING_KIND: Final = "TrainingJob"
_REASON_LIMIT: Final = 1024


@dataclass(frozen=True)
class TrainingApi:
    """What the tuner needs of training jobs: the same operations a client calls."""

    create: Callable[[dict[str, Any]], dict[str, Any]]
    stop: Callable[[dict[str, Any]], dict[str, Any]]


class TuningScheduler:
    """Owns one supervisor thread per active tuning job."""

    def __init__(self, store: Store, training: TrainingApi, poll_interval_seconds: float) -> None:
        self.store = store
        self.training = training
        self.poll_interval_seconds = poll_interval_seconds
        self.threads = Supervision("tuning", lambda name: TuningSupervisor(self, name).run())
        self.launch = self.threads.launch
        self.shutting_down = self.threads.shutting_down

    def reconcile(self) -> None:
        """Go on with every tuning job a previous server left in flight."""
        for job in self.store.in_statuses(KIND, ACTIVE):
            self.launch(job.name)

    def shutdown(self, timeout: float = 10.0) -> None:
        self.threads.shutdown(timeout)


class TuningSupervisor:
    def __init__(self, scheduler: TuningScheduler, name: str) -> None:
        self.s = scheduler
        self.name = name

    def run(self) -> None:
        try:
            while not self.s.shutting_down.is_set():
                if self._step():
                    return
                self.s.shutting_down.wait(self.s.poll_interval_seconds)
        except Exception as exc:
            log.exception("tuning job %s failed", self.name)
            self._finish("Failed", f"InternalServerError: opensage could not run the job: {exc}")

    def _step(self) -> bool:
        """One pass; True once the job has ended."""
        job = self.s.store.get(KIND, self.name)
        if job is None or job.status not in ACTIVE:
            return True
        plan = Plan.of(job.request)
        trials = self._synced(job)
        running = [t for t in trials if t.get("Status", IN_PROGRESS) not in TERMINAL_TRAINING]
        if job.status == STOPPING:
            self._stop_trials(running, "the tuning job was stopped")
            if not running:
                self._finish("Stopped")
                return True
            return False
        self._early_stop(job, plan, trials)
        done, why = self._done(job, plan, trials)
        if done:
            if why == "runtime":
                self._stop_trials(running, "MaxRuntimeInSeconds of the tuning job elapsed")
            if not running:
                self._complete(plan, trials)
                return True
            return False
        self._launch_trials(job, plan, trials, len(running))
        return False

    # trials ------------------------------------------------------------------------------

    def _synced(self, job: Resource) -> list[dict[str, Any]]:
        """The trials with their training jobs' progress; Pending ones created (durability)."""
        plan = Plan.of(job.request)
        trials: list[dict[str, Any]] = job.state["Trials"]
        changed = False
        if job.status == STOPPING and not all(t.get("Created") for t in trials):
            trials = [t for t in trials if t.get("Created")]  # stored, never started: dropped
            changed = True
        for trial in trials:
            if trial.get("Status") in TERMINAL_TRAINING:
                continue
            if not trial.get("Created"):
                self._create(job, plan, trial)
                changed = True
            training = self.s.store.get(TRAINING_KIND, trial["Name"])
            if training is None:
                continue
            changed |= _copy_progress(self.s.store, training, trial, plan.metric)
        if changed:
            self._save(lambda state: state.update(Trials=trials))
        return trials

    def _create(self, job: Resource, plan: Plan, trial: dict[str, Any]) -> None:
        request = trial_request(plan.definition, trial["Name"], trial["Values"], plan.metric)
        request["TuningJobArn"] = job.arn
        try:
            self.s.training.create(request)
        except ResourceInUseError:
            pass  # created before the server stopped: the trial goes on
        except OpenSageError as exc:
            trial.update(Status="Failed", FailureReason=f"ClientError: {exc.message}"[:1024])
        trial["Created"] = True
        trial.setdefault("CreationTime", time.time())

    def _launch_trials(
        self, job: Resource, plan: Plan, trials: list[dict[str, Any]], running: int
    ) -> None:
        """New trials up to the parallel limit: each stored first, then created."""
        free = min(plan.max_parallel - running, plan.max_jobs - len(trials))
        for _ in range(max(0, free)):
            number = len(trials) + 1
            history = observations([*job.state.get("Parents", []), *trials])
            values = suggest(
                plan.strategy, plan.space, int(job.state["Seed"]), number, history, plan.direction
            )
            trial: dict[str, Any] = {
                "Number": number,
                "Name": f"{job.name}-{number:03d}-{secrets.token_hex(4)}",
                "Values": values,
                "Status": IN_PROGRESS,
                "CreationTime": time.time(),
            }
            if plan.strategy == Strategy.HYPERBAND:
                trial["Bracket"] = hyperband_bracket(number, *plan.resources)
            trials.append(trial)
            self._save(lambda state: state.update(Trials=trials))  # before the job exists
            self._create(job, plan, trial)
            self._save(lambda state: state.update(Trials=trials))

    def _early_stop(self, job: Resource, plan: Plan, trials: list[dict[str, Any]]) -> None:
        config = job.request["HyperParameterTuningJobConfig"]
        progress = [
            TrialProgress(
                int(t["Number"]),
                t.get("Series", []),
                t.get("Status", IN_PROGRESS) not in TERMINAL_TRAINING,
            )
            for t in trials
            if t.get("Created")
        ]
        doomed: set[int] = set()
        if plan.strategy == Strategy.HYPERBAND:
            doomed = hyperband_stops(progress, *plan.resources, plan.direction)
        elif config.get("TrainingJobEarlyStoppingType", "Off") == "Auto":
            doomed = median_rule_stopping(progress, plan.direction)
        victims = [t for t in trials if int(t["Number"]) in doomed and not t.get("EarlyStopped")]
        for trial in victims:
            trial["EarlyStopped"] = True
        if victims:
            self._save(lambda state: state.update(Trials=trials))
            self._stop_trials(victims, "stopped early")

    def _stop_trials(self, trials: list[dict[str, Any]], why: str) -> None:
        for trial in trials:
            if trial.get("StopRequested"):
                continue
            with contextlib.suppress(OpenSageError):  # it ended meanwhile
                self.s.training.stop({"TrainingJobName": trial["Name"]})
            trial["StopRequested"] = True
            log.info("tuning job %s: trial %s %s", self.name, trial["Name"], why)

    # the end -----------------------------------------------------------------------------

    def _done(self, job: Resource, plan: Plan, trials: list[dict[str, Any]]) -> tuple[bool, str]:
        """Whether to launch no more trials, and why."""
        config = job.request["HyperParameterTuningJobConfig"]
        limits = config["ResourceLimits"]
        runtime = limits.get("MaxRuntimeInSeconds")
        if runtime and time.time() - job.created_at > runtime:
            return True, "runtime"
        if len(trials) >= plan.max_jobs:
            return True, "budget"
        criteria = config.get("TuningJobCompletionCriteria") or {}
        finished = [t for t in trials if t.get("Status") in TERMINAL_TRAINING]
        objectives = [t.get("Objective") for t in sorted(finished, key=_ended)]
        best = best_trial(trials, plan.direction)
        target = criteria.get("TargetObjectiveMetricValue")
        if (
            target is not None
            and best is not None
            and target_reached(best["Objective"], float(target), plan.direction)
        ):
            return True, "target"
        patience = (criteria.get("BestObjectiveNotImproving") or {}).get(
            "MaxNumberOfTrainingJobsNotImproving"
        )
        if patience and not_improving(objectives, int(patience), plan.direction):
            return True, "not improving"
        convergence = (criteria.get("ConvergenceDetected") or {}).get("CompleteOnConvergence")
        if convergence == "Enabled" and converged(objectives, plan.max_jobs, plan.direction):
            return True, "converged"
        return False, ""

    def _complete(self, plan: Plan, trials: list[dict[str, Any]]) -> None:
        finished = sorted((t for t in trials if t.get("Status") in TERMINAL_TRAINING), key=_ended)
        details = {
            "NumberOfTrainingJobsObjectiveNotImproving": trials_not_improving(
                [t.get("Objective") for t in finished], plan.direction
            )
        }
        if trials and best_trial(trials, plan.direction) is None:
            self._finish(
                "Failed",
                "No training job succeeded: every trial failed or never emitted the objective "
                f"metric {plan.metric}. See the training jobs' FailureReason and logs.",
                details,
            )
        else:
            self._finish("Completed", None, details)

    def _finish(
        self, status: str, reason: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        def apply(job: Resource) -> Resource | None:
            if job.status not in ACTIVE:
                return None
            now = time.time()
            job.status = status
            if reason:
                job.state["FailureReason"] = reason[:_REASON_LIMIT]
            if details is not None:
                job.state["TuningJobCompletionDetails"] = details
            job.state["HyperParameterTuningEndTime"] = now
            job.state["ConsumedSeconds"] = now - job.created_at
            job.updated_at = job.state["LastModifiedTime"] = now
            return job

        self.s.store.mutate(KIND, self.name, apply)

    def _save(self, change: Callable[[dict[str, Any]], None]) -> None:
        def apply(job: Resource) -> Resource:
            change(job.state)
            job.updated_at = job.state["LastModifiedTime"] = time.time()
            return job

        self.s.store.mutate(KIND, self.name, apply)


def _ended(trial: dict[str, Any]) -> tuple[float, int]:
    return float(trial.get("TrainingEndTime") or 0.0), int(trial["Number"])


def _copy_progress(store: Store, training: Resource, trial: dict[str, Any], metric: str) -> bool:
    """Copy a training job's status, times and objective values into its trial; True if any
    changed."""
    series = [p.value for p in store.metric_points(training.arn) if p.name == metric]
    update: dict[str, Any] = {
        "Status": training.status,
        "Series": series,
        "Objective": series[-1] if series else None,
        "TrainingStartTime": training.state.get("TrainingStartTime"),
        "TrainingEndTime": training.state.get("TrainingEndTime"),
        "FailureReason": training.state.get("FailureReason"),
    }
    if all(trial.get(k) == v for k, v in update.items()):
        return False
    trial.update(update)
    return True
