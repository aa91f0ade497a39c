"""Batch transform benchmark: CreateTransformJob over a big CSV against a plain pandas script.

Run from the repository root:

    .venv/bin/python benchmarks/bench_transform.py [--runs N] [--rows N] [--write]

One generated data set per run (`make_classification`, 50 features, fixed seed): 20,000 rows to
train on and `--rows` rows (default 1,000,000) written as features-only CSV (`%.6g`, ~0.45 GB
at the default) into a temporary folder that is deleted at the end. Two models:

- XGBoost: `xgb.train` here (binary:logistic, 50 rounds, depth 6), packed as `xgboost-model`
  in a model.tar.gz for the built-in XGBoost image;
- Linear Learner: a real training job on the server (binary_classifier, feature_dim 50, the
  rest SageMaker's defaults), its model.tar.gz as the model.

Per model and run, in turn (so a load swing on the shared machine hits both alike):

1. the floor, a plain script in this process: `pandas.read_csv(header=None)`, predict with the
   same model in-process (XGBoost: `Booster.predict` on a DMatrix, xgboost's default threads;
   Linear Learner: `LinearModel.load` on the job's artifact, float32 features as the model
   server parses them), the predictions written as CSV with pandas; timed end to end;
2. ours: CreateTransformJob (text/csv, SplitType Line, MultiRecord, MaxPayloadInMB 6,
   MaxConcurrentTransforms 2, AssembleWith Line, one instance) on the server (a thread of this
   process, "process" runtime, fresh temporary home), timed from the create call until
   DescribeTransformJob says Completed (polled every 0.1 s); TransformStartTime ->
   TransformEndTime is kept too. The output must have one line per input row and equal the
   floor's predictions (1e-5), else the run fails;
3. a diagnostic variant of ours with `SAGEMAKER_MODEL_SERVER_WORKERS=1` in the job's
   Environment: one model-server process takes both requests in flight, where by default
   MaxConcurrentTransforms 2 gives it two worker processes.

Accept is text/csv for XGBoost. Linear Learner offers no text/csv answer (JSON, JSON Lines,
RecordIO only, as SageMaker's), so its jobs ask for application/jsonlines.

Each job also records when its model server became ready (its log), the CPU time of the runner
(this process) and of the model server (/proc). Then, once per model, where the time goes: the
splitter alone on the file; the model server's handler in this process on the first 6 MB
request, step by step (parse / predict / encode, CPU time), and `pandas.read_csv` on the same
bytes as a candidate parser; round trips through the runner's `InvocationClient` to a model
server started here (a one-row request, the 6 MB request, and the 6 MB request with a content
type the handler refuses at once: the transport alone).

`--write` replaces the `## Batch transform` section of benchmarks/RESULTS.md with this run's.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.datasets import make_classification

from opensage.algorithms.inference import encode, parse_features
from opensage.algorithms.linear_learner import serve as linear_serve
from opensage.algorithms.linear_learner.model import LinearModel
from opensage.algorithms.xgboost import serve as xgboost_serve
from opensage.app import free_port, running
from opensage.control.model_servers import ping
from opensage.control.transform_records import MiniBatch, object_batches
from opensage.control.transform_runner import InvocationClient, ObjectFailure
from opensage.formats.content_types import canonical, parse_media_type
from opensage.formats.csv import encode_csv
from opensage.settings import Settings
from results import replace_section

TITLE = "## Batch transform (benchmarks/bench_transform.py)"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
LINEAR_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
ROLE = "arn:aws:iam::123456789012:role/bench"
BUCKET = "bench"
INPUT_KEY = "input/data.csv"
CSV = "text/csv"
JSONLINES = "application/jsonlines"

FEATURES = 50
TRAIN_ROWS = 20_000
ROUNDS = 50
DEPTH = 6
SEED = 0
PAYLOAD_MB = 6
CONCURRENCY = 2
TARGET = 0.70
TOLERANCE = 1e-5
POLL_SECONDS = 0.1
JOB_DEADLINE_SECONDS = 1800.0
WIDTH = 99  # the repository's line length less one
ONE_WORKER = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
Array = np.ndarray[Any, Any]


# data and models ---------------------------------------------------------------------------


def data(rows: int, folder: Path) -> tuple[Array, Array, Path]:
    """Training rows and labels, and the path of the features-only CSV to transform."""
    x, y = make_classification(
        n_samples=TRAIN_ROWS + rows,
        n_features=FEATURES,
        n_informative=20,
        n_redundant=10,
        random_state=SEED,
    )
    path = folder / "data.csv"
    with path.open("wb") as sink:
        for start in range(TRAIN_ROWS, TRAIN_ROWS + rows, 100_000):
            np.savetxt(sink, x[start : start + 100_000], fmt="%.6g", delimiter=",")
    return x[:TRAIN_ROWS], y[:TRAIN_ROWS], path


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def untar(body: bytes, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        tar.extractall(folder, filter="data")
    return folder


@dataclass
class Clients:
    sagemaker: Any
    s3: Any


def make_clients(endpoint: str) -> Clients:
    options: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "x",
        "aws_secret_access_key": "y",
    }
    return Clients(boto3.client("sagemaker", **options), boto3.client("s3", **options))


def xgboost_model(clients: Clients, x: Array, y: Array, folder: Path) -> tuple[str, Path]:
    """The model's name on the server, and a folder holding its artifact for in-process use."""
    params = {"objective": "binary:logistic", "max_depth": DEPTH, "seed": SEED}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), ROUNDS)
    raw = bytes(booster.save_raw(raw_format="ubj"))
    key = "models/xgboost/model.tar.gz"
    clients.s3.put_object(Bucket=BUCKET, Key=key, Body=tar_gz({"xgboost-model": raw}))
    clients.sagemaker.create_model(
        ModelName="bench-xgboost",
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{key}"},
        ExecutionRoleArn=ROLE,
    )
    model_dir = folder / "xgboost-model"
    model_dir.mkdir()
    (model_dir / "xgboost-model").write_bytes(raw)
    return "bench-xgboost", model_dir


