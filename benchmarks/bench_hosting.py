"""Hosting benchmark: InvokeEndpoint throughput and latency, opensage vs FastAPI and mlflow.

Run from the repository root:

    .venv/bin/python benchmarks/bench_hosting.py [--repeats N] [--duration S] [--quick]

One small model, an XGBoost booster (binary:logistic, 20 rounds on 2,000 x 50 generated rows,
trained here), is served three ways at once, and the same load hits each in turn:

- fastapi: `benchmarks/anchors/fastapi_app.py`, one uvicorn process, the least a Python model
  server does (numpy parses the CSV row, `Booster.inplace_predict`, the score back as text/csv);
- mlflow: `mlflow models serve --env-manager local` of the same booster, saved with
  `mlflow.xgboost.save_model`;
- opensage: the real server (a thread of this process, fresh temporary home), the model uploaded
  as `model.tar.gz` through its S3 API and deployed with CreateModel, CreateEndpointConfig and
  CreateEndpoint through boto3; requests go to `POST /endpoints/{name}/invocations`;
- opensage-model (diagnostic): the same request straight to the endpoint's model server on its
  Unix socket, skipping the front end, to split opensage's cost between its two hops.

Both anchors run from their own venv (`benchmarks/.venv-anchors`, pins in
`benchmarks/anchors/requirements.txt`): mlflow's pins would clash with the project's. The venv is
created when missing; when pip cannot build it the anchors are skipped and the report says so.

The load comes from a separate process (this file with `--loadgen`), the same for every target: a
small asyncio HTTP/1.1 client, one keep-alive connection per concurrent worker, each writing a
prebuilt request and reading the response by Content-Length (or chunked). Being a process of its
own matters: the opensage server runs on a thread of this process, and a client sharing its GIL
would slow it down. Every response is checked: status 200 and a body that parses to the score the
booster gives this row; anything else counts as an error. Each (target, concurrency) point warms
up, then measures for a fixed time; points are interleaved across targets and repeated, and the
report gives medians. The CPU the server's processes use per request is read from /proc around
each point: on a noisy 2-core machine it is steadier than wall-clock figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import xgboost as xgb
from botocore.exceptions import ClientError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opensage.app import free_port, running
from opensage.settings import Settings

BENCH_DIR = Path(__file__).resolve().parent
ANCHORS_DIR = BENCH_DIR / "anchors"
ANCHOR_VENV = BENCH_DIR / ".venv-anchors"
REQUIREMENTS = ANCHORS_DIR / "requirements.txt"
# Written into the venv after a successful install: a changed requirements.txt rebuilds it.
REQUIREMENTS_STAMP = ".requirements.sha256"
RESULTS = BENCH_DIR / "RESULTS.md"
SECTION_TITLE = "## Hosting: InvokeEndpoint throughput and latency"

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/x"
BUCKET = "bench"
MODEL_NAME = "bench-xgb"
ENDPOINT_NAME = "bench-xgb"
IN_SERVICE_DEADLINE_SECONDS = 120.0
SERVER_START_DEADLINE_SECONDS = 90.0

FEATURES = 50
ROWS = 2_000
ROUNDS = 20
SEED = 11
CONCURRENCY = (1, 8, 64)
# Absolute tolerance on the returned score: the anchors print 9 significant digits of a float32.
SCORE_TOLERANCE = 1e-6

# The targets for opensage against the FastAPI anchor.
TARGET_RPS_RATIO = 0.80  # opensage rps >= 80% of FastAPI's at concurrency 8
TARGET_RPS_CONCURRENCY = 8
TARGET_P50_OVERHEAD_MS = 0.5  # opensage p50 - FastAPI p50 < 0.5 ms at concurrency 1
TARGET_P50_CONCURRENCY = 1

FASTAPI = "fastapi"
MLFLOW = "mlflow"
OPENSAGE = "opensage"
# Diagnostic: opensage's model server on its Unix socket, without the front end. The difference
# to `opensage` is the front end's hop; the difference to `fastapi` is the model server's stack.
OPENSAGE_MODEL = "opensage-model"
ALL_TARGETS = (FASTAPI, MLFLOW, OPENSAGE, OPENSAGE_MODEL)
CHECK_CSV = "csv"
CHECK_MLFLOW = "mlflow-json"


# the load generator (runs in its own process) ----------------------------------------------


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client understands."""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One response: status, body, and whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    length = -1
    chunked = False
    close = parts[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    if chunked:
        return status, await read_chunked(reader), close
    if length >= 0:
        return status, await reader.readexactly(length), close
    return status, await reader.read(), True  # no length: the body ends with the connection


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")


def score_checker(kind: str, expected: float) -> Callable[[bytes], bool]:
    """Whether a 200 response's body is the one score this row has, in the target's format."""

    def close_enough(value: Any) -> bool:
        return abs(float(value) - expected) <= SCORE_TOLERANCE

    def check_csv(body: bytes) -> bool:
        fields = [f for f in body.replace(b"\n", b",").split(b",") if f.strip()]
        return len(fields) == 1 and close_enough(fields[0])

    def check_mlflow(body: bytes) -> bool:
        predictions = json.loads(body)["predictions"]
        return len(predictions) == 1 and close_enough(predictions[0])

    return {CHECK_CSV: check_csv, CHECK_MLFLOW: check_mlflow}[kind]


@dataclass
class PointTally:
    """What the workers of one point share (one event loop: no locks needed)."""

    latencies_ns: list[int] = field(default_factory=list)
    completed: int = 0  # every response read, warm-up included
    errors: int = 0  # in the whole point, warm-up included
    error_samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(what[:200])


Address = str | tuple[str, int]  # a Unix socket's path, or (host, port)


async def connect(address: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if isinstance(address, str):
        return await asyncio.open_unix_connection(address)
    return await asyncio.open_connection(*address)


async def worker(
    address: Address,
    request: bytes,
    check: Callable[[bytes], bool],
    measure_from: int,
    stop_at: int,
    tally: PointTally,
) -> None:
    """Send the request back to back on one connection until `stop_at` (perf_counter_ns)."""
    clock = time.perf_counter_ns
    reader, writer = await connect(address)
    try:
        while (start := clock()) < stop_at:
            try:
                writer.write(request)
                status, body, close = await read_response(reader)
            except (OSError, EOFError, asyncio.IncompleteReadError, ProtocolError) as exc:
                tally.error(f"{type(exc).__name__}: {exc}")
                writer.close()
                await asyncio.sleep(0.01)  # a dead server must not turn this into a busy loop
                reader, writer = await connect(address)
                continue
            end = clock()
            tally.completed += 1
            try:
                ok = status == 200 and check(body)
            except (ValueError, KeyError, TypeError, IndexError):
                ok = False
            if not ok:
                tally.error(f"HTTP {status}: {body[:150]!r}")
            elif start >= measure_from and end <= stop_at:
                tally.latencies_ns.append(end - start)
            if close:
                writer.close()
                reader, writer = await connect(address)
    finally:
        writer.close()


def percentile(sorted_values: list[int], percent: int) -> float:
    """Nearest rank: the smallest value with at least `percent`% of them at or below it."""
    if not sorted_values:
        return float("nan")
    rank = max(1, (percent * len(sorted_values) + 99) // 100)
    return float(sorted_values[rank - 1])


async def run_point(spec: dict[str, Any]) -> dict[str, Any]:
    """One (target, concurrency) point: connect, warm up, measure for spec['duration_s']."""
    request = spec["request"].encode("latin-1")
    check = score_checker(spec["check"], spec["expected"])
    tally = PointTally()
    cpu0 = time.process_time()
    now = time.perf_counter_ns()
    measure_from = now + int(spec["warmup_s"] * 1e9)
    stop_at = measure_from + int(spec["duration_s"] * 1e9)
    address = spec["address"] if isinstance(spec["address"], str) else tuple(spec["address"])
    workers = [
        worker(address, request, check, measure_from, stop_at, tally)
        for _ in range(spec["concurrency"])
    ]
    outcomes = await asyncio.gather(*workers, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            tally.error(f"worker died: {type(outcome).__name__}: {outcome}")
    wall = (time.perf_counter_ns() - now) / 1e9
    latencies = sorted(tally.latencies_ns)
    return {
        "rps": len(latencies) / spec["duration_s"],
        "measured": len(latencies),
        "p50_ms": percentile(latencies, 50) / 1e6,
        "p99_ms": percentile(latencies, 99) / 1e6,
        "completed": tally.completed,
        "errors": tally.errors,
        "error_samples": tally.error_samples,
        "loadgen_cpu_s": time.process_time() - cpu0,
        "wall_s": wall,
    }


def loadgen_main() -> int:
    """Serve points read as JSON lines on stdin, one JSON line of results each on stdout."""
    for line in sys.stdin:
        spec = json.loads(line)
        gc.collect()
        gc.disable()  # no collector pauses inside the measured window
        try:
            result = asyncio.run(run_point(spec))
        finally:
            gc.enable()
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


# processes -----------------------------------------------------------------------------------


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL whatever is left of it."""
    pgid = proc.pid  # started with start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # children (mlflow's uvicorn) may outlive the leader
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


@contextlib.contextmanager
def process_group(
    argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server in a process group of its own, ended with all its children however we leave."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_group(proc)


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + SERVER_START_DEADLINE_SECONDS
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail(log)}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {SERVER_START_DEADLINE_SECONDS:.0f} s")
        time.sleep(0.1)


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(roots: set[int], exclude: set[int], front: int | None) -> tuple[float, float]:
    """User + system CPU of the processes under `roots`, and of the `front` process alone.

    From /proc. Processes under `exclude` are left out with their children: the load generator
    is a child of this process, whose server thread is opensage's front end.
    """
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()  # after "pid (comm) "
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    total = 0
    for pid, spent in ticks.items():
        node = pid
        while node not in roots and node not in exclude and node in parents and node > 1:
            node = parents[node]
        if node in roots and node not in exclude:
            total += spent
    own = ticks.get(front, 0) if front is not None else 0
    return total / clock_ticks(), own / clock_ticks()


class LoadGen:
    """The load generator's process: this file with --loadgen, spoken to in JSON lines."""

    def __init__(self, log: Path) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--loadgen"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(spec) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator died ({self.proc.poll()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        stop_group(self.proc, grace=5.0)
        self._log.close()


# the model and the requests ------------------------------------------------------------------


@dataclass
class Model:
    path: Path  # the booster as `xgboost-model` (UBJSON, as opensage's training writes it)
    row: list[str]  # one row of features, as the CSV text every request carries
    expected: float  # the score the booster gives that row
    floor_ms: float  # parse + predict of that row in this process: the work no server avoids


def predict_floor_ms(booster: xgb.Booster, body: bytes) -> float:
    """What the FastAPI anchor's handler does, without any HTTP: the median of 5 x 500 calls."""
    batches = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(500):
            row = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2, dtype=np.float32)
            booster.inplace_predict(row)
        batches.append((time.perf_counter_ns() - t0) / 500 / 1e6)
    return statistics.median(batches)


def train_model(work: Path) -> Model:
    """Train the benchmark's booster on generated data; one thread, as every target predicts."""
    rng = np.random.default_rng(SEED)
    features = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    weights = rng.normal(size=FEATURES)
    labels = (features @ weights + rng.normal(scale=2.0, size=ROWS) > 0).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=ROUNDS)
    path = work / "xgboost-model"
    path.write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    row = [f"{value:.7g}" for value in features[0]]
    parsed = np.array([[float(value) for value in row]], dtype=np.float32)
    expected = float(booster.inplace_predict(parsed)[0])
    return Model(path, row, expected, predict_floor_ms(booster, ",".join(row).encode()))


def http_request(host: str, path: str, content_type: str, body: bytes) -> str:
    """The full HTTP/1.1 request, built once; latin-1 carries the bytes through JSON intact."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Accept: {'text/csv' if content_type == 'text/csv' else 'application/json'}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return (head.encode("ascii") + body).decode("latin-1")


def csv_body(model: Model) -> bytes:
    return ",".join(model.row).encode()


def mlflow_bodies(model: Model) -> dict[str, tuple[str, bytes]]:
    """The one-row formats mlflow's scoring server accepts for a model without a signature."""
    header = ",".join(f"f{i}" for i in range(FEATURES))
    numbers = [float(value) for value in model.row]
    columns = [f"f{i}" for i in range(FEATURES)]
    split = {"dataframe_split": {"columns": columns, "data": [numbers]}}
    return {
        "CSV, a header line `f0,...,f49` then the row (text/csv)": (
            "text/csv",
            f"{header}\n{','.join(model.row)}\n".encode(),
        ),
        '`{"dataframe_split": {"columns": [f0..f49], "data": [[row]]}}` (application/json)': (
            "application/json",
            json.dumps(split, separators=(",", ":")).encode(),
        ),
        '`{"inputs": [[row]]}` (application/json)': (
            "application/json",
            json.dumps({"inputs": [numbers]}, separators=(",", ":")).encode(),
        ),
    }


@dataclass
class Target:
    name: str
    address: Address
    request: str
    check: str
    server_pids: set[int]  # the processes that serve, with their children
    request_format: str


# the anchors' venv ---------------------------------------------------------------------------


def venv_bin(name: str) -> Path:
    return ANCHOR_VENV / "bin" / name


def ensure_anchor_venv(console: Console) -> tuple[str | None, float | None]:
    """Create or refresh the anchors' venv.

    Returns why the anchors must be skipped (None when the venv is ready) and how long creating
    it took (None when it was already there).
    """
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = ANCHOR_VENV / REQUIREMENTS_STAMP
    if stamp.exists() and stamp.read_text().strip() == wanted and venv_bin("mlflow").exists():
        return None, None
    console.print(f"creating the anchors' venv {ANCHOR_VENV} from {REQUIREMENTS.name} ...")
    t0 = time.perf_counter()
    log = ANCHOR_VENV / "install.log"  # inside the venv: nothing else to keep out of git
    try:
        if ANCHOR_VENV.exists():
            shutil.rmtree(ANCHOR_VENV)
        ANCHOR_VENV.mkdir(parents=True)
        with log.open("wb") as out:
            # The base interpreter, not ours: a venv made from inside a venv still points there.
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(ANCHOR_VENV)], check=True, stdout=out)
            subprocess.run(
                [str(venv_bin("python")), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    except (OSError, subprocess.CalledProcessError) as exc:
        # No stamp is written, so this half-built venv is never used: the next run rebuilds it.
        why = f"pip could not build the anchors' venv ({exc}); see {log}:\n{tail(log)}"
        return why, None
    stamp.write_text(wanted + "\n")
    seconds = time.perf_counter() - t0
    console.print(f"anchors' venv ready in {seconds:.0f} s (log: {log})")
    return None, seconds


def anchor_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{ANCHOR_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    # mlflow would otherwise try to send usage data: this machine reaches no such host.
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    env.update(extra)
    return env


# starting the three servers ------------------------------------------------------------------


def start_fastapi(stack: contextlib.ExitStack, work: Path, model: Model) -> Target:
    port = free_port()
    log = work / "fastapi.log"
    argv = [
        str(venv_bin("uvicorn")),
        "fastapi_app:app",
        "--app-dir",
        str(ANCHORS_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = stack.enter_context(
        process_group(argv, log, env=anchor_env(ANCHOR_MODEL=str(model.path)), cwd=work)
    )
    wait_http_ok(f"http://127.0.0.1:{port}/ping", proc, log, "the FastAPI anchor")
    request = http_request(f"127.0.0.1:{port}", "/invocations", "text/csv", csv_body(model))
    fmt = "text/csv, the row alone (50 numbers, no header); answer text/csv; nthread=1"
    return Target(FASTAPI, ("127.0.0.1", port), request, CHECK_CSV, {proc.pid}, fmt)


def start_mlflow(
    stack: contextlib.ExitStack,
    work: Path,
    model: Model,
    loadgen: LoadGen,
    console: Console,
    default_threads: bool,
) -> Target:
    """`mlflow models serve`, and the cheapest one-row request format it accepts.

    mlflow loads the booster with xgboost's default thread count; unless `default_threads`,
    OMP_NUM_THREADS=1 makes it predict on one thread like the other two targets, so that the
    comparison is about the serving stacks rather than OpenMP's idle threads spinning.
    """
    saved = work / "mlflow-model"
    log = work / "mlflow.log"
    save = [str(venv_bin("python")), str(ANCHORS_DIR / "save_mlflow_model.py")]
    with log.open("ab") as out:
        subprocess.run(
            [*save, str(model.path), str(saved)],
            check=True,
            env=anchor_env(),
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    port = free_port()
    argv = [str(venv_bin("mlflow")), "models", "serve", "-m", str(saved)]
    argv += ["-h", "127.0.0.1", "-p", str(port), "--env-manager", "local", "-w", "1"]
    env = anchor_env() if default_threads else anchor_env(OMP_NUM_THREADS="1")
    proc = stack.enter_context(process_group(argv, log, env=env, cwd=work))
    wait_http_ok(f"http://127.0.0.1:{port}/ping", proc, log, "mlflow models serve")
    # Pick the cheapest format mlflow accepts for one row, by a short probe at concurrency 1.
    probes: dict[str, float] = {}
    best: tuple[float, str, str] | None = None
    for label, (content_type, body) in mlflow_bodies(model).items():
        request = http_request(f"127.0.0.1:{port}", "/invocations", content_type, body)
        result = loadgen.run(
            point_spec(("127.0.0.1", port), request, CHECK_MLFLOW, model, 1, 0.3, 1.0)
        )
        if result["errors"] or not result["measured"]:
            console.print(
                f"  mlflow refused {escape(label)}: {escape(str(result['error_samples'][:1]))}"
            )
            continue
        probes[label] = result["p50_ms"]
        if best is None or result["p50_ms"] < best[0]:
            best = (result["p50_ms"], label, request)
    if best is None:
        raise RuntimeError("mlflow accepted none of the request formats tried")
    tried = ", ".join(f"{label} {p50:.2f} ms" for label, p50 in probes.items())
    threads = "xgboost's default threads" if default_threads else "OMP_NUM_THREADS=1"
    fmt = (
        f'{best[1]}; answer application/json `{{"predictions": [score]}}`; {threads} '
        f"(probe at c=1, p50: {tried})"
    )
    return Target(MLFLOW, ("127.0.0.1", port), best[2], CHECK_MLFLOW, {proc.pid}, fmt)


class HostingUnavailableError(RuntimeError):
    """opensage does not serve endpoints (yet), or the endpoint did not come up."""


def model_archive(model: Model) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(model.path, arcname="xgboost-model")
    return buffer.getvalue()


def boto_client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def start_opensage(stack: contextlib.ExitStack, work: Path, model: Model) -> list[Target]:
    """The real server with one endpoint InService; also its model server's socket, when found."""
    server = stack.enter_context(running(Settings(home=work / "home", port=free_port())))
    s3 = boto_client("s3", server.endpoint_url)
    sagemaker = boto_client("sagemaker", server.endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=model_archive(model))
    try:
        sagemaker.create_model(
            ModelName=MODEL_NAME,
            PrimaryContainer={
                "Image": XGBOOST_IMAGE,
                "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz",
            },
            ExecutionRoleArn=ROLE,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "UnsupportedOperation":
            raise HostingUnavailableError(f"opensage does not host models yet: {exc}") from exc
        raise
    stack.callback(suppress_client_error, sagemaker.delete_model, ModelName=MODEL_NAME)
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": MODEL_NAME,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    sagemaker.create_endpoint_config(EndpointConfigName=MODEL_NAME, ProductionVariants=[variant])
    stack.callback(
        suppress_client_error, sagemaker.delete_endpoint_config, EndpointConfigName=MODEL_NAME
    )
    t0 = time.perf_counter()
    sagemaker.create_endpoint(EndpointName=ENDPOINT_NAME, EndpointConfigName=MODEL_NAME)
    stack.callback(wait_endpoint_deleted, sagemaker)
    while True:
        status = sagemaker.describe_endpoint(EndpointName=ENDPOINT_NAME)
        if status["EndpointStatus"] == "InService":
            break
        if status["EndpointStatus"] == "Failed":
            raise HostingUnavailableError(f"endpoint Failed: {status.get('FailureReason')}")
        if time.perf_counter() - t0 > IN_SERVICE_DEADLINE_SECONDS:
            raise HostingUnavailableError(
                f"endpoint still {status['EndpointStatus']} after "
                f"{IN_SERVICE_DEADLINE_SECONDS:.0f} s"
            )
        time.sleep(0.1)
    ready = time.perf_counter() - t0
    host, port = server.settings.host, server.settings.port
    path = f"/endpoints/{ENDPOINT_NAME}/invocations"
    request = http_request(f"{host}:{port}", path, "text/csv", csv_body(model))
    fmt = (
        f"POST {path}, text/csv, the row alone (no header), Accept: text/csv, unsigned; "
        f"CreateEndpoint -> InService took {ready:.1f} s"
    )
    # The model server is started through a shim that detaches itself (init is its parent), so
    # its processes are found from the pid files the shims leave in their run directories.
    shims = {int(pid.read_text()) for pid in (work / "home").rglob("shim.pid")}
    targets = [Target(OPENSAGE, (host, port), request, CHECK_CSV, {os.getpid(), *shims}, fmt)]
    sockets = sorted((work / "home").rglob("serving.sock"))
    if len(sockets) == 1:  # one instance, one container: the socket the front end talks to
        direct = http_request("model", "/invocations", "text/csv", csv_body(model))
        fmt = (
            f"diagnostic, the same request straight to the model server's socket {sockets[0].name}"
        )
        targets.append(Target(OPENSAGE_MODEL, str(sockets[0]), direct, CHECK_CSV, shims, fmt))
    return targets


def suppress_client_error(call: Callable[..., Any], **kwargs: Any) -> None:
    with contextlib.suppress(ClientError):
        call(**kwargs)


def wait_endpoint_deleted(sagemaker: Any) -> None:
    """Delete the endpoint and give its model server a moment to go before the server stops."""
    try:
        sagemaker.delete_endpoint(EndpointName=ENDPOINT_NAME)
    except ClientError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            sagemaker.describe_endpoint(EndpointName=ENDPOINT_NAME)
        except ClientError:
            return
        time.sleep(0.2)


# measuring -----------------------------------------------------------------------------------


def point_spec(
    address: Address,
    request: str,
    check: str,
    model: Model,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
) -> dict[str, Any]:
    return {
        "address": address,
        "request": request,
        "check": check,
        "expected": model.expected,
        "concurrency": concurrency,
        "warmup_s": warmup_s,
        "duration_s": duration_s,
    }


@dataclass
class Point:
    """One (target, concurrency) figure over the repeats."""

    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)  # CPU per request, all processes
    front_cpu_ms: list[float] = field(default_factory=list)  # of which opensage's front end
    loadgen_cores: list[float] = field(default_factory=list)  # load generator CPU / wall
    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def median(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return statistics.median(values) if values else float("nan")


def measure(
    targets: list[Target],
    model: Model,
    loadgen: LoadGen,
    args: argparse.Namespace,
    console: Console,
) -> dict[tuple[str, int], Point]:
    """Interleaved: each repeat visits every concurrency and target, so drifting load hits all."""
    points: dict[tuple[str, int], Point] = {}
    exclude = {loadgen.proc.pid}
    for repeat in range(args.repeats):
        for concurrency in CONCURRENCY:
            for target in targets:
                spec = point_spec(
                    target.address,
                    target.request,
                    target.check,
                    model,
                    concurrency,
                    args.warmup,
                    args.duration,
                )
                front = os.getpid() if target.name == OPENSAGE else None
                before = tree_cpu_seconds(target.server_pids, exclude, front)
                result = loadgen.run(spec)
                after = tree_cpu_seconds(target.server_pids, exclude, front)
                point = points.setdefault((target.name, concurrency), Point())
                point.rps.append(result["rps"])
                point.p50_ms.append(result["p50_ms"])
                point.p99_ms.append(result["p99_ms"])
                point.requests += result["completed"]
                point.errors += result["errors"]
                point.error_samples.extend(result["error_samples"][: 3 - len(point.error_samples)])
                if result["completed"]:
                    per_request = 1000 / result["completed"]
                    point.server_cpu_ms.append((after[0] - before[0]) * per_request)
                    point.front_cpu_ms.append((after[1] - before[1]) * per_request)
                point.loadgen_cores.append(result["loadgen_cpu_s"] / result["wall_s"])
                console.print(
                    f"  [{repeat + 1}/{args.repeats}] {target.name:8} c={concurrency:<3}"
                    f" {result['rps']:8.0f} rps  p50 {result['p50_ms']:7.2f} ms"
                    f"  p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}",
                    highlight=False,
                )
    return points


# report --------------------------------------------------------------------------------------


@dataclass
class Verdict:
    label: str
    figure: str
    met: bool | None  # None: could not be judged (a side missing)


def paired(
    ours: Point, theirs: Point, name: str, combine: Callable[[float, float], float]
) -> float:
    """The median over repeats of `combine(ours, theirs)`, each pair measured back to back.

    Both sides of a pair ran seconds apart, so a drift in the machine's load (other people's
    test runs) hits them alike; the ratio of the two medians does not pair them.
    """
    pairs = zip(getattr(ours, name), getattr(theirs, name), strict=False)
    return statistics.median(combine(a, b) for a, b in pairs)


def rps_ratio(ours: Point, theirs: Point) -> tuple[float, float]:
    """opensage/anchor rps: ratio of the medians, and median of the paired ratios."""
    return (
        ours.median("rps") / theirs.median("rps"),
        paired(ours, theirs, "rps", lambda a, b: a / b),
    )


def p50_diff(ours: Point, theirs: Point) -> tuple[float, float]:
    """opensage - anchor p50 in ms: difference of the medians, and median of the paired ones."""
    return (
        ours.median("p50_ms") - theirs.median("p50_ms"),
        paired(ours, theirs, "p50_ms", lambda a, b: a - b),
    )


def verdicts(points: dict[tuple[str, int], Point]) -> list[Verdict]:
    """The issue's two targets, judged on the medians; the paired figure is shown beside."""
    out: list[Verdict] = []
    ours = points.get((OPENSAGE, TARGET_RPS_CONCURRENCY))
    anchor = points.get((FASTAPI, TARGET_RPS_CONCURRENCY))
    label = (
        f"opensage rps >= {TARGET_RPS_RATIO:.0%} of FastAPI's at concurrency "
        f"{TARGET_RPS_CONCURRENCY}"
    )
    if ours and anchor:
        ratio, pair = rps_ratio(ours, anchor)
        figure = f"{ratio:.1%} (paired per repeat: {pair:.1%})"
        out.append(Verdict(label, figure, ratio >= TARGET_RPS_RATIO))
    else:
        out.append(Verdict(label, "n/a", None))
    ours = points.get((OPENSAGE, TARGET_P50_CONCURRENCY))
    anchor = points.get((FASTAPI, TARGET_P50_CONCURRENCY))
    label = (
        f"opensage p50 overhead over FastAPI < {TARGET_P50_OVERHEAD_MS} ms at concurrency "
        f"{TARGET_P50_CONCURRENCY}"
    )
    if ours and anchor:
        overhead, pair = p50_diff(ours, anchor)
        figure = f"{overhead:+.2f} ms (paired per repeat: {pair:+.2f} ms)"
        out.append(Verdict(label, figure, overhead < TARGET_P50_OVERHEAD_MS))
    else:
        out.append(Verdict(label, "n/a", None))
    return out


def verdict_word(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


# (ours, theirs): opensage against each anchor, then the diagnostic split of opensage's own cost.
COMPARED = (
    (OPENSAGE, FASTAPI),
    (OPENSAGE, MLFLOW),
    (OPENSAGE, OPENSAGE_MODEL),  # the front end's hop
    (OPENSAGE_MODEL, FASTAPI),  # the model server's stack against the minimal app
)


def comparison_rows(points: dict[tuple[str, int], Point]) -> list[tuple[str, ...]]:
    """Each pair of COMPARED at every concurrency: rps ratio and p50 difference, both ways."""
    rows: list[tuple[str, ...]] = []
    for first, second in COMPARED:
        for concurrency in CONCURRENCY:
            ours, theirs = points.get((first, concurrency)), points.get((second, concurrency))
            if ours is None or theirs is None:
                continue
            ratio, ratio_pair = rps_ratio(ours, theirs)
            diff, diff_pair = p50_diff(ours, theirs)
            rows.append(
                (
                    f"{first} vs {second}",
                    str(concurrency),
                    f"{ratio:.2f}x",
                    f"{ratio_pair:.2f}x",
                    f"{diff:+.2f}",
                    f"{diff_pair:+.2f}",
                )
            )
    return rows


COMPARISON_COLUMNS = (
    "pair",
    "c",
    "rps ratio",
    "rps ratio, paired",
    "p50 diff ms",
    "p50 diff ms, paired",
)


def cpu_split(points: dict[tuple[str, int], Point]) -> list[str]:
    """Where opensage's CPU goes: its front end (this process) and the model server behind it."""
    lines = []
    for concurrency in CONCURRENCY:
        point = points.get((OPENSAGE, concurrency))
        if point is None or not point.server_cpu_ms:
            continue
        total, front = point.median("server_cpu_ms"), point.median("front_cpu_ms")
        lines.append(
            f"opensage c={concurrency}: {total:.2f} ms CPU per request, of which the front end "
            f"(the server thread in this process) {front:.2f} ms and its model server process "
            f"{total - front:.2f} ms"
        )
    return lines


def figure_rows(
    targets: list[Target], points: dict[tuple[str, int], Point]
) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for target in targets:
        for concurrency in CONCURRENCY:
            point = points.get((target.name, concurrency))
            if point is None:
                continue
            rows.append(
                (
                    target.name,
                    str(concurrency),
                    f"{point.median('rps'):.0f}",
                    f"{min(point.rps):.0f}-{max(point.rps):.0f}",
                    f"{point.median('p50_ms'):.2f}",
                    f"{point.median('p99_ms'):.2f}",
                    f"{point.median('server_cpu_ms'):.2f}",
                    f"{point.median('loadgen_cores'):.2f}",
                    f"{point.errors}/{point.requests}",
                )
            )
    return rows


COLUMNS = (
    "target",
    "c",
    "rps (median)",
    "rps (min-max)",
    "p50 ms",
    "p99 ms",
    "server CPU ms/req",
    "loadgen cores",
    "errors/requests",
)


def machine_line() -> str:
    """The machine, and the runtime opensage's model servers run in (bubblewrap or a process)."""
    return (
        f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
        f"xgboost {xgb.__version__}, opensage runtime `{Settings().resolved_runtime()}`"
    )


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


@dataclass
class Run:
    """Everything the report needs about one run."""

    command: str
    started: datetime
    load_before: str
    load_after: str
    args: argparse.Namespace
    targets: list[Target]
    skipped: dict[str, str]
    points: dict[tuple[str, int], Point]
    pins: list[str]
    floor_ms: float
    venv_seconds: float | None  # set when this run had to create the anchors' venv


def print_report(console: Console, run: Run) -> None:
    console.print(f"machine: {machine_line()}")
    console.print(
        f"date: {run.started:%Y-%m-%d %H:%M %Z}; load average {run.load_before} -> {run.load_after}"
    )
    table = Table(
        title=f"InvokeEndpoint, one CSV row, {run.args.repeats} repeats of "
        f"{run.args.duration:g} s per point (medians)"
    )
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "target" else "right")
    for row in figure_rows(run.targets, run.points):
        table.add_row(*row)
    console.print(table)
    for target in run.targets:
        console.print(f"{target.name} request: {escape(target.request_format)}", highlight=False)
    for name, why in run.skipped.items():
        console.print(f"[yellow]{name} skipped:[/yellow] {escape(why)}")
    console.print(f"parse + predict of the row in-process (no HTTP): {run.floor_ms:.3f} ms")
    compared = Table(
        title="A vs B: rps A/B and p50 A - B of the medians; paired: median over the repeats"
    )
    for column in COMPARISON_COLUMNS:
        compared.add_column(column, justify="left" if column == "pair" else "right")
    for row in comparison_rows(run.points):
        compared.add_row(*row)
    if compared.rows:
        console.print(compared)
    for line in cpu_split(run.points):
        console.print(line)
    for verdict in verdicts(run.points):
        colour = {True: "green", False: "red", None: "yellow"}[verdict.met]
        console.print(
            f"target: {verdict.label}: {verdict.figure} "
            f"[{colour}]{verdict_word(verdict.met)}[/{colour}]"
        )
    for (name, concurrency), point in run.points.items():
        for sample in point.error_samples:
            console.print(
                f"[red]{name} c={concurrency} error:[/red] {escape(sample)}", highlight=False
            )


def prose(text: str) -> list[str]:
    """A paragraph wrapped at 100 columns, as the rest of RESULTS.md is."""
    return textwrap.wrap(text, 100, break_long_words=False, break_on_hyphens=False)


def bullet(text: str) -> list[str]:
    return textwrap.wrap(
        text,
        100,
        initial_indent="- ",
        subsequent_indent="  ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def markdown_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """A table whose first column is left-aligned and the others, figures, right-aligned."""
    if not rows:
        return ["(nothing to compare: too few targets were measured)"]
    lines = ["| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join(["---", *["---:"] * (len(columns) - 1)]) + "|")
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown_section(run: Run) -> str:
    args = run.args
    lines = [
        SECTION_TITLE,
        "",
        "(`benchmarks/bench_hosting.py`, also `make bench-hosting`; each full run rewrites this "
        "section.)",
        "",
        "```",
        run.command,
        "```",
        "",
    ]
    lines += bullet(f"Date: {run.started:%a %b %d %H:%M %Z %Y}")
    lines += bullet(f"Machine: {machine_line()}")
    lines += bullet(
        f"Load average (1, 5, 15 min) before -> after the run: {run.load_before} -> "
        f"{run.load_after}. The machine is shared with other engineers' test runs."
    )
    venv = f"Anchors' venv `benchmarks/.venv-anchors`: {', '.join(run.pins) or 'not used'}"
    if run.venv_seconds is not None:
        venv += f" (created by this run in {run.venv_seconds:.0f} s)"
    lines += bullet(venv)
    lines += bullet(
        f"Each point: {args.warmup:g} s warm-up, then {args.duration:g} s measured; "
        f"{args.repeats} repeats, interleaved across targets; figures are medians of the "
        "repeats (min-max for rps)."
    )
    lines.append("")
    lines += prose(
        "What is measured: one XGBoost booster (binary:logistic, "
        f"{ROUNDS} rounds on {ROWS:,} x {FEATURES} generated rows), one row of {FEATURES} "
        "features per request, from a separate load-generator process (asyncio, one HTTP/1.1 "
        "keep-alive connection per concurrent worker, the request prebuilt). Every response is "
        "checked: status 200 and the booster's score for the row. Every target predicts on one "
        "thread. Server CPU is the user + system time of the target's processes per request, "
        "read from /proc around each point (for opensage: the server thread's process without "
        "the load generator, plus the model server's processes). opensage-model is a diagnostic: "
        "the same request sent straight to opensage's model server on its Unix socket, without "
        "the front end. Loadgen cores is the load "
        "generator's CPU time over wall time. Everything shares the machine's 2 cores. Parsing "
        "and predicting the row in-process, without any HTTP, takes "
        f"{run.floor_ms:.3f} ms: the floor under every target's CPU per request."
    )
    lines += ["", "Request formats:", ""]
    for target in run.targets:
        lines += bullet(f"{target.name}: {target.request_format}")
    for name, why in run.skipped.items():
        lines += bullet(f"{name}: not measured, {why.splitlines()[0]}")
    lines.append("")
    lines += markdown_table(COLUMNS, figure_rows(run.targets, run.points))
    lines += ["", "Targets (issue Hosting, item 7), judged on the medians:", ""]
    for verdict in verdicts(run.points):
        lines += bullet(f"{verdict.label}: **{verdict.figure}, {verdict_word(verdict.met)}**")
    lines.append("")
    lines += prose(
        "Comparisons, for a pair `A vs B`: rps ratio A/B and p50 difference A - B, of the medians; "
        "paired: the median over the repeats of the same figure for the two points measured back "
        "to back."
    )
    lines.append("")
    lines += markdown_table(COMPARISON_COLUMNS, comparison_rows(run.points))
    split = cpu_split(run.points)
    if split:
        lines += ["", "Where opensage's CPU goes:", ""]
    for line in split:
        lines += bullet(line)
    errors = sum(point.errors for point in run.points.values())
    lines += ["", f"Errors: {errors} in {sum(p.requests for p in run.points.values()):,} requests."]
    for (name, concurrency), point in run.points.items():
        for sample in point.error_samples:
            lines += bullet(f"{name} c={concurrency}: `{sample}`")
    return "\n".join(lines) + "\n"


def write_results(section: str, path: Path = RESULTS) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it), leaving the rest as is."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION_TITLE)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def anchor_pins() -> list[str]:
    return [
        line.strip()
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


# main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each point")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per point")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repeat of 1 s; RESULTS.md untouched"
    )
    parser.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated subset of {','.join(ALL_TARGETS)}",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only, leave benchmarks/RESULTS.md alone"
    )
    parser.add_argument(
        "--mlflow-default-threads",
        action="store_true",
        help="leave mlflow's xgboost on its default OpenMP threads (as shipped)",
    )
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.duration, args.warmup, args.no_write = 1, 1.0, 0.3, True
    args.targets = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def terminate(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` stops its servers."""
    raise KeyboardInterrupt(f"signal {signum}")


def start_target(
    name: str,
    start: Callable[[], list[Target]],
    targets: list[Target],
    skipped: dict[str, str],
    wanted: list[str],
) -> None:
    """Start one server; one that cannot start is reported and skipped, not fatal to the rest."""
    try:
        targets.extend(target for target in start() if target.name in wanted)
    except (
        HostingUnavailableError,
        ClientError,
        RuntimeError,
        TimeoutError,
        OSError,
        subprocess.CalledProcessError,
    ) as exc:
        skipped[name] = f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.loadgen:
        return loadgen_main()
    signal.signal(signal.SIGTERM, terminate)
    console = Console(width=130)
    raw_argv = sys.argv[1:] if argv is None else argv
    command = "cd /work/main && " + shlex.join(
        [".venv/bin/python", "benchmarks/bench_hosting.py", *raw_argv]
    )
    started = datetime.now().astimezone()
    load_before = loadavg()
    skipped: dict[str, str] = {}
    targets: list[Target] = []
    use_anchors = [name for name in (FASTAPI, MLFLOW) if name in args.targets]
    venv_seconds = None
    if use_anchors:
        why, venv_seconds = ensure_anchor_venv(console)
        if why:
            console.print(f"[yellow]skipping the anchors:[/yellow] {escape(why)}")
            skipped.update(dict.fromkeys(use_anchors, why))
            use_anchors = []
    with tempfile.TemporaryDirectory(prefix="opensage-bench-hosting-") as tmp:
        work = Path(tmp)
        model = train_model(work)
        console.print(
            f"model: {FEATURES} features, score of the request row {model.expected:.6f}; "
            f"parse + predict in-process {model.floor_ms:.3f} ms"
        )
        loadgen = LoadGen(work / "loadgen.log")
        try:
            with contextlib.ExitStack() as stack:
                if FASTAPI in use_anchors:
                    start_target(
                        FASTAPI,
                        lambda: [start_fastapi(stack, work, model)],
                        targets,
                        skipped,
                        args.targets,
                    )
                if MLFLOW in use_anchors:
                    console.print("mlflow: probing request formats ...")
                    start_target(
                        MLFLOW,
                        lambda: [
                            start_mlflow(
                                stack, work, model, loadgen, console, args.mlflow_default_threads
                            )
                        ],
                        targets,
                        skipped,
                        args.targets,
                    )
                if OPENSAGE in args.targets or OPENSAGE_MODEL in args.targets:
                    start_target(
                        OPENSAGE,
                        lambda: start_opensage(stack, work, model),
                        targets,
                        skipped,
                        args.targets,
                    )
                for name, why in skipped.items():
                    console.print(f"[yellow]{name} skipped:[/yellow] {escape(why)}")
                for target in targets:
                    console.print(
                        f"{target.name}: {escape(target.request_format)}", highlight=False
                    )
                points = measure(targets, model, loadgen, args, console)
        finally:
            loadgen.close()
    run = Run(
        command,
        started,
        load_before,
        loadavg(),
        args,
        targets,
        skipped,
        points,
        anchor_pins() if use_anchors else [],
        model.floor_ms,
        venv_seconds,
    )
    print_report(console, run)
    if not args.no_write and targets:
        write_results(markdown_section(run))
        console.print(f"wrote the section '{SECTION_TITLE[3:]}' of {RESULTS}")
    errors = sum(point.errors for point in points.values())
    return 1 if errors or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
