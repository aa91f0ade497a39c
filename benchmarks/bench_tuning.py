"""Tuning benchmark: Random against Bayesian through the real server, and the control-plane
overhead between one trial and the next.

Run from the repository root:

    .venv/bin/python benchmarks/bench_tuning.py [--seeds N] [--trials N] [--sim-seeds N]
        [--sweep-seeds N] [--sweep-trials N] [--scales S ...] [--runtime R] [--poll S] [--write]

The problem: a script-mode training job (image `opensage/python:3`, `sagemaker_program` from a
sourcedir.tar.gz in S3) whose "validation loss" is a smooth bowl with a known optimum, printed as
`loss: <value>` and read back through MetricDefinitions. Four tuned hyperparameters:
`learning_rate` (continuous, 1e-4..1, Logarithmic), `layers` (integer, 1..8), `dropout`
(continuous, 0..0.5) and `momentum` (continuous, 0.8..0.99). The loss is 1 plus a positive
definite quadratic form of the distances to the optimum in the unit cube each ScalingType maps to
(`loss` below; learning rate weighs most and interacts with momentum); its minimum is exactly 1 at
learning_rate 10^-2.2, layers 4, dropout 0.1, momentum 0.95, so "within 1 %" is loss <= 1.01 when
the reference is the optimum. Its multiplier (0.1) was chosen before Bayesian ran, so that the
1 % region is a few per cent of the space and Random's expected median (ln 2 / share) fits a
30-trial budget: a target Random seldom reaches in the budget would only measure the cap.

1. Strategy efficiency, through the server: for each RandomSeed 0..seeds-1 and each strategy, one
   tuning job of `--trials` trials, MaxParallelTrainingJobs 1 (sequential, so the trials' launch
   order is the order in which the strategy saw them and "trials to reach X" is well defined).
   Counted from ListTrainingJobsForHyperParameterTuningJob in launch order: the first trial at
   which the best-so-far objective is within 1 % of the reference, the reference being the best
   value found by any run of either strategy in this benchmark (the issue's definition); runs that
   never get there count as trials + 1. The same count against the known optimum is shown too.
2. The same problem in this process with `opensage.tuning.suggest` (the function the runner calls,
   with the same seeds, trial numbers and history as a sequential job) over `--sim-seeds` seeds:
   more seeds than the server can run in the time. The server runs reproduce its first seeds'
   trials exactly (checked), so these are the same jobs, and the verdict is judged on them: a
   median over 10 seeds of counts this spread out moves by half with the seeds drawn. Then a
   sweep over the bowl's steepness (`--scales`, `--sweep-trials` trials each), since how much a
   model-based strategy saves depends on how small the target region is.
3. Control-plane overhead, from the same server runs: for consecutive trials i, i+1 of a job, the
   gaps between trial i's TrainingEndTime and trial i+1's CreationTime and TrainingStartTime, and
   the whole gap seen by the user's code (trial i's script printing its last line to trial i+1's
   script printing its first), broken into its four parts. Plus `suggest()` alone, timed for
   Bayesian with 30 and 100 finished observations.

Targets (the issue): Bayesian needs at most half the trials of Random to come within 1 % of the
best value found (medians over seeds); the control-plane overhead is under 0.5 s per trial.
`--write` replaces this benchmark's section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import itertools
import math
import os
import platform
import re
import statistics
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import optuna

from opensage.app import free_port, running
from opensage.settings import Settings
from opensage.tuning import Observation, Space, bayesian, parse_ranges, suggest
from results import replace_section

TITLE = "## Tuning: Random vs Bayesian, control-plane overhead (benchmarks/bench_tuning.py)"
STRATEGIES = ("Random", "Bayesian")
# Bayesian on the surrogate a process without PyTorch gets, in this process only (for comparison)
TPE_BAYESIAN = "Bayesian, TPE surrogate"
TOLERANCE = 0.01  # "within 1 %" of the reference, relative
OPTIMUM = 1.0
ROLE = "arn:aws:iam::123456789012:role/opensage-bench"
BUCKET = "bench"
SOURCE = f"s3://{BUCKET}/tuning-src/sourcedir.tar.gz"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
RANGES: dict[str, Any] = {
    "ContinuousParameterRanges": [
        {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "1",
         "ScalingType": "Logarithmic"},
        {"Name": "dropout", "MinValue": "0", "MaxValue": "0.5", "ScalingType": "Linear"},
        {"Name": "momentum", "MinValue": "0.8", "MaxValue": "0.99", "ScalingType": "Linear"},
    ],
    "IntegerParameterRanges": [
        {"Name": "layers", "MinValue": "1", "MaxValue": "8", "ScalingType": "Linear"},
    ],
}  # fmt: skip


def loss(hp: dict[str, Any], scale: float = 0.1) -> float:
    """The training script's objective (its source is copied into the script): 1 at the optimum,
    a quadratic bowl around it in the coordinates the ScalingTypes sample uniformly. `scale` sets
    how hard "within 1 %" is (the script keeps the default; the sweep varies it)."""
    d1 = (math.log10(float(hp["learning_rate"])) + 4) / 4 - 0.45  # optimum 10^-2.2
    d2 = (round(float(hp["layers"])) - 1) / 7 - 3 / 7  # optimum 4
    d3 = float(hp["dropout"]) / 0.5 - 0.2  # optimum 0.1
    d4 = (float(hp["momentum"]) - 0.8) / 0.19 - 0.15 / 0.19  # optimum 0.95
    form = 4 * d1 * d1 + 2 * d1 * d4 + d2 * d2 + 0.5 * d3 * d3 + d4 * d4
    return 1 + scale * form


SCRIPT = f"""from __future__ import annotations
import json, math, os, time
print("program-start %.6f" % time.time(), flush=True)
{inspect.getsource(loss)}
print("loss: %.10f" % loss(json.loads(os.environ["SM_HPS"])), flush=True)
print("program-end %.6f" % time.time(), flush=True)
"""


def metric_value(hp: dict[str, str], scale: float = 0.1) -> float:
    """The objective as the server parses it from the script's `loss:` line."""
    return float(f"{loss(hp, scale):.10f}")


