"""Hyperparameter tuning jobs: the API operations. The supervisor in `tuning_runner` does the work.

A tuning job's trials live in its stored state, in launch order: each is recorded (name, number,
tuned values) before its training job is created, and the runner copies the training job's status
and objective values into it as they change, so Describe and List read one row. The training job
itself is an ordinary one (its name `<tuning job>-<NNN>-<8 hex>`, its description with
`TuningJobArn`).
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from opensage.algorithms import registry
from opensage.algorithms.base import TUNING_OBJECTIVE, Kind
from opensage.control import images
from opensage.control.listing import page
from opensage.control.naming import arn, decode_token, encode_token
from opensage.control.tags import insert_tagged
from opensage.control.training import validate_request
from opensage.errors import ResourceInUseError, ResourceNotFoundError, ValidationError
from opensage.images import ImageStore
from opensage.store import Resource, Store
from opensage.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    Observation,
    Space,
    Strategy,
    best_of,
    check_grid,
    parse_ranges,
    resolve_resources,
)

KIND: Final = "HyperParameterTuningJob"
IN_PROGRESS: Final = "InProgress"
STOPPING: Final = "Stopping"
ACTIVE: Final = [IN_PROGRESS, STOPPING]
TERMINAL_TRAINING: Final = ("Completed", "Failed", "Stopped")
MAX_HYPERPARAMETERS: Final = 100
MAX_PARENTS: Final = 5
NOT_FOUND: Final = "Amazon SageMaker can't find a tuning job with name {}"


@dataclass(frozen=True)
class Plan:
    """A tuning job's settings after validation: what the runner needs on every step."""

    strategy: str
    metric: str
    direction: str
    space: Space
    definition: dict[str, Any]
    max_jobs: int
    max_parallel: int
    min_resource: int | None
    max_resource: int | None

    @property
    def resources(self) -> tuple[int, int]:
        """Hyperband's (MinResource, MaxResource)."""
        if self.min_resource is None or self.max_resource is None:
            raise ValueError(f"a {self.strategy} tuning job has no Hyperband resources")
        return self.min_resource, self.max_resource

    @classmethod
    def of(cls, request: dict[str, Any]) -> Plan:
        """A CreateHyperParameterTuningJob request's settings, checked against the rules of
        spec §5.1-5.2 that need nothing but the request (`check_trials` does the rest)."""
        config = request["HyperParameterTuningJobConfig"]
        definition = _definition(request)
        objective = config.get("HyperParameterTuningJobObjective") or definition.get(
            "TuningObjective"
        )
        if not objective:
            raise ValidationError(
                "HyperParameterTuningJobObjective is required (or TuningObjective in the "
                "training job definition)."
            )
        strategy = config["Strategy"]
        ranges = config.get("ParameterRanges") or definition.get("HyperParameterRanges") or {}
        space = parse_ranges(ranges)
        static = dict(definition.get("StaticHyperParameters") or {})
        clash = sorted(set(static) & {p.name for p in space.parameters})
        if clash:
            raise ValidationError(
                f"Hyperparameters {clash} are both static and tuned: give each one place only."
            )
        if len(static) + len(space.parameters) + 1 > MAX_HYPERPARAMETERS:
            raise ValidationError(
                f"Static and tuned hyperparameters, with {TUNING_OBJECTIVE}, must number at most "
                f"{MAX_HYPERPARAMETERS}."
            )
        limits = config["ResourceLimits"]
        max_jobs = limits.get("MaxNumberOfTrainingJobs")
        if strategy == Strategy.GRID:
            max_jobs = check_grid(space, max_jobs)
        elif max_jobs is None:
            raise ValidationError("ResourceLimits.MaxNumberOfTrainingJobs is required.")
        hyperband = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig")
        if hyperband is not None and strategy != Strategy.HYPERBAND:
            raise ValidationError(
                "StrategyConfig.HyperbandStrategyConfig needs Strategy Hyperband."
            )
        low = high = None
        if strategy == Strategy.HYPERBAND:
            if config.get("TrainingJobEarlyStoppingType", "Off") != "Off":
                raise ValidationError(
                    "TrainingJobEarlyStoppingType must be Off with the Hyperband strategy: "
                    "Hyperband stops trials itself."
                )
            hyperband = hyperband or {}
            low, high = resolve_resources(
                hyperband.get("MinResource"), hyperband.get("MaxResource"), static
            )
        if config.get("RandomSeed") is not None and config["RandomSeed"] < 0:
            raise ValidationError("RandomSeed must be >= 0.")
        metric = objective["MetricName"]
        return cls(
            strategy,
            metric,
            objective["Type"],
            space,
            definition,
            int(max_jobs),
            int(limits["MaxParallelTrainingJobs"]),
            low,
            high,
        )