def linear_model(clients: Clients, x: Array, y: Array, folder: Path) -> tuple[str, Path, float]:
    """Train through a real training job; the model's name, its artifact's folder, job seconds."""
    key = "train/linear.csv"
    clients.s3.put_object(Bucket=BUCKET, Key=key, Body=encode_csv(x.astype(np.float32), y))
    name = "bench-linear"
    start = time.perf_counter()
    clients.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": LINEAR_IMAGE, "TrainingInputMode": "File"},
        HyperParameters={"predictor_type": "binary_classifier", "feature_dim": str(FEATURES)},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "ContentType": CSV,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/{key}",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/training"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    job = wait(lambda: clients.sagemaker.describe_training_job(TrainingJobName=name),
               "TrainingJobStatus", 0.2)  # fmt: skip
    seconds = time.perf_counter() - start
    if job["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"the Linear Learner job ended {job['TrainingJobStatus']}: {job}")
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    clients.sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": LINEAR_IMAGE, "ModelDataUrl": artifact},
        ExecutionRoleArn=ROLE,
    )
    bucket, _, artifact_key = artifact.removeprefix("s3://").partition("/")
    body = clients.s3.get_object(Bucket=bucket, Key=artifact_key)["Body"].read()
    return name, untar(body, folder / "linear-model"), seconds


def wait(describe: Callable[[], Any], status_key: str, interval: float) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_DEADLINE_SECONDS
    while True:
        desc: dict[str, Any] = describe()
        if desc[status_key] in ("Completed", "Failed", "Stopped"):
            return desc
        if time.monotonic() > deadline:
            raise RuntimeError(f"no final status within {JOB_DEADLINE_SECONDS:.0f} s: {desc}")
        time.sleep(interval)


# the two subjects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    """One transform job's figures, in seconds."""

    wall: float
    """CreateTransformJob -> DescribeTransformJob says Completed."""
    inside: float
    """TransformStartTime -> TransformEndTime."""
    ready: float
    """CreateTransformJob -> the model server's "serving" log line."""
    runner_cpu: float
    """This process less the polling thread: the API server and the job's runner threads."""
    server_cpu: float
    """The model server process (sampled at each poll; it exits with the job)."""