def region_share(space: Space, scale: float, points: int = 20_000) -> float:
    """The share of the search space (as Random samples it) within 1 % of the optimum."""
    rng = np.random.default_rng(0)
    units = rng.random((points, len(space.parameters)))
    hits = sum(
        loss(space.format(space.from_unit([float(u) for u in row])), scale)
        <= OPTIMUM * (1 + TOLERANCE)
        for row in units
    )
    return hits / points


def geometric_median(share: float) -> float:
    """The median trial at which independent draws first land in a region of that share."""
    return math.log(2) / -math.log1p(-share) if share > 0 else math.inf


# the two strategies over a run's trials ---------------------------------------------------------


@dataclass
class Run:
    """One sequential tuning run: its trials' values and objectives, in launch order."""

    strategy: str
    seed: int
    values: list[dict[str, str]] = field(default_factory=list)
    objectives: list[float | None] = field(default_factory=list)

    def trials_to(self, reference: float) -> int:
        """The first trial whose best-so-far is within TOLERANCE of `reference`, else trials+1."""
        best = math.inf
        for number, value in enumerate(self.objectives, start=1):
            if value is not None:
                best = min(best, value)
            if best <= reference + TOLERANCE * abs(reference):
                return number
        return len(self.objectives) + 1

    @property
    def best(self) -> float:
        return min((v for v in self.objectives if v is not None), default=math.inf)


@contextlib.contextmanager
def surrogate_of(strategy: str) -> Iterator[str]:
    """The strategy `suggest` knows, with Bayesian's surrogate switched to TPE for TPE_BAYESIAN."""
    if strategy != TPE_BAYESIAN:
        yield strategy
        return
    shipped = bayesian.SURROGATE
    bayesian.SURROGATE = bayesian.TPE
    try:
        yield "Bayesian"
    finally:
        bayesian.SURROGATE = shipped