def _definition(request: dict[str, Any]) -> dict[str, Any]:
    single, several = request.get("TrainingJobDefinition"), request.get("TrainingJobDefinitions")
    if (single is None) == (several is None):
        raise ValidationError(
            "Exactly one of TrainingJobDefinition and TrainingJobDefinitions is required."
        )
    if several is not None:
        if len(several) != 1:
            raise ValidationError(
                "Several TrainingJobDefinitions (tuning over several algorithms) are not "
                "supported yet: give one TrainingJobDefinition."
            )
        single = several[0]
    if request.get("Autotune"):
        raise ValidationError("Autotune is not supported yet.")
    assert single is not None
    return dict(single)


def check_trials(plan: Plan, image_store: ImageStore | None = None) -> None:
    """The trials would be valid training jobs (built-ins: every range's ends are valid values)
    and the objective is a metric they emit, in the algorithm's direction."""
    definition, space, metric, direction = plan.definition, plan.space, plan.metric, plan.direction
    spec = definition["AlgorithmSpecification"]
    static = dict(definition.get("StaticHyperParameters") or {})
    corners = _corners(space)
    program = None
    for corner in corners:
        program = images.resolve(
            spec.get("TrainingImage", ""), {**static, **corner}, store=image_store
        )
        validate_request(trial_request(definition, "validation-only", corner, metric), image_store)
    assert program is not None
    defined = {d["Name"] for d in spec.get("MetricDefinitions", [])}
    if program.algorithm is not None:
        algorithm = registry.algorithms()[program.algorithm]
        for parameter in space.parameters:
            row = algorithm.hyperparameters.by_name.get(
                algorithm.hyperparameters.aliases.get(parameter.name, parameter.name)
            )
            if isinstance(parameter, ContinuousParameter) and row and row.kind is not Kind.FLOAT:
                raise ValidationError(
                    f"Hyperparameter '{parameter.name}' of the {program.algorithm} algorithm "
                    f"is {row.kind.value.lower()}, not continuous: use IntegerParameterRanges or "
                    "CategoricalParameterRanges."
                )
        objectives = algorithm.tunable_objectives()
        if metric in objectives:
            if objectives[metric] != direction:
                raise ValidationError(
                    f"The objective metric {metric} of the {program.algorithm} algorithm must be "
                    f"{objectives[metric]}d, not {direction}d."
                )
            return
        if metric not in defined:
            raise ValidationError(
                f"The objective metric {metric} is not a tunable metric of the "
                f"{program.algorithm} algorithm: choose one of {sorted(objectives)}, or define it "
                "in MetricDefinitions."
            )
    elif metric not in defined:
        raise ValidationError(
            f"The objective metric {metric} is not defined in the training job definition's "
            "MetricDefinitions."
        )


def _corners(space: Space) -> list[dict[str, str]]:
    """Values that together exercise every end of every range and every categorical value."""
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []
    for parameter in space.parameters:
        if isinstance(parameter, CategoricalParameter):
            lows[parameter.name] = highs[parameter.name] = parameter.values[0]
            extra += [{parameter.name: value} for value in parameter.values[1:]]
        else:
            lows[parameter.name] = parameter.min_value
            highs[parameter.name] = parameter.max_value
    corners = [space.format(lows), space.format(highs)]
    for change in extra:
        corners.append(space.format({**lows, **change}))
    return corners


MAX_WARM_START_CHANGES: Final = 10