@dataclass
class Subject:
    """One model: the floor's way to predict, how a job asks it and reads its output."""

    name: str
    model_name: str
    model_dir: Path
    handler_name: str
    accept: str
    floor: Callable[[Path, Path], Array]
    """(input CSV, output CSV) -> the predictions it wrote, (rows, columns)."""
    read_output: Callable[[Path], Array]
    floor_s: list[float] = field(default_factory=list)
    floor_cpu_s: list[float] = field(default_factory=list)
    ours: list[JobRun] = field(default_factory=list)
    one_worker: list[JobRun] = field(default_factory=list)
    max_diff: float = 0.0
    facts: dict[str, float] = field(default_factory=dict)
    """Where the time goes, seconds for the whole file (see `where_time_goes`)."""

    def ratio(self, runs: list[JobRun]) -> float:
        return med(self.floor_s) / med([run.wall for run in runs])


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def xgboost_floor(model_dir: Path) -> Callable[[Path, Path], Array]:
    booster = xgb.Booster()
    booster.load_model(bytearray((model_dir / "xgboost-model").read_bytes()))

    def floor(source: Path, sink: Path) -> Array:
        frame = pd.read_csv(source, header=None)
        scores = booster.predict(xgb.DMatrix(frame))
        pd.DataFrame({"score": scores}).to_csv(sink, header=False, index=False)
        return scores.reshape(-1, 1)

    return floor


def linear_floor(model_dir: Path) -> Callable[[Path, Path], Array]:
    model = LinearModel.load(model_dir)

    def floor(source: Path, sink: Path) -> Array:
        features = pd.read_csv(source, header=None).to_numpy(dtype=np.float32)
        scores, labels = model.predict(features)
        assert labels is not None
        pd.DataFrame({"score": scores, "label": labels}).to_csv(sink, header=False, index=False)
        return np.column_stack([scores, labels])

    return floor


def read_csv_output(path: Path) -> Array:
    values: Array = pd.read_csv(path, header=None).to_numpy(dtype=np.float64)
    return values


def read_jsonlines_output(path: Path) -> Array:
    lines = path.read_bytes().splitlines()
    rows = json.loads(b"[" + b",".join(lines) + b"]")
    return np.array([(row["score"], row["predicted_label"]) for row in rows], dtype=np.float64)


# one timed run ------------------------------------------------------------------------------


def time_floor(subject: Subject, source: Path, folder: Path) -> Array:
    sink = folder / f"floor-{subject.handler_name}.csv"
    cpu, start = time.process_time(), time.perf_counter()
    predictions = subject.floor(source, sink)
    subject.floor_s.append(time.perf_counter() - start)
    subject.floor_cpu_s.append(time.process_time() - cpu)
    sink.unlink()
    return predictions