def simulate(space: Space, strategy: str, seed: int, trials: int, scale: float = 0.1) -> Run:
    """A sequential job's trials in this process: the runner's calls, with its history."""
    run = Run(strategy, seed)
    history: list[Observation] = []
    with surrogate_of(strategy) as known:
        for number in range(1, trials + 1):
            values = suggest(known, space, seed, number, history, "Minimize")
            objective = metric_value(values, scale)
            history.append(Observation(number, values, objective, True))
            run.values.append(values)
            run.objectives.append(objective)
    return run


@dataclass
class Efficiency:
    """Trials-to-target statistics of one strategy's runs."""

    strategy: str
    counts: list[int]
    optimum_counts: list[int]
    reached: int
    bests: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.counts)


def efficiency(runs: list[Run], strategy: str, reference: float) -> Efficiency:
    mine = [r for r in runs if r.strategy == strategy]
    counts = [r.trials_to(reference) for r in mine]
    trials = len(mine[0].objectives)
    return Efficiency(
        strategy,
        counts,
        [r.trials_to(OPTIMUM) for r in mine],
        sum(c <= trials for c in counts),
        [r.best for r in mine],
    )


def quartiles(values: Sequence[float]) -> str:
    if len(values) < 2:
        return ""
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{q1:g}-{q3:g}"


def efficiency_table(rows: list[Efficiency], trials: int) -> str:
    lines = [
        "| strategy | runs | median trials to 1 % of best found | quartiles | reached in "
        f"{trials} | median trials to 1 % of the optimum | median best after {trials} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.strategy} | {len(row.counts)} | {row.median:g} | {quartiles(row.counts)} | "
            f"{row.reached}/{len(row.counts)} | {statistics.median(row.optimum_counts):g} | "
            f"{statistics.median(row.bests):.4f} |"
        )
    return "\n".join(lines)


@dataclass
class Difficulty:
    """One row of the sweep: the bowl's scale, its 1 % region and both strategies' counts."""

    scale: float
    share: float
    trials: int
    counts: dict[str, list[int]]


def sweep(space: Space, scales: Sequence[float], seeds: int, trials: int) -> list[Difficulty]:
    """Trials to 1 % of the optimum, in this process, for bowls of several steepnesses."""
    rows = []
    for scale in scales:
        counts = {
            strategy: [
                simulate(space, strategy, seed, trials, scale).trials_to(OPTIMUM)
                for seed in range(seeds)
            ]
            for strategy in STRATEGIES
        }
        rows.append(Difficulty(scale, region_share(space, scale), trials, counts))
    return rows


def sweep_table(rows: list[Difficulty]) -> str:
    lines = [
        "| scale | 1 % region, share of the space | Random, expected median | Random median "
        "| reached | Bayesian median | reached | Bayesian / Random |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        random, bayes = row.counts["Random"], row.counts["Bayesian"]
        reached = {k: f"{sum(c <= row.trials for c in v)}/{len(v)}" for k, v in row.counts.items()}
        lines.append(
            f"| {row.scale:g} | {row.share:.2%} | {geometric_median(row.share):.0f} | "
            f"{statistics.median(random):g} | {reached['Random']} | "
            f"{statistics.median(bayes):g} | {reached['Bayesian']} | "
            f"{ratio_text(bayes, random, row.trials)[0]} |"
        )
    return "\n".join(lines)


# the server runs -------------------------------------------------------------------------------


@dataclass
class Trial:
    """What the API and the trial's log say about one trial (epoch seconds)."""

    name: str
    values: dict[str, str]
    objective: float | None
    created: float
    started: float
    ended: float
    program_start: float
    program_end: float


def clients_for(endpoint: str) -> tuple[Any, Any, Any]:
    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    return client("sagemaker"), client("s3"), client("logs")


def upload_script(s3: Any) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(SCRIPT.encode())
        tar.addfile(info, io.BytesIO(SCRIPT.encode()))
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="tuning-src/sourcedir.tar.gz", Body=buffer.getvalue())


