"""Training benchmark: job latency, and the built-in XGBoost through opensage vs plain xgboost.

Run from the repository root:

    .venv/bin/python benchmarks/bench_training.py [--repeats N] [--rows N]

One opensage server (on a thread of this process, a fresh temporary home) serves the whole run;
every call goes through real boto3 clients, as a SageMaker user's would.

1. Latency of a tiny job (`opensage/python:3`, `print('hello')`): from just before
   CreateTrainingJob to (a) the first log line being visible through the CloudWatch Logs API,
   (b) DescribeTrainingJob saying Completed. Both are polled every 20 ms.
2. The built-in XGBoost on a `make_regression` data set (CSV, label first, no header): wall time
   CreateTrainingJob -> Completed (polled every 100 ms), against plain `xgboost.train` with the
   same parameters on the same CSV file (timed from `pandas.read_csv(header=None)` through
   training). Every model the jobs upload is downloaded, loaded in plain xgboost and must predict
   what the plain model does.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import xgboost as xgb
from rich.console import Console
from rich.table import Table
from sklearn.datasets import make_regression

from opensage.app import free_port, running
from opensage.settings import Settings

ROLE = "arn:aws:iam::123456789012:role/R"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
TINY_IMAGE = "opensage/python:3"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
BUCKET = "bench"
POLL_SECONDS = 0.02
# Each DescribeTrainingJob costs ~5 ms of CPU here (client and server share this process): at
# 20 ms that is a quarter of a core taken from the training program on a 2-core machine, so the
# long XGBoost jobs are polled less often. The wall time is then late by at most this much.
XGB_POLL_SECONDS = 0.1
JOB_TIMEOUT_SECONDS = 300.0
TOLERANCE = 1e-6
FEATURES = 20
SEED = 7
ROUNDS = 100
PARAMS: dict[str, Any] = {
    "max_depth": 6,
    "eta": 0.1,
    "objective": "reg:squarederror",
    "tree_method": "hist",
}
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}


class JobFailedError(RuntimeError):
    """A benchmark job ended in a state other than Completed."""


@dataclass
class Clients:
    sagemaker: Any
    s3: Any
    logs: Any


@dataclass
class Samples:
    """Seconds measured for one figure, over the repeats."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


def make_clients(endpoint: str) -> Clients:
    options: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "x",
        "aws_secret_access_key": "y",
    }
    return Clients(
        boto3.client("sagemaker", **options),
        boto3.client("s3", **options),
        boto3.client("logs", **options),
    )


def create_job(
    clients: Clients,
    name: str,
    algorithm: dict[str, Any],
    hyperparameters: dict[str, str] | None = None,
    channels: list[dict[str, Any]] | None = None,
) -> None:
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingInputMode": "File", **algorithm},
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": RESOURCES,
    }
    if hyperparameters:
        request["HyperParameters"] = hyperparameters
    if channels:
        request["InputDataConfig"] = channels
    clients.sagemaker.create_training_job(**request)


def finished(clients: Clients, name: str) -> dict[str, Any] | None:
    """The job's description once it has ended (Completed), None while it runs."""
    job: dict[str, Any] = clients.sagemaker.describe_training_job(TrainingJobName=name)
    status = job["TrainingJobStatus"]
    if status in ("InProgress", "Stopping"):
        return None
    if status != "Completed":
        raise JobFailedError(f"{name} ended {status}: {job.get('FailureReason')}")
    return job