def server_pids(home: Path) -> list[int]:
    """The model servers whose environment names `home` (ours, not other sessions')."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            if b"opensage.serving" not in command or b"opensage.runtime.shim" in command:
                continue
            if str(home).encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ready_at(home: Path, job: str) -> float:
    """When the job's model server logged that it serves (epoch seconds; NaN if it did not).
    The shim starts every line of the log with its epoch milliseconds."""
    for log in (home / "logs" / "transform-jobs" / job).glob("*/output.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "Model loaded; serving" in line:
                return int(line.split(" ", 1)[0]) / 1000
    return float("nan")


def transform_request(subject: Subject, job: str, environment: dict[str, str] | None) -> Any:
    request: dict[str, Any] = {
        "TransformJobName": job,
        "ModelName": subject.model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": PAYLOAD_MB,
        "MaxConcurrentTransforms": CONCURRENCY,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{INPUT_KEY}"}
            },
            "ContentType": CSV,
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": f"s3://{BUCKET}/output/{job}",
            "Accept": subject.accept,
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    if environment:
        request["Environment"] = environment
    return request


def time_ours(
    subject: Subject, clients: Clients, home: Path, job: str, environment: dict[str, str] | None
) -> JobRun:
    request = transform_request(subject, job, environment)
    cpu, polling = time.process_time(), time.thread_time()
    created = time.time()
    start = time.perf_counter()
    clients.sagemaker.create_transform_job(**request)
    served: dict[int, float] = {}  # the model server's processes: front end and workers
    deadline = time.monotonic() + JOB_DEADLINE_SECONDS
    while True:
        desc = clients.sagemaker.describe_transform_job(TransformJobName=job)
        if desc["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        pids = set(served) | set(server_pids(home))
        served.update({pid: max(served.get(pid, 0.0), cpu_seconds(pid)) for pid in pids})
        if time.monotonic() > deadline:
            raise RuntimeError(f"{job} did not finish within {JOB_DEADLINE_SECONDS:.0f} s")
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - start
    runner = time.process_time() - cpu - (time.thread_time() - polling)
    if desc["TransformJobStatus"] != "Completed":
        raise RuntimeError(f"{job} ended {desc['TransformJobStatus']}: {desc.get('FailureReason')}")
    inside = (desc["TransformEndTime"] - desc["TransformStartTime"]).total_seconds()
    ready = ready_at(home, job) - created
    return JobRun(wall, inside, ready, runner, sum(served.values()))


def check_output(
    subject: Subject, clients: Clients, job: str, expected: Array, folder: Path
) -> float:
    """The largest difference to the floor's predictions; raises when the output is wrong."""
    key = f"output/{job}/data.csv.out"
    local = folder / "output.out"
    # One GET: the server ignores Range, so download_file's ranged parts (over 8 MB) would
    # each hold the whole object.
    with local.open("wb") as sink:
        shutil.copyfileobj(clients.s3.get_object(Bucket=BUCKET, Key=key)["Body"], sink, 1 << 20)
    clients.s3.delete_object(Bucket=BUCKET, Key=key)
    got = subject.read_output(local)
    local.unlink()
    if got.shape != expected.shape:
        raise RuntimeError(f"{job}: output has shape {got.shape}, the floor's {expected.shape}")
    diff = float(np.max(np.abs(got - expected))) if len(got) else 0.0
    if diff > TOLERANCE:
        worst = int(np.argmax(np.max(np.abs(got - expected), axis=1)))
        raise RuntimeError(
            f"{job}: output differs from the floor by {diff:g} (row {worst + 1}: "
            f"{got[worst]} vs {expected[worst]})"
        )
    return diff


def one_run(
    subjects: list[Subject], clients: Clients, home: Path, source: Path, folder: Path, run: int
) -> None:
    for subject in subjects:
        expected = time_floor(subject, source, folder)
        for runs, environment, suffix in ((subject.ours, None, ""),
                                          (subject.one_worker, ONE_WORKER, "-w1")):  # fmt: skip
            job = f"bench-{subject.handler_name.replace('_', '-')}-{run}{suffix}"
            runs.append(time_ours(subject, clients, home, job, environment))
            diff = check_output(subject, clients, job, expected, folder)
            subject.max_diff = max(subject.max_diff, diff)
        print(
            f"run {run + 1} {subject.name}: floor {subject.floor_s[-1]:.2f} s, ours "
            f"{subject.ours[-1]}, 1 worker {subject.one_worker[-1].wall:.2f} s",
            flush=True,
        )


# where the time goes ------------------------------------------------------------------------