def create_job(sagemaker: Any, name: str, strategy: str, seed: int, trials: int) -> None:
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": strategy,
            "RandomSeed": seed,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": RANGES,
        },
        TrainingJobDefinition={
            "AlgorithmSpecification": {
                "TrainingImage": "opensage/python:3",
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "loss", "Regex": r"loss: ([0-9.e+-]+)"}],
            },
            "StaticHyperParameters": {
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": SOURCE,
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/tuning-out"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 1,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        },
    )


def wait_ended(sagemaker: Any, name: str, timeout: float) -> dict[str, Any]:
    """Poll DescribeHyperParameterTuningJob until the job has ended (deadline `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        desc = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        status = desc["HyperParameterTuningJobStatus"]
        if status in ("Completed", "Failed", "Stopped"):
            if status != "Completed":
                raise RuntimeError(f"{name} {status}: {desc.get('FailureReason')}")
            return dict(desc)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not end within {timeout:.0f} s")
        time.sleep(0.5)


def stamp(logs: Any, job: str, label: str) -> float:
    """The epoch time the trial's script printed after `label` (its own clock)."""
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job}/")
    for stream in streams["logStreams"]:
        events = logs.get_log_events(
            logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"], startFromHead=True
        )["events"]
        for event in events:
            match = re.fullmatch(rf"{label} ([0-9.]+)", event["message"].strip())
            if match:
                return float(match.group(1))
    raise RuntimeError(f"{job} logged no {label} line")


def trials_of(sagemaker: Any, logs: Any, name: str) -> list[Trial]:
    """The job's trials in launch order (the number in their names), with their times."""
    summaries: list[dict[str, Any]] = []
    token: dict[str, str] = {}
    while True:
        page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, MaxResults=100, **token
        )
        summaries += page["TrainingJobSummaries"]
        if "NextToken" not in page:
            break
        token = {"NextToken": page["NextToken"]}
    summaries.sort(key=lambda s: int(s["TrainingJobName"].rsplit("-", 2)[1]))
    trials = []
    for summary in summaries:
        job = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        final = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {})
        trials.append(
            Trial(
                job["TrainingJobName"],
                dict(summary["TunedHyperParameters"]),
                final.get("Value"),
                job["CreationTime"].timestamp(),
                job["TrainingStartTime"].timestamp(),
                job["TrainingEndTime"].timestamp(),
                stamp(logs, job["TrainingJobName"], "program-start"),
                stamp(logs, job["TrainingJobName"], "program-end"),
            )
        )
    return trials


def server_runs(settings: Settings, seeds: int, trials: int) -> dict[tuple[str, int], list[Trial]]:
    """Every (strategy, seed) job, one at a time, so no two trials share the CPUs."""
    out: dict[tuple[str, int], list[Trial]] = {}
    with running(settings) as server:
        sagemaker, s3, logs = clients_for(server.endpoint_url)
        upload_script(s3)
        for seed in range(seeds):
            for strategy in STRATEGIES:
                name = f"bench-{strategy.lower()[:5]}-{seed}"
                began = time.monotonic()
                create_job(sagemaker, name, strategy, seed, trials)
                wait_ended(sagemaker, name, timeout=30.0 * trials)
                out[strategy, seed] = trials_of(sagemaker, logs, name)
                print(f"{name}: {trials} trials in {time.monotonic() - began:.1f} s", flush=True)
    return out


def as_run(strategy: str, seed: int, trials: list[Trial]) -> Run:
    return Run(strategy, seed, [t.values for t in trials], [t.objective for t in trials])


# overhead --------------------------------------------------------------------------------------