def _check_parent(name: str, parent: Plan, child: Plan, kind: str) -> None:
    """Spec §5.2: the same hyperparameters (static and tuned, each of the same type), at most
    MAX_WARM_START_CHANGES changes (a static value changed counts 2, a tuned categorical turned
    static counts its values, any other change of role 1); IdenticalDataAndAlgorithm also needs
    the same image and input data."""

    def roles(plan: Plan) -> dict[str, tuple[str, Any]]:
        static = plan.definition.get("StaticHyperParameters") or {}
        out: dict[str, tuple[str, Any]] = {k: ("static", v) for k, v in static.items()}
        for parameter in plan.space.parameters:
            out[parameter.name] = (parameter.kind, parameter)
        return out

    before, after = roles(parent), roles(child)
    if set(before) != set(after):
        raise ValidationError(
            f"Warm start needs the hyperparameters of the parent tuning job {name}: "
            f"{sorted(set(before) ^ set(after))} are in only one of the two jobs."
        )
    changes = 0
    for key, (role, value) in after.items():
        old_role, old_value = before[key]
        if role == old_role == "static":
            changes += 2 if value != old_value else 0
        elif "static" not in (role, old_role) and role != old_role:
            raise ValidationError(
                f"Hyperparameter '{key}' is {old_role} in the parent tuning job {name} and "
                f"{role} here: warm start keeps each tuned hyperparameter's type."
            )
        elif role != old_role:
            tuned = old_value if role == "static" else value
            changes += len(tuned.values) if isinstance(tuned, CategoricalParameter) else 1
    if changes > MAX_WARM_START_CHANGES:
        raise ValidationError(
            f"Warm start from {name} changes the hyperparameters {changes} times; at most "
            f"{MAX_WARM_START_CHANGES} are allowed."
        )
    if kind == "IdenticalDataAndAlgorithm":
        for key in ("AlgorithmSpecification", "InputDataConfig"):
            if parent.definition.get(key) != child.definition.get(key):
                raise ValidationError(
                    f"WarmStartType IdenticalDataAndAlgorithm needs the same {key} as the parent "
                    f"tuning job {name}; use TransferLearning for other data or algorithms."
                )


def trial_request(
    definition: dict[str, Any], name: str, values: dict[str, str], metric: str
) -> dict[str, Any]:
    """The CreateTrainingJob request of a trial (spec §5.3)."""
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "HyperParameters": {
            **(definition.get("StaticHyperParameters") or {}),
            **values,
            TUNING_OBJECTIVE: metric,
        },
    }
    for key in ("AlgorithmSpecification", "RoleArn", "InputDataConfig", "VpcConfig",
                "OutputDataConfig", "ResourceConfig", "StoppingCondition",
                "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
                "EnableManagedSpotTraining", "CheckpointConfig", "RetryStrategy",
                "Environment"):  # fmt: skip
        if key in definition:
            request[key] = copy.deepcopy(definition[key])
    if "ResourceConfig" not in request and "HyperParameterTuningResourceConfig" in definition:
        config = definition["HyperParameterTuningResourceConfig"]
        request["ResourceConfig"] = {
            k: config[k] for k in ("InstanceType", "InstanceCount", "VolumeSizeInGB") if k in config
        }
    return request


