"""`opensage tuning list|describe`: tuning jobs, and one job's settings and trials, as tables.

$ opensage tuning describe my-tuning-job
Name            my-tuning-job
Status          Completed
...
TRIAL                          STATUS     OBJECTIVE  eta     max_depth
my-tuning-job-003-1f2e3d4c     Completed  52.1031    0.2871  3
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opensage.cli.tables import table

RANGE_KINDS = ("Integer", "Continuous", "Categorical")


def list_jobs(client: Any, status: str | None, name_contains: str | None) -> None:
    """Newest first, each with its best objective (one Describe per job: List has none)."""
    kwargs: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
    if status:
        kwargs["StatusEquals"] = status
    if name_contains:
        kwargs["NameContains"] = name_contains
    pages = client.get_paginator("list_hyper_parameter_tuning_jobs").paginate(**kwargs)
    rows = []
    for page in pages:
        for job in page["HyperParameterTuningJobSummaries"]:
            name = job["HyperParameterTuningJobName"]
            desc = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            counters = job["TrainingJobStatusCounters"]
            total = job["ResourceLimits"].get("MaxNumberOfTrainingJobs", sum(counters.values()))
            rows.append(
                [
                    name,
                    job["HyperParameterTuningJobStatus"],
                    job["Strategy"],
                    f"{counters['Completed']}/{total}",
                    _objective(desc.get("BestTrainingJob", {})),
                    _time(job["CreationTime"]),
                ]
            )
    table(["NAME", "STATUS", "STRATEGY", "TRIALS", "BEST", "CREATED"], rows)


def describe_job(client: Any, name: str) -> None:
    """The job's settings, then its trials, best first (those without an objective last)."""
    desc = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    config = desc["HyperParameterTuningJobConfig"]
    objective = config.get("HyperParameterTuningJobObjective") or desc.get(
        "TrainingJobDefinition", {}
    ).get("TuningObjective", {})
    ranges = config.get("ParameterRanges", {})
    tuned = [(kind, r) for kind in RANGE_KINDS for r in ranges.get(f"{kind}ParameterRanges", [])]
    _settings(desc, objective, "; ".join(_range(kind, r) for kind, r in tuned))
    trials = _trials(client, desc["HyperParameterTuningJobName"])
    trials.sort(key=lambda t: _rank(t, objective.get("Type", "Maximize")))
    names = [r["Name"] for _, r in tuned]
    print()
    table(
        ["TRIAL", "STATUS", "OBJECTIVE", *names],
        [
            [t["TrainingJobName"], t["TrainingJobStatus"], _objective(t)]
            + [t["TunedHyperParameters"].get(n, "") for n in names]
            for t in trials
        ],
    )


def _settings(desc: dict[str, Any], objective: dict[str, Any], ranges: str) -> None:
    config = desc["HyperParameterTuningJobConfig"]
    limits = config["ResourceLimits"]
    budget = limits.get("MaxNumberOfTrainingJobs", "-")
    counters = desc["TrainingJobStatusCounters"]
    best = desc.get("BestTrainingJob")
    lines = [
        ["Name", desc["HyperParameterTuningJobName"]],
        ["Status", desc["HyperParameterTuningJobStatus"]],
        ["Strategy", config["Strategy"]],
        ["Objective", f"{objective.get('Type', '')} {objective.get('MetricName', '')}"],
        ["Ranges", ranges],
        ["Limits", f"{budget} trials, {limits['MaxParallelTrainingJobs']} in parallel"],
        ["Early stopping", config.get("TrainingJobEarlyStoppingType", "Off")],
        ["Training jobs", ", ".join(f"{k} {v}" for k, v in counters.items())],
        ["Created", _time(desc["CreationTime"])],
        ["Ended", _time(desc.get("HyperParameterTuningEndTime"))],
        ["Best", f"{best['TrainingJobName']} ({_objective(best)})" if best else "-"],
    ]
    if "FailureReason" in desc:
        lines.append(["Failure", desc["FailureReason"]])
    table([], lines)


def _range(kind: str, parameter: dict[str, Any]) -> str:
    if kind == "Categorical":
        return f"{parameter['Name']} in {', '.join(parameter['Values'])}"
    scaling = parameter.get("ScalingType", "Auto")
    low, high = parameter["MinValue"], parameter["MaxValue"]
    return f"{parameter['Name']} {kind.lower()} {low}..{high} ({scaling})"


def _trials(client: Any, name: str) -> list[dict[str, Any]]:
    paginator = client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    pages = paginator.paginate(HyperParameterTuningJobName=name, MaxResults=100)
    return [trial for page in pages for trial in page["TrainingJobSummaries"]]


def _rank(trial: dict[str, Any], direction: str) -> tuple[int, float, str]:
    """Sort key: the best objective first in the job's direction, trials without one last."""
    metric = trial.get("FinalHyperParameterTuningJobObjectiveMetric")
    if metric is None:
        return (1, 0.0, trial["TrainingJobName"])
    value = float(metric["Value"])
    return (0, -value if direction == "Maximize" else value, trial["TrainingJobName"])


def _objective(summary: dict[str, Any]) -> str:
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric")
    return "-" if metric is None else f"{metric['Value']:.6g}"


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")