GAPS: tuple[tuple[str, Callable[[Trial, Trial], float]], ...] = (
    ("TrainingEndTime(i) -> CreationTime(i+1)", lambda a, b: b.created - a.ended),
    ("TrainingEndTime(i) -> TrainingStartTime(i+1)", lambda a, b: b.started - a.ended),
    ("script end (i) -> script start (i+1)", lambda a, b: b.program_start - a.program_end),
    ("- a. script end -> TrainingEndTime", lambda a, b: a.ended - a.program_end),
    ("- b. TrainingEndTime -> CreationTime(i+1)", lambda a, b: b.created - a.ended),
    ("- c. CreationTime -> TrainingStartTime", lambda a, b: b.started - b.created),
    ("- d. TrainingStartTime -> script start", lambda a, b: b.program_start - b.started),
)  # fmt: skip


def p90(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def overhead_table(jobs: dict[tuple[str, int], list[Trial]]) -> tuple[str, dict[str, float]]:
    """Median / p90 / max of each gap over consecutive trials; the medians and p90s by name."""
    lines = [
        "| gap between trial i and trial i+1 | strategy | pairs | median s | p90 s | max s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    figures: dict[str, float] = {}
    for label, gap in GAPS:
        by_strategy = ("all", "Random", "Bayesian") if label.startswith("- b.") else ("all",)
        for strategy in by_strategy:
            values = [
                gap(a, b)
                for (name, _), trials in jobs.items()
                if strategy in ("all", name)
                for a, b in itertools.pairwise(trials)
            ]
            figures[f"{label} {strategy} median"] = statistics.median(values)
            figures[f"{label} {strategy} p90"] = p90(values)
            lines.append(
                f"| {label} | {strategy} | {len(values)} | {statistics.median(values):.3f} | "
                f"{p90(values):.3f} | {max(values):.3f} |"
            )
    spans = [t.ended - t.created for trials in jobs.values() for t in trials]
    scripts = [t.program_end - t.program_start for trials in jobs.values() for t in trials]
    lines.append(
        f"| (for scale) one trial, CreationTime -> TrainingEndTime | all | {len(spans)} | "
        f"{statistics.median(spans):.3f} | {p90(spans):.3f} | {max(spans):.3f} |"
    )
    lines.append(
        f"| (for scale) the script itself, start -> end line | all | {len(scripts)} | "
        f"{statistics.median(scripts):.4f} | {p90(scripts):.4f} | {max(scripts):.4f} |"
    )
    return "\n".join(lines), figures


def suggest_times(space: Space, repeats: int) -> dict[tuple[str, int], float]:
    """Median seconds of one `suggest` call with n finished observations (30, 100, and 500: the
    API's largest MaxNumberOfTrainingJobs)."""
    out: dict[tuple[str, int], float] = {}
    run = simulate(space, "Random", 0, 500)  # any 500 distinct finished trials will do
    for strategy in STRATEGIES:
        for n in (30, 100, 500):
            history = [
                Observation(i + 1, v, o, True)
                for i, (v, o) in enumerate(zip(run.values[:n], run.objectives[:n], strict=True))
            ]
            times = []
            for repeat in range(repeats):
                start = time.perf_counter()
                suggest(strategy, space, repeat, n + 1, history, "Minimize")
                times.append(time.perf_counter() - start)
            out[strategy, n] = statistics.median(times)
    return out


# the report ------------------------------------------------------------------------------------


@dataclass
class Report:
    server: list[Efficiency]
    sim: list[Efficiency]
    reference: float
    share: float
    reproduced: str
    sweep: list[Difficulty]
    overhead: str
    figures: dict[str, float]
    suggest_s: dict[tuple[str, int], float]
    wall_s: float


def ratio_text(bayes: Sequence[int], random: Sequence[int], trials: int) -> tuple[str, bool]:
    """Bayesian's median over Random's, "<=" when Random's is the cap (most runs missed)."""
    ratio = statistics.median(bayes) / statistics.median(random)
    capped = sum(c <= trials for c in random) <= len(random) / 2
    return f"{'<= ' if capped else ''}{ratio:.2f}", ratio <= 0.5


def ratio_interval(
    bayes: Sequence[int], random: Sequence[int], resamples: int = 4000
) -> tuple[float, float]:
    """A 95 % bootstrap interval of the ratio of medians: seeds resampled for each strategy."""
    rng = np.random.default_rng(0)
    b = np.median(rng.choice(np.asarray(bayes), (resamples, len(bayes))), axis=1)
    r = np.median(rng.choice(np.asarray(random), (resamples, len(random))), axis=1)
    low, high = np.quantile(b / r, [0.025, 0.975])
    return float(low), float(high)


def verdict(report: Report, trials: int) -> list[str]:
    random, bayes = report.server
    sim_random, sim_bayes = report.sim[:2]
    ratio, met = ratio_text(bayes.counts, random.counts, trials)
    sim_ratio, sim_met = ratio_text(sim_bayes.counts, sim_random.counts, trials)
    low, high = ratio_interval(sim_bayes.counts, sim_random.counts)
    control = report.figures["TrainingEndTime(i) -> TrainingStartTime(i+1) all median"]
    control_p90 = report.figures["TrainingEndTime(i) -> TrainingStartTime(i+1) all p90"]
    whole = report.figures["script end (i) -> script start (i+1) all median"]
    sweep = {
        f"{row.share:.1%}": ratio_text(row.counts["Bayesian"], row.counts["Random"], row.trials)[1]
        for row in report.sweep
    }
    return [
        f"- Bayesian needs at most half the trials of Random: {sim_bayes.median:g} vs "
        f"{sim_random.median:g} trials over {len(sim_random.counts)} seeds, ratio {sim_ratio} "
        f"({'met' if sim_met else 'NOT met'}; 95 % bootstrap interval {low:.2f}-{high:.2f}, "
        f"surrogate {bayesian.SURROGATE}); the server runs alone ({len(random.counts)} "
        f"seeds): {bayes.median:g} vs {random.median:g}, ratio {ratio} "
        f"({'met' if met else 'NOT met'}). Sweep, by the 1 % region's share of the space: "
        + ", ".join(f"{share} {'met' if ok else 'NOT met'}" for share, ok in sweep.items())
        + ".",
        f"- Control-plane overhead under 0.5 s per trial (TrainingEndTime of one trial to "
        f"TrainingStartTime of the next): median {control:.3f} s, p90 {control_p90:.3f} s "
        f"({'met' if control < 0.5 else 'NOT met'} at the median, "
        f"{'met' if control_p90 < 0.5 else 'NOT met'} at p90). The whole gap the user's code "
        f"sees, script end to the next script's start: median {whole:.3f} s.",
        f"- Server runs reproduce the in-process suggestions: {report.reproduced}.",
    ]


def reproduced(runs: list[Run], sims: list[Run]) -> str:
    """Whether each server run's trials are the in-process run's of the same strategy and seed."""
    simulated = {(r.strategy, r.seed): r for r in sims}
    checked = [r for r in runs if (r.strategy, r.seed) in simulated]
    same = [
        r
        for r in checked
        if r.values == simulated[r.strategy, r.seed].values
        and r.objectives == simulated[r.strategy, r.seed].objectives
    ]
    return f"{len(same)}/{len(checked)} runs identical (values and objectives)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="server runs per strategy")
    parser.add_argument("--trials", type=int, default=30, help="MaxNumberOfTrainingJobs")
    parser.add_argument("--sim-seeds", type=int, default=100, help="in-process runs per strategy")
    parser.add_argument("--sweep-seeds", type=int, default=20, help="sweep runs per strategy")
    parser.add_argument("--sweep-trials", type=int, default=100, help="trials per sweep run")
    parser.add_argument(
        "--scales", type=float, nargs="*", default=[0.05, 0.1, 0.2], help="sweep bowl scales"
    )
    parser.add_argument("--runtime", default="process", choices=["process", "sandbox"])
    parser.add_argument(
        "--poll", type=float, default=Settings().poll_interval_seconds, help="server poll, s"
    )
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    began = time.monotonic()
    space = parse_ranges(RANGES)
    with tempfile.TemporaryDirectory(prefix="opensage-bench-tuning-") as tmp:
        settings = Settings(
            home=Path(tmp) / "home",
            port=free_port(),
            runtime=args.runtime,
            stop_grace_seconds=3,
            poll_interval_seconds=args.poll,
        )
        jobs = server_runs(settings, args.seeds, args.trials)
    overhead, figures = overhead_table(jobs)
    runs = [as_run(strategy, seed, trials) for (strategy, seed), trials in jobs.items()]
    simulated = (*STRATEGIES, TPE_BAYESIAN) if bayesian.SURROGATE != bayesian.TPE else STRATEGIES
    sims = [
        simulate(space, s, seed, args.trials) for s in simulated for seed in range(args.sim_seeds)
    ]
    reference = min(r.best for r in [*runs, *sims] if r.strategy in STRATEGIES)
    report = Report(
        [efficiency(runs, s, reference) for s in STRATEGIES],
        [efficiency(sims, s, reference) for s in simulated],
        reference,
        region_share(space, 0.1),
        reproduced(runs, sims),
        sweep(space, args.scales, args.sweep_seeds, args.sweep_trials),
        overhead,
        figures,
        suggest_times(space, repeats=10),
        time.monotonic() - began,
    )
    text = tables(report, args)
    lines = verdict(report, args.trials)
    print(text)
    print("\n".join(lines))
    if args.write:
        write_results(text, lines, args, report)


def tables(report: Report, args: argparse.Namespace) -> str:
    trials = args.trials
    timings = ", ".join(
        f"{strategy} with {n} observations {seconds * 1000:.1f} ms"
        for (strategy, n), seconds in report.suggest_s.items()
    )
    return f"""Server runs, {trials} trials each, MaxParallelTrainingJobs 1, RandomSeed \
0..{args.seeds - 1}:

{efficiency_table(report.server, trials)}

The same jobs in this process with `opensage.tuning.suggest`, RandomSeed 0..{args.sim_seeds - 1} \
(the server runs above are the first {args.seeds} of these, trial for trial; the verdict's \
figure, as {args.seeds} seeds are too few for a median of counts this spread out; the last \
row, when there is one, is the Bayesian strategy on the TPE surrogate a process without PyTorch \
uses, for comparison):

{efficiency_table(report.sim, trials)}

Reference (best found over every run above): {report.reference:.6f}; known optimum \
{OPTIMUM:g}. The 1 % region is {report.share:.2%} of the space: Random's expected median \
{geometric_median(report.share):.0f} trials. A run that never gets there counts as {trials + 1}.

Difficulty sweep, in this process: the same bowl steeper or flatter (`scale`; the server runs \
use 0.1), {args.sweep_trials} trials, RandomSeed 0..{args.sweep_seeds - 1}, trials to 1 % of \
the optimum; "<=" where Random's median is censored at {args.sweep_trials + 1}:

{sweep_table(report.sweep)}

Overhead between consecutive trials of the server runs (a + b + c + d = the whole gap):

{report.overhead}

One `suggest()` call (median of 10): {timings}."""


def write_results(text: str, lines: list[str], args: argparse.Namespace, report: Report) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    flags = (
        f"--seeds {args.seeds} --trials {args.trials} --sim-seeds {args.sim_seeds} "
        f"--sweep-seeds {args.sweep_seeds} --sweep-trials {args.sweep_trials} "
        f"--runtime {args.runtime} --poll {args.poll:g}"
    )
    section = f"""{TITLE}

```
cd /work/main && .venv/bin/python benchmarks/bench_tuning.py {flags} --write
```

- Date: {now}; the whole run took {report.wall_s / 60:.1f} min.
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  optuna {optuna.__version__}; Bayesian surrogate `{bayesian.SURROGATE}`; runtime
  `{args.runtime}`, server poll interval {args.poll:g} s.
- Load average at the end of the run: {load} (1/5/15 min); the machine is shared with other
  sessions, so the times swing between runs. The trial counts do not: every suggestion is a
  pure function of (seed, trial number, history), and the server runs reproduce the in-process
  ones exactly.
- Problem: a script-mode job (`opensage/python:3`, `sagemaker_program`) whose loss is 1 plus
  `scale` times a quadratic form of the distances to the optimum in the unit-cube coordinates of
  learning_rate (1e-4..1, Logarithmic), layers (integer 1..8), dropout (0..0.5) and momentum
  (0.8..0.99); learning rate weighs most and interacts with momentum. Optimum exactly 1.
  `scale` 0.1 was chosen, before running Bayesian, so that Random's expected median fits the
  30-trial budget.
- Counting: the trial number (launch order, sequential jobs) at which the best-so-far first
  comes within 1 % of the best value found by any run of either strategy (the issue's
  definition); the tables also give the count against the known optimum.

{text}

{chr(10).join(lines)}
{NOTES}
"""
    replace_section(TITLE, section)


NOTES = """
What limits the figures:

- Trials to 1 %: Bayesian's first five trials are random (`N_STARTUP_TRIALS`); from the sixth a
  Gaussian process (Optuna's GPSampler: Matern 5/2 with a length scale per parameter, log EI,
  the noise estimated) picks each point. Random's count grows as 1 / (the 1 % region's share of
  the space), the GP's far more slowly, so the ratio is a property of the problem as much as of
  the strategy: the sweep shows it falling as the region shrinks, and above 1 on an easy bowl
  where Random lands in the region within a few trials. The medians of counts this spread out
  move with the seeds drawn (Random's over 100 seeds was 21.5 where its expected median is 26),
  hence the many seeds and the bootstrap interval.
- The surrogate before this one was Optuna's multivariate TPE (still used where PyTorch is not
  installed: the last row of the in-process table). It needed 14 trials on this bowl against
  Random's 21.5 over seeds 0..99 (ratio 0.65), and no TPE setting changed that in a one-off
  experiment (60 seeds: n_startup_trials 3 or 10, independent instead of multivariate, 100 or
  256 EI candidates, gamma 10 %, consider_endpoints, prior_weight 0.5: 12 to 15.5 trials). A
  hand-written scikit-learn GP-EI (Sobol start-up of 3, EI by candidates and L-BFGS-B) tied TPE
  at 14. Optuna's GP, deterministic or noise-estimating, needed 11 over the same 100 seeds
  (one-off runs before the switch); it costs 0.1 to 0.2 s per suggestion at 30 observations
  (the timings above), tens of times TPE's, still well inside the overhead target.
- The GP's cost grows with the history (cubic in the observations, refit every call): about 1 s
  per suggestion at 500 observations, the API's largest budget. The overhead target holds for
  the tens of trials tuning jobs usually run, not for the last trials of a 500-trial job;
  fitting the GP on a capped history (the best and the latest few hundred) would bound it.
- The ratio's bootstrap interval (0.35-0.52) still reaches past 0.5, and smaller seed sets give
  other medians (the server's 10 seeds 0.52, the sweep's 20 seeds at the same scale 0.61): the
  verdict rests on the 300-seed medians, whose Random figure (24) is close to its expected 26.
- b (the tuner): the tuning supervisor sees a trial's end only on its next pass, every
  `poll_interval_seconds` (0.2 s by default: 0 to 0.2 s, about 0.1 s at the median), then
  syncs the trials, calls `suggest` (Bayesian rebuilds an Optuna study and refits its GP from
  the whole history each call, so its cost grows with the history: the timings above), stores
  the trial, creates the training job and stores it again. With `--poll 0.02` the poll's share
  of b falls tenfold (a one-off 100-trial job on the TPE surrogate: b 20-60 ms).
- c (staging): the training supervisor's thread, the sourcedir download and the /opt/ml tree.
- a (the trial's end, before TrainingEndTime): the script's and the toolkit's interpreters
  exiting, the shim writing `exit_code`, the training supervisor's next poll (0 to 0.2 s) and
  the artifact upload.
- d, most of the whole gap, is the training job's own start-up, the same for any job: three
  interpreters start one after the other (the shim, `python -m opensage.toolkit train`, then
  `python train.py`), slower the busier the machine.
"""


if __name__ == "__main__":
    main()