def wall_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of `fn`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_time(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Median CPU seconds of `fn` on this thread: steadier than wall time on a shared machine,
    and the same thing for single-threaded work (the model server predicts with nthread=1)."""
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def split_file(source: Path) -> tuple[float, MiniBatch]:
    """Seconds to cut the whole file into requests (as the runner does), and the first one."""
    start = time.perf_counter()
    first: MiniBatch | None = None
    with source.open("rb") as stream:
        for batch in object_batches(stream, "Line", "MultiRecord", PAYLOAD_MB << 20):
            first = first or batch
    assert first is not None
    return time.perf_counter() - start, first


def handler_steps(subject: Subject, body: bytes) -> dict[str, float]:
    """The model server's work on one request, in this process, step by step (CPU seconds),
    and a candidate parser, `pandas.read_csv`, on the same body."""
    steps = {"pandas": cpu_time(lambda: pd.read_csv(io.BytesIO(body), header=None).to_numpy())}
    if subject.handler_name == "xgboost":
        # The handler's own steps (private methods), so nothing is re-implemented here.
        xgb_handler = xgboost_serve.load(subject.model_dir, {})
        features = xgb_handler._parse(body, CSV)
        predictions = xgb_handler._predict(features)
        steps["parse"] = cpu_time(lambda: xgb_handler._parse(body, CSV))
        steps["predict"] = cpu_time(lambda: xgb_handler._predict(features))
        steps["encode"] = cpu_time(lambda: xgb_handler._encode(predictions, CSV))
        steps["invoke"] = cpu_time(lambda: xgb_handler.invoke(body, CSV, CSV, None))
        return steps
    ll_handler = linear_serve.load(subject.model_dir, {})
    media = canonical(parse_media_type(CSV))
    assert media is not None
    matrix = parse_features(body, media)
    rows = ll_handler.predict(matrix, {})
    steps["parse"] = cpu_time(lambda: parse_features(body, media))
    steps["predict"] = cpu_time(lambda: ll_handler.predict(matrix, {}))
    steps["encode"] = cpu_time(lambda: encode(rows, JSONLINES))
    steps["invoke"] = cpu_time(lambda: ll_handler.invoke(body, CSV, JSONLINES, None))
    return steps


@contextmanager
def model_server(subject: Subject, folder: Path) -> Iterator[tuple[str, float]]:
    """A model server for the subject's model on a Unix socket, started here as the runner
    starts one (without the shim); its socket and the seconds from spawn to /ping answering."""
    base = folder / f"ml-{subject.handler_name}"
    (base / "model").mkdir(parents=True)
    for item in subject.model_dir.iterdir():
        (base / "model" / item.name).symlink_to(item)
    sock = str(base / "serving.sock")
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "OPENSAGE_SERVING_HANDLER": subject.handler_name,
        "OPENSAGE_SERVING_SOCKET": sock,
        "SAGEMAKER_BATCH": "true",
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "opensage.serving", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not ping(sock, 1.0):
            if proc.poll() is not None:
                raise RuntimeError(f"the {subject.handler_name} model server exited at start-up")
            time.sleep(0.01)
        yield sock, time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def round_trips(subject: Subject, folder: Path, batch: MiniBatch) -> dict[str, float]:
    """Wall seconds of POST /invocations through the runner's own client, and of the model
    server's start-up."""
    request = {
        "TransformInput": {"ContentType": CSV},
        "TransformOutput": {"Accept": subject.accept},
    }
    # A content type no handler takes: answered 415 before any parsing, so the round trip is
    # the transport of the 6 MB body alone.
    refused = {**request, "TransformInput": {"ContentType": "application/x-bench"}}
    one_row = batch.body[: batch.body.index(b"\n") + 1]
    small = MiniBatch(0, 0, 1, 0, one_row, [])
    with model_server(subject, folder) as (sock, startup):
        never = threading.Event()
        client = InvocationClient([sock], request, never)
        transport = InvocationClient([sock], refused, never)
        try:
            for _ in range(20):  # warm-up: connections, first predictions
                client.invoke(one_row, small)
            figures = {
                "startup": startup,
                "trivial": wall_time(lambda: client.invoke(one_row, small), 200),
                "transport": wall_time(lambda: refuse(transport, batch), 5),
                "full": wall_time(lambda: client.invoke(batch.body, batch), 5),
            }
        finally:
            client.close()
            transport.close()
    return figures


def refuse(client: InvocationClient, batch: MiniBatch) -> None:
    try:
        client.invoke(batch.body, batch)
    except ObjectFailure as exc:
        if "415" not in str(exc):
            raise
    else:
        raise RuntimeError("the model server took a content type it should refuse")


def where_time_goes(subject: Subject, source: Path, folder: Path, rows: int) -> None:
    """Fill `subject.facts`: each step's seconds for the whole file, from one request's."""
    # This process holds far more objects than a model server; frozen, the collector's full
    # passes (the CSV parsers allocate millions of objects) skip them.
    gc.collect()
    gc.freeze()
    split_s, first = split_file(source)
    steps = handler_steps(subject, first.body)
    trips = round_trips(subject, folder, first)
    scale = rows / first.count
    subject.facts = {
        "batch_rows": first.count,
        "split": split_s,
        **{name: seconds * scale for name, seconds in steps.items()},
        **{name: trips[name] * scale for name in ("transport", "full")},
        "startup": trips["startup"],
        "trivial_ms": trips["trivial"] * 1e3,
        "ready": med([run.ready for run in subject.ours]),
    }


# report -------------------------------------------------------------------------------------


def table(subjects: list[Subject], rows: int) -> str:
    lines = [
        "| model | floor s | floor rows/s | ours s | ours rows/s | ours/floor | start->end s "
        "| create->ready s | floor CPU s | runner CPU s | model server CPU s | 1 worker s "
        "| 1 worker/floor | max diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in subjects:
        floor, ours = med(s.floor_s), med([run.wall for run in s.ours])
        figures = (
            f"{floor:.2f}",
            f"{rows / floor:,.0f}",
            f"{ours:.2f}",
            f"{rows / ours:,.0f}",
            f"{s.ratio(s.ours):.0%}",
            f"{med([run.inside for run in s.ours]):.2f}",
            f"{med([run.ready for run in s.ours]):.2f}",
            f"{med(s.floor_cpu_s):.1f}",
            f"{med([run.runner_cpu for run in s.ours]):.1f}",
            f"{med([run.server_cpu for run in s.ours]):.1f}",
            f"{med([run.wall for run in s.one_worker]):.2f}",
            f"{s.ratio(s.one_worker):.0%}",
            f"{s.max_diff:.1e}",
        )
        lines.append(f"| {s.name} | {' | '.join(figures)} |")
    return "\n".join(lines)


BREAKDOWN = (
    ("split", "runner: split the file into 6 MB requests (`object_batches`), wall"),
    ("parse", "model server: parse the CSV request, CPU"),
    ("predict", "model server: predict, CPU"),
    ("encode", "model server: encode the answer, CPU"),
    ("invoke", "model server: the handler's whole `invoke`, CPU"),
    ("pandas", "candidate parse: `pandas.read_csv` on the same request, CPU"),
    ("transport", "HTTP: POST of the 6 MB request, refused at once (415), wall"),
    ("full", "POST /invocations, one request at a time, wall"),
    ("startup", "model server start-up: spawn -> /ping answers, wall"),
    ("ready", "in the job: CreateTransformJob -> model server ready, wall"),
    ("trivial_ms", "a one-row request's round trip, milliseconds"),
)
_PER_ROW = ("split", "parse", "predict", "encode", "invoke", "pandas", "transport", "full")


def breakdown_table(subjects: list[Subject], rows: int) -> str:
    lines = [
        f"| step (whole file, {rows:,} rows) | "
        + " | ".join(f"{s.name} s | rows/s" for s in subjects)
        + " |",
        "|---|" + "---:|---:|" * len(subjects),
    ]
    for key, label in BREAKDOWN:
        cells = []
        for s in subjects:
            value = s.facts[key]
            cells += [f"{value:.2f}", f"{rows / value:,.0f}" if key in _PER_ROW else ""]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


def verdict(subjects: list[Subject]) -> list[str]:
    lines = []
    for s in subjects:
        ratio = s.ratio(s.ours)
        floor_cpu = med(s.floor_cpu_s)
        ours_cpu = med([run.runner_cpu + run.server_cpu for run in s.ours])
        lines.append(
            f"- {s.name}: ours at {ratio:.0%} of the floor's rows/s, target >= {TARGET:.0%}: "
            f"{'met' if ratio >= TARGET else 'NOT met'} (one model-server worker process: "
            f"{s.ratio(s.one_worker):.0%}). In CPU time, steadier on the shared machine: the "
            f"floor {floor_cpu:.1f} s, ours {ours_cpu:.1f} s ({floor_cpu / ours_cpu:.0%}). "
            f"Every output equal to the floor's (max diff {s.max_diff:.1e})."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as tmp:
        folder = Path(tmp)
        home = folder / "home"
        settings = Settings(home=home, port=free_port(), runtime="process",
                            poll_interval_seconds=0.05)  # fmt: skip
        start = time.perf_counter()
        x, y, source = data(args.rows, folder)
        setup = {"data_s": time.perf_counter() - start, "csv_mb": source.stat().st_size / 1e6}
        with running(settings) as server:
            clients = make_clients(server.endpoint_url)
            clients.s3.create_bucket(Bucket=BUCKET)
            start = time.perf_counter()
            with source.open("rb") as body:  # one PUT: the server has no multipart upload
                clients.s3.put_object(Bucket=BUCKET, Key=INPUT_KEY, Body=body)
            setup["upload_s"] = time.perf_counter() - start
            xgb_name, xgb_dir = xgboost_model(clients, x, y, folder)
            ll_name, ll_dir, setup["training_s"] = linear_model(clients, x, y, folder)
            del x, y
            subjects = [
                Subject("XGBoost", xgb_name, xgb_dir, "xgboost", CSV, xgboost_floor(xgb_dir),
                        read_csv_output),
                Subject("Linear Learner", ll_name, ll_dir, "linear_learner", JSONLINES,
                        linear_floor(ll_dir), read_jsonlines_output),
            ]  # fmt: skip
            for run in range(args.runs):
                one_run(subjects, clients, home, source, folder, run)
        for subject in subjects:
            where_time_goes(subject, source, folder, args.rows)
    setup["total_s"] = time.perf_counter() - began
    text = table(subjects, args.rows)
    details = breakdown_table(subjects, args.rows)
    lines = verdict(subjects)
    print(text, details, "\n".join(lines), limits(subjects), sep="\n\n")
    print(f"setup: {setup}")
    if args.write:
        write_results(text, details, lines, subjects, setup, args)


def write_results(
    text: str,
    details: str,
    lines: list[str],
    subjects: list[Subject],
    setup: dict[str, float],
    args: argparse.Namespace,
) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    flags = f"--runs {args.runs} --rows {args.rows}"
    batch_rows = subjects[0].facts["batch_rows"]
    section = f"""{TITLE}

```
cd /work/main && .venv/bin/python benchmarks/bench_transform.py {flags} --write
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  numpy {np.__version__}, pandas {pd.__version__}, xgboost {xgb.__version__}
- Load average at the end of the run: {load} (1/5/15 min); the machine is shared with other
  sessions, so the figures are medians of {args.runs} runs and swing between runs.
- Data: `make_classification`, 50 features, {args.rows:,} rows to transform as features-only
  CSV (`%.6g`, {setup["csv_mb"]:.0f} MB; generated in {setup["data_s"]:.0f} s, uploaded in
  {setup["upload_s"]:.1f} s, neither timed below), {TRAIN_ROWS:,} other rows to train on.
  XGBoost: binary:logistic, {ROUNDS} rounds, depth {DEPTH}, trained in this process. Linear
  Learner: a binary_classifier training job on the server ({setup["training_s"]:.0f} s).
  Whole run: {setup["total_s"] / 60:.1f} min.
- Floor: one plain script in this process: `pandas.read_csv(header=None)`, predict in-process
  (XGBoost `Booster.predict(DMatrix)` with xgboost's default threads; Linear Learner
  `LinearModel.load` + `predict` on float32 features), predictions written with `to_csv`.
- Ours: CreateTransformJob -> Completed (DescribeTransformJob polled every {POLL_SECONDS} s):
  text/csv, SplitType Line, MultiRecord, MaxPayloadInMB {PAYLOAD_MB}, MaxConcurrentTransforms
  {CONCURRENCY}, AssembleWith Line, 1 instance, "process" runtime. Accept text/csv for XGBoost,
  application/jsonlines for Linear Learner (it offers no CSV answer). start->end:
  TransformStartTime -> TransformEndTime; create->ready: until the model server logs that it
  serves. runner CPU: this process (API server and the job's threads) during the job; model
  server CPU: its processes (front end and workers), from /proc. "1 worker" adds
  `Environment={{"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}}` (a diagnostic: one process where
  MaxConcurrentTransforms 2 otherwise gives two worker processes). Every job's output
  is checked: one line per input row, equal to the floor's predictions within {TOLERANCE:g}.

{text}

{chr(10).join(lines)}

Where the time goes, once per model after the timed runs: the first 6 MB request
({batch_rows:,.0f} rows) measured alone, its figure scaled to the whole file; model-server
steps run in this process (CPU time of the thread), round trips go to a model server started
here, through the runner's own `InvocationClient`. The in-process figures are a lower bound:
the model server's own CPU (first table) also holds its start-up and its HTTP side, and its
handler ran somewhat slower than here.

{details}

{limits(subjects)}
"""
    replace_section(TITLE, reflow(section))


def reflow(markdown: str) -> str:
    """Paragraphs and list items re-wrapped to the line length (their figures vary in
    length); headings, tables and code blocks as they are."""
    blocks = []
    for block in markdown.split("\n\n"):
        if block.startswith(("|", "```", "#")):
            blocks.append(block)
        else:
            items = re.split(r"\n(?=- )", block)  # a list's items, or one paragraph
            blocks.append("\n".join(wrap(item) for item in items))
    return "\n\n".join(blocks)


def wrap(item: str) -> str:
    indent = "  " if item.startswith("- ") else ""
    return textwrap.fill(" ".join(item.split()), WIDTH, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)  # fmt: skip


def limits(subjects: list[Subject]) -> str:
    """The "what limits it" paragraph, with this run's figures."""
    xs, ls = subjects
    xg, ll = xs.facts, ls.facts

    def busy(s: Subject) -> str:
        cpu = med([run.server_cpu for run in s.ours])
        wall = med([run.wall for run in s.ours])
        return f"{cpu:.1f} s of CPU in {wall:.1f} s"

    def cpu(s: Subject) -> float:
        return med([run.runner_cpu + run.server_cpu for run in s.ours])

    return f"""What limits it: CPU time, on two cores shared with other sessions. Ours used
{cpu(xs):.1f} s (XGBoost) and {cpu(ls):.1f} s (Linear Learner) of CPU per job against the
floor's {med(xs.floor_cpu_s):.1f} s and {med(ls.floor_cpu_s):.1f} s. The model server (its
front end and two worker processes: MaxConcurrentTransforms 2 asks for one per request in
flight) used {busy(xs)} (XGBoost) and {busy(ls)} (Linear Learner); the runner (this process:
splitting, HTTP, writing the output) about {med([run.runner_cpu for run in xs.ours]):.1f} s.
For the whole file the handler costs {xg["invoke"]:.1f} s of CPU (XGBoost: parse
{xg["parse"]:.1f} s with pandas' reader, as the floor's `read_csv` ({xg["pandas"]:.1f} s on the
same bytes), predict {xg["predict"]:.1f} s on one thread, encode {xg["encode"]:.1f} s) and
{ll["invoke"]:.1f} s (Linear Learner: parse {ll["parse"]:.1f} s, predict {ll["predict"]:.1f} s,
JSON Lines from whole columns {ll["encode"]:.1f} s): about the floor's own work, but two requests
run side by side in two processes; one process taking both (the "1 worker" column) gets
{xs.ratio(xs.one_worker):.0%} and {ls.ratio(ls.one_worker):.0%} of the floor, because the parse
and the encoding hold the GIL. What the floor does not pay: each job starts its model server
({xg["ready"]:.1f} s from CreateTransformJob until the XGBoost workers serve, {ll["ready"]:.1f} s
for Linear Learner), the runner splits the file ({xg["split"]:.1f} s) and sends every request
({xg["transport"]:.1f} s), and Linear Learner's JSON Lines answer is longer than the floor's CSV.
What would close more of the gap: keeping a model's workers warm between jobs, and xgboost reading
the CSV into a DMatrix itself (multi-threaded, without the GIL)."""


if __name__ == "__main__":
    main()