def first_log_visible(clients: Clients, name: str) -> bool:
    streams = clients.logs.describe_log_streams(
        logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    if not streams:
        return False
    events = clients.logs.get_log_events(
        logGroupName=LOG_GROUP, logStreamName=streams[0]["logStreamName"], startFromHead=True
    )["events"]
    return bool(events)


def wait_for(condition: Callable[[], bool], started: float, what: str, interval: float) -> None:
    while not condition():
        if time.perf_counter() - started > JOB_TIMEOUT_SECONDS:
            raise TimeoutError(f"gave up waiting for {what} after {JOB_TIMEOUT_SECONDS:.0f} s")
        time.sleep(interval)


def phase_seconds(job: dict[str, Any]) -> dict[str, float]:
    """Seconds spent in each secondary status before the last, from the transitions."""
    phases: dict[str, float] = {}
    for transition in job.get("SecondaryStatusTransitions", []):
        end = transition.get("EndTime")
        if end is not None and transition["Status"] != "Completed":
            phases[transition["Status"]] = (end - transition["StartTime"]).total_seconds()
    return phases


def training_breakdown(clients: Clients, name: str, job: dict[str, Any]) -> dict[str, float]:
    """The Training phase split at the job's first and last log lines (the shim's timestamps).

    The built-in logs its first line once the data is read, and its last once the model is
    written, so the three parts are: process start, imports and CSV read; DMatrix, the rounds
    and saving the model; process exit and the supervisor noticing it.
    """
    training = next(t for t in job["SecondaryStatusTransitions"] if t["Status"] == "Training")
    stream = clients.logs.describe_log_streams(
        logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/"
    )["logStreams"][0]["logStreamName"]
    events = clients.logs.get_log_events(
        logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True
    )["events"]
    first, last = events[0]["timestamp"] / 1000, events[-1]["timestamp"] / 1000
    return {
        "start -> first log line (spawn, imports, CSV read)": (
            first - training["StartTime"].timestamp()
        ),
        "first -> last log line (DMatrix, rounds, save)": last - first,
        "last log line -> end (exit, supervisor poll)": training["EndTime"].timestamp() - last,
    }


# 1. latency of a tiny job ----------------------------------------------------------------------


def bench_latency(clients: Clients, repeats: int) -> tuple[Samples, Samples]:
    to_log, to_completed = Samples(), Samples()
    algorithm = {
        "TrainingImage": TINY_IMAGE,
        "ContainerEntrypoint": ["python3", "-c", "print('hello', flush=True)"],
    }
    for i in range(repeats):
        name = f"bench-tiny-{i}"
        log_at: float | None = None
        done_at: float | None = None
        t0 = time.perf_counter()
        create_job(clients, name, algorithm)
        # One loop polls both, each every 20 ms; neither call waits on the other's result.
        while log_at is None or done_at is None:
            if time.perf_counter() - t0 > JOB_TIMEOUT_SECONDS:
                raise TimeoutError(f"{name} did not finish in {JOB_TIMEOUT_SECONDS:.0f} s")
            if log_at is None and first_log_visible(clients, name):
                log_at = time.perf_counter()
            if done_at is None and finished(clients, name) is not None:
                done_at = time.perf_counter()
            time.sleep(POLL_SECONDS)
        to_log.values.append(log_at - t0)
        to_completed.values.append(done_at - t0)
    return to_log, to_completed


# 2. XGBoost: opensage vs plain -----------------------------------------------------------------


def write_dataset(path: Path, rows: int) -> None:
    features, labels = make_regression(
        n_samples=rows, n_features=FEATURES, noise=0.5, random_state=SEED
    )
    np.savetxt(path, np.column_stack([labels, features]), delimiter=",", fmt="%.8g")


def load_csv(path: Path) -> xgb.DMatrix:
    """The same loader the built-in uses: pandas, no header, label in the first column."""
    table = pd.read_csv(path, header=None)
    return xgb.DMatrix(table.iloc[:, 1:].to_numpy(), label=table.iloc[:, 0].to_numpy())


def train_plain(path: Path, params: dict[str, Any]) -> tuple[float, xgb.Booster]:
    t0 = time.perf_counter()
    booster = xgb.train(params, load_csv(path), num_boost_round=ROUNDS)
    return time.perf_counter() - t0, booster


def train_opensage(
    clients: Clients, name: str, params: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    hyperparameters = {key: str(value) for key, value in params.items()}
    hyperparameters["num_round"] = str(ROUNDS)
    channel = {
        "ChannelName": "train",
        "ContentType": "text/csv",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": f"s3://{BUCKET}/xgb/train/",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }
    t0 = time.perf_counter()
    create_job(clients, name, {"TrainingImage": XGBOOST_IMAGE}, hyperparameters, [channel])
    job: dict[str, Any] = {}

    def completed() -> bool:
        nonlocal job
        job = finished(clients, name) or {}
        return bool(job)

    wait_for(completed, t0, f"{name} to complete", XGB_POLL_SECONDS)
    return time.perf_counter() - t0, job


def download_model(clients: Clients, name: str, folder: Path) -> xgb.Booster:
    key = f"output/{name}/output/model.tar.gz"
    body = clients.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        tar.extract("xgboost-model", folder, filter="data")
    booster = xgb.Booster()
    # From a buffer xgboost detects the format itself (a path without extension makes it warn).
    booster.load_model(bytearray((folder / "xgboost-model").read_bytes()))
    return booster


def cold_import_seconds() -> float:
    """What a fresh Python that imports xgboost and pandas costs: the floor of any job."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pandas, xgboost"], check=True)
    return time.perf_counter() - t0


@dataclass
class XgbResult:
    opensage: Samples
    plain: Samples
    cold_import: Samples
    phases: dict[str, Samples]
    max_abs_diff: float


def bench_xgboost(
    clients: Clients, work: Path, repeats: int, rows: int, params: dict[str, Any]
) -> XgbResult:
    data = work / "train.csv"
    write_dataset(data, rows)
    clients.s3.put_object(Bucket=BUCKET, Key="xgb/train/train.csv", Body=data.read_bytes())
    opensage, plain, cold = Samples(), Samples(), Samples()
    phases: dict[str, Samples] = {}
    worst_diff = 0.0
    features = load_csv(data)
    train_plain(data, params)  # untimed warm-up of the in-process library
    for i in range(repeats):  # interleaved, so drifting machine load hits both sides alike
        seconds, plain_model = train_plain(data, params)
        plain.values.append(seconds)
        name = f"bench-xgb-{i}"
        seconds, job = train_opensage(clients, name, params)
        opensage.values.append(seconds)
        parts: dict[str, float] = {}
        for status, spent in phase_seconds(job).items():
            parts[f"  phase {status}"] = spent
            if status == "Training":
                for part, inner in training_breakdown(clients, name, job).items():
                    parts[f"    {part}"] = inner
        for part, spent in parts.items():
            phases.setdefault(part, Samples()).values.append(spent)
        cold.values.append(cold_import_seconds())
        served = download_model(clients, name, work / name)
        diff = np.abs(served.predict(features) - plain_model.predict(features)).max()
        worst_diff = max(worst_diff, float(diff))
    return XgbResult(opensage, plain, cold, phases, worst_diff)


# report ----------------------------------------------------------------------------------------


def machine_line(settings: Settings) -> str:
    return (
        f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
        f"xgboost {xgb.__version__}, runtime {settings.resolved_runtime()}"
    )


def report(
    console: Console,
    settings: Settings,
    args: argparse.Namespace,
    latency: tuple[Samples, Samples],
    result: XgbResult,
) -> None:
    console.print(f"machine: {machine_line(settings)}")
    console.print(f"date: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    table = Table(title=f"opensage training, {args.repeats} repeats (seconds)")
    for column in ("figure", "median", "min", "max"):
        table.add_column(column, justify="left" if column == "figure" else "right")

    def row(label: str, samples: Samples) -> None:
        table.add_row(label, f"{samples.median:.3f}", f"{samples.low:.3f}", f"{samples.high:.3f}")

    row("tiny job: create -> first log line visible", latency[0])
    row("tiny job: create -> Completed", latency[1])
    size = f"{args.rows}x{FEATURES}, {ROUNDS} rounds"
    row(f"xgboost {size}: opensage create -> Completed", result.opensage)
    row(f"xgboost {size}: plain read_csv -> DMatrix -> train", result.plain)
    for part, samples in result.phases.items():
        row(part, samples)
    row("cold python -c 'import pandas, xgboost'", result.cold_import)
    console.print(table)
    ratio = result.opensage.median / result.plain.median
    overhead = result.opensage.median - result.plain.median
    console.print(
        f"xgboost: opensage/plain = {ratio:.2f}x (medians), overhead {overhead:.2f} s; "
        "plain = pandas.read_csv(header=None) -> xgb.DMatrix -> xgb.train in this process "
        f"(xgboost imported, one untimed warm-up), nthread {args.nthread or 'default'}; "
        f"opensage polled every {XGB_POLL_SECONDS * 1000:.0f} ms"
    )
    console.print(
        f"best runs: opensage/plain = {result.opensage.low / result.plain.low:.2f}x, "
        f"overhead {result.opensage.low - result.plain.low:.2f} s (min of each side)"
    )
    console.print(
        f"correctness: max |prediction(served model) - prediction(plain model)| = "
        f"{result.max_abs_diff:.3g} over {args.rows} rows, worst of {args.repeats} models "
        f"(tolerance {TOLERANCE:g})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each figure")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the XGBoost data set")
    parser.add_argument(
        "--runtime", default="auto", choices=["auto", "process", "sandbox"], help="job runtime"
    )
    parser.add_argument(
        "--nthread", type=int, default=0, help="xgboost threads on both sides (0: its default)"
    )
    args = parser.parse_args(argv)
    params = {**PARAMS, "nthread": args.nthread} if args.nthread else dict(PARAMS)
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="opensage-bench-") as tmp:
        work = Path(tmp)
        settings = Settings(
            home=work / "home", port=free_port(), runtime=args.runtime, stop_grace_seconds=2
        )
        with running(settings) as server:
            clients = make_clients(server.endpoint_url)
            clients.s3.create_bucket(Bucket=BUCKET)
            try:
                latency = bench_latency(clients, args.repeats)
                result = bench_xgboost(clients, work, args.repeats, args.rows, params)
            except JobFailedError as exc:
                console.print(f"[red]job failed:[/red] {exc}")
                return 1
        report(console, settings, args, latency, result)
    if result.max_abs_diff > TOLERANCE:
        console.print("[red]the model trained by opensage predicts differently[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