class TuningService:
    def __init__(
        self,
        store: Store,
        region: str,
        account: str,
        launch: Callable[[str], None],
        image_store: ImageStore | None = None,
    ) -> None:
        self.store = store
        self.region = region
        self.account = account
        self._launch = launch  # hands a newly created job to the scheduler
        self.image_store = image_store

    def arn(self, name: str) -> str:
        return arn(self.region, self.account, "hyper-parameter-tuning-job", name)

    # Create ------------------------------------------------------------------------------

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["HyperParameterTuningJobName"]
        duplicate = ResourceInUseError(
            f"A hyperparameter tuning job with the name, {name}, already exists. Choose a "
            "different name."
        )
        if self._named(name) is not None:
            raise duplicate
        plan = Plan.of(request)
        check_trials(plan, self.image_store)
        config = request["HyperParameterTuningJobConfig"]
        seed = config.get("RandomSeed")
        parents = self._warm_start(request, plan)
        now = time.time()
        state: dict[str, Any] = {
            "LastModifiedTime": now,
            "Seed": secrets.randbelow(2**31) if seed is None else int(seed),
            "Trials": [],
            "Parents": parents,
        }
        job_arn = self.arn(name)
        resource = Resource(KIND, name, job_arn, IN_PROGRESS, now, now, request, state)
        insert_tagged(self.store, resource, request, duplicate)
        self._launch(name)
        return {"HyperParameterTuningJobArn": job_arn}

    def _named(self, name: str) -> Resource | None:
        """The job of that name, whatever its case (names are case-insensitive, spec §5.1;
        compared here, not in SQL, whose LIKE is case-sensitive on PostgreSQL)."""
        exact = self.store.get(KIND, name)
        if exact is not None:
            return exact
        found = self.store.query_kind(KIND)
        return next((job for job in found if job.name.lower() == name.lower()), None)

    def _warm_start(self, request: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
        """The parents' trials, as they were when this job was created (spec §5.2)."""
        config = request.get("WarmStartConfig")
        if not config:
            return []
        names = [p["HyperParameterTuningJobName"] for p in config["ParentHyperParameterTuningJobs"]]
        if len(names) > MAX_PARENTS:
            raise ValidationError(f"WarmStartConfig accepts at most {MAX_PARENTS} parent jobs.")
        trials = []
        for parent_name in names:
            parent = self._named(parent_name)
            if parent is None:
                raise ResourceNotFoundError(NOT_FOUND.format(parent_name))
            if parent.status not in ("Completed", "Stopped", "Failed"):
                raise ValidationError(
                    f"The parent tuning job {parent_name} is {parent.status}: a parent must have "
                    "ended (Completed, Stopped or Failed)."
                )
            parent_plan = Plan.of(parent.request)
            if parent_plan.metric != plan.metric:
                raise ValidationError(
                    f"The parent tuning job {parent_name} optimises {parent_plan.metric}, not "
                    f"{plan.metric}: warm start needs the same objective metric."
                )
            _check_parent(parent_name, parent_plan, plan, config["WarmStartType"])
            for trial in parent.state["Trials"]:
                trials.append({**trial, "Parent": parent.name})
        return trials

    # Read --------------------------------------------------------------------------------

    def _get(self, name: str) -> Resource:
        job = self._named(name)
        if job is None:
            raise ResourceNotFoundError(NOT_FOUND.format(name))
        return job

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._get(request["HyperParameterTuningJobName"])
        req, state = job.request, job.state
        plan = Plan.of(req)
        out: dict[str, Any] = {
            k: v for k, v in req.items() if k not in ("Tags", "HyperParameterTuningJobName")
        }
        out.update(
            HyperParameterTuningJobName=job.name,
            HyperParameterTuningJobArn=job.arn,
            HyperParameterTuningJobStatus=job.status,
            CreationTime=job.created_at,
            LastModifiedTime=state.get("LastModifiedTime", job.updated_at),
            TrainingJobStatusCounters=training_counters(state["Trials"]),
            ObjectiveStatusCounters=objective_counters(state["Trials"]),
        )
        best = best_trial(state["Trials"], plan.direction)
        if best is not None:
            out["BestTrainingJob"] = trial_summary(best, job, plan)
        if (req.get("WarmStartConfig") or {}).get("WarmStartType") == "IdenticalDataAndAlgorithm":
            overall = best_trial([*state["Parents"], *state["Trials"]], plan.direction)
            if overall is not None:
                out["OverallBestTrainingJob"] = trial_summary(overall, job, plan)
        for key in ("FailureReason", "HyperParameterTuningEndTime", "TuningJobCompletionDetails"):
            if key in state:
                out[key] = state[key]
        if "ConsumedSeconds" in state:
            out["ConsumedResources"] = {"RuntimeInSeconds": int(state["ConsumedSeconds"])}
        return out

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        def summary(job: Resource) -> dict[str, Any]:
            config = job.request["HyperParameterTuningJobConfig"]
            out = {
                "HyperParameterTuningJobName": job.name,
                "HyperParameterTuningJobArn": job.arn,
                "HyperParameterTuningJobStatus": job.status,
                "Strategy": config["Strategy"],
                "CreationTime": job.created_at,
                "LastModifiedTime": job.state.get("LastModifiedTime", job.updated_at),
                "TrainingJobStatusCounters": training_counters(job.state["Trials"]),
                "ObjectiveStatusCounters": objective_counters(job.state["Trials"]),
                "ResourceLimits": config["ResourceLimits"],
            }
            if "HyperParameterTuningEndTime" in job.state:
                out["HyperParameterTuningEndTime"] = job.state["HyperParameterTuningEndTime"]
            return out

        return page(self.store, KIND, request, summary, "HyperParameterTuningJobSummaries")

    def list_training_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        """ListTrainingJobsForHyperParameterTuningJob (spec §5.4)."""
        job = self._get(request["HyperParameterTuningJobName"])
        plan = Plan.of(job.request)
        trials = [t for t in job.state["Trials"] if "Status" in t]
        wanted = request.get("StatusEquals")
        if wanted:
            trials = [t for t in trials if t["Status"] == wanted]
        sort_by = request.get("SortBy", "Name")
        descending = request.get("SortOrder", "Ascending") == "Descending"
        if sort_by == "FinalObjectiveMetricValue":
            trials = [t for t in trials if t.get("Objective") is not None]
            key: Any = lambda t: t["Objective"]  # noqa: E731
        elif sort_by == "CreationTime":
            key = lambda t: (t.get("CreationTime", 0.0), t["Number"])  # noqa: E731
        elif sort_by == "Status":
            key = lambda t: (t["Status"], t["Name"])  # noqa: E731
        else:
            key = lambda t: t["Name"]  # noqa: E731
        trials.sort(key=key, reverse=descending)
        offset = decode_token(request.get("NextToken"))
        limit = request.get("MaxResults", 10)
        out: dict[str, Any] = {
            "TrainingJobSummaries": [
                trial_summary(t, job, plan) for t in trials[offset : offset + limit]
            ]
        }
        if offset + limit < len(trials):
            out["NextToken"] = encode_token(offset + limit)
        return out

    # Stop --------------------------------------------------------------------------------

    def stop(self, request: dict[str, Any]) -> dict[str, Any]:
        name = self._get(request["HyperParameterTuningJobName"]).name

        def change(job: Resource) -> Resource | None:
            if job.status == STOPPING:
                return None
            if job.status != IN_PROGRESS:
                raise ValidationError(
                    f"The hyperparameter tuning job {name} is not in progress (status "
                    f"{job.status}) and cannot be stopped."
                )
            job.status = STOPPING
            job.updated_at = job.state["LastModifiedTime"] = time.time()
            return job

        self.store.mutate(KIND, name, change)
        return {}


# summaries ---------------------------------------------------------------------------------


def objective_status(trial: dict[str, Any]) -> str:
    status = trial.get("Status", IN_PROGRESS)
    if status == IN_PROGRESS:
        return "Pending"
    if status in ("Completed", "Stopped") and trial.get("Objective") is not None:
        return "Succeeded"
    return "Failed"


def training_counters(trials: list[dict[str, Any]]) -> dict[str, int]:
    counters = dict.fromkeys(
        ("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped"), 0
    )
    for trial in trials:
        status = trial.get("Status", IN_PROGRESS)
        if status == "Failed":
            reason = str(trial.get("FailureReason", ""))
            retryable = reason.startswith("InternalServerError")
            counters["RetryableError" if retryable else "NonRetryableError"] += 1
        elif status in ("Stopping",):
            counters["InProgress"] += 1
        else:
            counters[status] += 1
    return counters


def objective_counters(trials: list[dict[str, Any]]) -> dict[str, int]:
    counters = dict.fromkeys(("Succeeded", "Pending", "Failed"), 0)
    for trial in trials:
        counters[objective_status(trial)] += 1
    return counters


def observations(trials: list[dict[str, Any]]) -> list[Observation]:
    return [
        Observation(
            number=int(t["Number"]),
            values=t["Values"],
            objective=t.get("Objective"),
            finished=t.get("Status", IN_PROGRESS) in TERMINAL_TRAINING,
            parent=str(t.get("Parent", "")),
        )
        for t in trials
    ]


def best_trial(trials: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    """The best Succeeded trial, ties to the earliest (spec §5.4)."""
    succeeded = [t for t in trials if objective_status(t) == "Succeeded"]
    best = best_of(observations(succeeded), direction)
    if best is None:
        return None
    return next(
        t
        for t in succeeded
        if int(t["Number"]) == best.number and str(t.get("Parent", "")) == best.parent
    )


def trial_summary(trial: dict[str, Any], job: Resource, plan: Plan) -> dict[str, Any]:
    """A HyperParameterTrainingJobSummary."""
    tuning = str(trial.get("Parent") or job.name)
    account, region = job.arn.split(":")[4], job.arn.split(":")[3]
    out: dict[str, Any] = {
        "TrainingJobName": trial["Name"],
        "TrainingJobArn": arn(region, account, "training-job", trial["Name"]),
        "TuningJobName": tuning,
        "CreationTime": trial.get("CreationTime", job.created_at),
        "TrainingJobStatus": trial.get("Status", IN_PROGRESS),
        "TunedHyperParameters": trial["Values"],
        "ObjectiveStatus": objective_status(trial),
    }
    for key in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
        if trial.get(key) is not None:
            out[key] = trial[key]
    if plan.definition.get("DefinitionName"):
        out["TrainingJobDefinitionName"] = plan.definition["DefinitionName"]
    if trial.get("Objective") is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": plan.direction,
            "MetricName": plan.metric,
            "Value": trial["Objective"],
        }
    return out
