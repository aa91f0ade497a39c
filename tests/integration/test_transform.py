"""Batch transform through the real server, boto3 and the SDK (spec hosting-transform-tuning §1.8,
§4): splitting, batching, assembly, DataProcessing, naming, failures, Stop, the API's checks.

Most jobs run `ECHO`, a script model whose answers can be predicted exactly from the request:
for a CSV request, one line `<sum of the row>,<rows in the request>` per row; for JSON Lines,
one `{"sum": ..., "n": ...}` per line; with Accept `REQUEST_INFO`, a description of the request
itself (length, first bytes, line count, environment). Its answers never end in a newline, so
AssembleWith shows. It logs `echo-request <first line>` per text request. Knobs come from the
job's Environment: `ECHO_SLEEP` (a random sleep up to that many seconds per request, so
concurrent answers come back out of order), `ECHO_HANG` (a first line on which it hangs, so a
request is surely in flight), `ECHO_FLAKY` (each request's first try fails with a 500) and
`ECHO_EXECUTION_PARAMETERS` (its `/execution-parameters` answer).

Every test runs under both runtimes (the `server` fixture), except that the combination matrix
takes a representative subset under "sandbox", and tests of the runner's own logic (packing,
retries) run under "process" only.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from botocore.exceptions import ClientError, WaiterError

from opensage.sdk import Model, Session, UnexpectedStatusError
from tests.integration.conftest import ROLE, Clients, wait_for
from tests.integration.hosting import (
    N_FEATURES,
    SCRIPT_IMAGE,
    booster_bytes,
    script_container,
    upload,
    xgboost_model,
)

WAIT = {"Delay": 0.2, "MaxAttempts": 600}
RESOURCES = {"InstanceType": "ml.m5.large", "InstanceCount": 1}
CSV = "text/csv"
JSONL = "application/jsonlines"
RECORDIO = "application/x-recordio"
REQUEST_INFO = "application/x-request-info"
RECORDIO_MAGIC = 0xCED7230A
MB = 1024 * 1024

ECHO = """
import json
import os
import random
import time

REQUEST_INFO = "application/x-request-info"
_failed_once = set()


class BadRecord(Exception):
    # The inference toolkit's error shape: the server answers with status_code.
    def __init__(self, message):
        super().__init__(message)
        self.status_code = 400
        self.message = message


def model_fn(model_dir):
    return None


def execution_parameters_fn():
    return json.loads(os.environ.get("ECHO_EXECUTION_PARAMETERS", "{}"))


def _total(values, number):
    try:
        total = sum(float(v) for v in values)
    except (TypeError, ValueError):
        raise BadRecord(f"line {number} of the request is not all numbers: {values!r}") from None
    return int(total) if total.is_integer() else total


def transform_fn(model, data, content_type, accept):
    body = data.encode() if isinstance(data, str) else data
    first = body.split(b"\\n", 1)[0]
    if content_type in ("text/csv", "application/jsonlines"):
        # One write: print() from several worker threads interleaves its pieces.
        os.write(1, f"echo-request {first[:40].decode()}\\n".encode())
    if os.environ.get("ECHO_FLAKY") and first not in _failed_once:
        _failed_once.add(first)
        raise RuntimeError(f"flaky: first try for {first!r}")
    hang = os.environ.get("ECHO_HANG")
    if hang and first == hang.encode():
        time.sleep(600)
    time.sleep(random.uniform(0, float(os.environ.get("ECHO_SLEEP", "0"))))
    if accept == REQUEST_INFO:
        env = {k: v for k, v in os.environ.items() if k.startswith(("SAGEMAKER_", "JOB_"))}
        info = {"length": len(body), "head": body[:8].hex(), "lines": len(body.splitlines()),
                "env": env}
        return json.dumps(info), accept
    lines = body.decode().splitlines()
    if content_type == "text/csv":
        answers = [f"{_total(line.split(','), i)},{len(lines)}" for i, line in enumerate(lines, 1)]
    else:
        answers = []
        for i, line in enumerate(lines, 1):
            value = json.loads(line)
            values = value["x"] if isinstance(value, dict) else value
            answers.append(json.dumps({"sum": _total(values, i), "n": len(lines)}))
    return "\\n".join(answers), accept
"""


# --- the echo model's answers, computed here -------------------------------------------------


def csv_answer(request: bytes) -> bytes:
    lines = request.decode().splitlines()
    sums = (sum(int(cell) for cell in line.split(",")) for line in lines)
    return "\n".join(f"{total},{len(lines)}" for total in sums).encode()


def jsonl_answer(request: bytes) -> bytes:
    lines = request.decode().splitlines()
    values = (json.loads(line) for line in lines)
    answers = ({"sum": sum(v["x"] if isinstance(v, dict) else v), "n": len(lines)} for v in values)
    return "\n".join(json.dumps(a) for a in answers).encode()


def expected_output(
    data: bytes, split: str, strategy: str, assemble: str, answer: Callable[[bytes], bytes]
) -> bytes:
    """The output object for an input that fits one request (spec §4.3 steps 4, 5, 8)."""
    if split == "Line" and strategy == "SingleRecord":
        requests = data.splitlines(keepends=True)
    else:
        requests = [data]
    bodies = [answer(request) for request in requests]
    if assemble == "Line":
        bodies = [body if body.endswith(b"\n") else body + b"\n" for body in bodies]
    return b"".join(bodies)


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo(server: Clients) -> str:
    """The echo model, once per server. Its own env sets JOB_COLOR and JOB_SHAPE, so a job's
    Environment can be seen to override one and keep the other."""
    container = script_container(server, "echo", ECHO)
    container["Environment"].update({"JOB_COLOR": "model", "JOB_SHAPE": "model"})
    server.sagemaker.create_model(
        ModelName="echo", PrimaryContainer=container, ExecutionRoleArn=ROLE
    )
    return "echo"


@pytest.fixture
def full_matrix(server: Clients) -> bool:
    """Whether to run a test's whole matrix: under "process"; "sandbox" takes a subset."""
    return server.runtime == "process"


@pytest.fixture
def process_only(server: Clients) -> None:
    """For tests of the job runner's own logic, which the runtime of the model server does not
    change: run them once, under "process"."""
    if server.runtime != "process":
        pytest.skip("the runner's logic does not depend on the runtime; run under process")


def create_job(
    server: Clients,
    name: str,
    model: str,
    source: str,
    output: str,
    *,
    content_type: str | None = CSV,
    split: str | None = "Line",
    accept: str | None = CSV,
    assemble: str | None = "Line",
    data_type: str = "S3Prefix",
    compression: str | None = None,
    instances: int = 1,
    **extra: Any,
) -> None:
    transform_input: dict[str, Any] = {
        "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": source}}
    }
    for key, value in (
        ("ContentType", content_type),
        ("SplitType", split),
        ("CompressionType", compression),
    ):
        if value is not None:
            transform_input[key] = value
    transform_output: dict[str, Any] = {"S3OutputPath": output}
    if accept is not None:
        transform_output["Accept"] = accept
    if assemble is not None:
        transform_output["AssembleWith"] = assemble
    server.sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput=transform_input,
        TransformOutput=transform_output,
        TransformResources={**RESOURCES, "InstanceCount": instances},
        **extra,
    )


def finish(server: Clients, name: str) -> dict[str, Any]:
    """Wait with botocore's waiter until the job ends; its description (Failed included)."""
    try:
        server.sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName=name, WaiterConfig=WAIT
        )
    except WaiterError as exc:
        if exc.last_response.get("TransformJobStatus") != "Failed":
            raise
    return dict(server.sagemaker.describe_transform_job(TransformJobName=name))


def completed(server: Clients, name: str) -> dict[str, Any]:
    desc = finish(server, name)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    return desc


def read(server: Clients, key: str) -> bytes:
    return bytes(server.s3.get_object(Bucket="data", Key=key)["Body"].read())


def keys(server: Clients, prefix: str) -> list[str]:
    """The keys under `prefix`, found by listing its top folder (which holds the test's inputs):
    opensage's ListObjectsV2 answers 500 for a prefix that matches nothing."""
    top = prefix.split("/", 1)[0] + "/"
    listed = server.s3.list_objects_v2(Bucket="data", Prefix=top).get("Contents", [])
    return sorted(item["Key"] for item in listed if item["Key"].startswith(prefix))


def csv_rows(first: int, count: int) -> bytes:
    """Rows with distinct sums, so order and record boundaries show."""
    return "".join(f"{i},{10 * i},{100 * i}\n" for i in range(first, first + count)).encode()


def jsonl_rows(first: int, count: int) -> bytes:
    return "".join(
        json.dumps({"id": i, "x": [i, 10 * i]}) + "\n" for i in range(first, first + count)
    ).encode()


def recordio(payloads: list[bytes]) -> bytes:
    """MXNet RecordIO framing (magic, length, payload, zero pad to 4 bytes), written here
    independently of the code under test."""
    frames = []
    for data in payloads:
        frames.append(struct.pack("<II", RECORDIO_MAGIC, len(data)) + data)
        frames.append(b"\0" * (-len(data) % 4))
    return b"".join(frames)


def transform_server_pids(home: Path | None, job: str) -> list[int]:
    """Pids of the job's live model-server processes (as hosting.model_server_pids)."""
    assert home is not None
    pids = []
    for child in sorted(home.glob(f"logs/transform-jobs/{job}/**/child.pid")):
        pid = int(child.read_text())
        if Path(f"/proc/{pid}").exists():
            pids.append(pid)
    return pids


def wait_servers_gone(server: Clients, job: str) -> None:
    wait_for(lambda: not transform_server_pids(server.home, job), 30, what=f"{job}'s servers")


def error_of(call: Callable[..., Any], **params: Any) -> tuple[str, str]:
    """The error code and message of `call(**params)`, which must fail."""
    with pytest.raises(ClientError) as info:
        call(**params)
    error = info.value.response["Error"]
    return error["Code"], error["Message"]


def assert_mentions(text: str, *parts: str) -> None:
    missing = [part for part in parts if part not in text]
    assert not missing, f"{missing} not in {text!r}"


def log_streams(server: Clients, job: str) -> dict[str, list[str]]:
    """Each of the job's CloudWatch log streams (one per instance) and its messages."""
    group = "/aws/sagemaker/TransformJobs"
    found = server.logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")
    streams = {}
    for stream in found["logStreams"]:
        name = stream["logStreamName"]
        events = server.logs.get_log_events(
            logGroupName=group, logStreamName=name, startFromHead=True
        )["events"]
        streams[name] = [event["message"] for event in events]
    return streams


# --- split / batch / assemble ----------------------------------------------------------------

COMBINATIONS = [
    (split, strategy, assemble)
    for split in ("None", "Line")
    for strategy in ("SingleRecord", "MultiRecord")
    for assemble in ("None", "Line")
]
SANDBOX_COMBINATIONS = [("Line", "SingleRecord", "None"), ("None", "MultiRecord", "Line")]
FORMATS = {
    "csv": (CSV, csv_rows, csv_answer),
    "jsonl": (JSONL, jsonl_rows, jsonl_answer),
}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_split_batch_assemble_combination(
    server: Clients, echo: str, full_matrix: bool, fmt: str
) -> None:
    """Each SplitType x BatchStrategy x AssembleWith gives SageMaker's output: the requests are
    the whole object or its lines, the answers are concatenated as they are or one per line. One
    object ends with a newline, the other does not (its last line is a record all the same)."""
    content_type, rows, answer = FORMATS[fmt]
    objects = {"a": rows(1, 6), "b": rows(7, 3).rstrip(b"\n")}
    for key, data in objects.items():
        upload(server, f"matrix/{fmt}/in/{key}", data)
    combinations = COMBINATIONS if full_matrix else SANDBOX_COMBINATIONS
    names = {}
    for split, strategy, assemble in combinations:
        name = f"matrix-{fmt}-{split}-{strategy}-{assemble}"
        names[name] = (split, strategy, assemble)
        create_job(
            server,
            name,
            echo,
            f"s3://data/matrix/{fmt}/in/",
            f"s3://data/{name}",
            content_type=content_type,
            split=split,
            accept=content_type,
            assemble=assemble,
            BatchStrategy=strategy,
        )
    for name, (split, strategy, assemble) in names.items():
        desc = completed(server, name)
        assert desc["BatchStrategy"] == strategy
        assert desc["TransformInput"]["SplitType"] == split
        assert keys(server, f"{name}/") == [f"{name}/a.out", f"{name}/b.out"]
        for key, data in objects.items():
            want = expected_output(data, split, strategy, assemble, answer)
            assert read(server, f"{name}/{key}.out") == want, (name, key)


@pytest.mark.usefixtures("process_only")
def test_multirecord_packs_greedily_under_max_payload(server: Clients, echo: str) -> None:
    """MultiRecord with MaxPayloadInMB 1: each request is as many whole lines as fit in 1 MiB
    (the echo model reports how many it got), answers are written in input order although two
    requests are in flight and the model sleeps at random. A record alone over the limit fails
    its object, not the job's other objects."""
    width = 20
    rows = [",".join(str((i * 7 + j) % 1000) for j in range(width)) + "\n" for i in range(30_000)]
    data = "".join(rows).encode()
    assert len(data) > 2 * MB
    upload(server, "pack/in/big.csv", data)
    upload(server, "pack/in/huge.csv", b"1,2\n" + b"1," * (MB // 2) + b"1\n")
    create_job(
        server,
        "pack",
        echo,
        "s3://data/pack/in/",
        "s3://data/pack/out",
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
        MaxConcurrentTransforms=2,
        Environment={"ECHO_SLEEP": "0.1", "SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
    )
    desc = finish(server, "pack")
    assert desc["TransformJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert_mentions(reason, "s3://data/pack/in/huge.csv", "Record 2", "MaxPayloadInMB")
    assert "big.csv" not in reason
    assert keys(server, "pack/out/") == ["pack/out/big.csv.out"]

    answers = read(server, "pack/out/big.csv.out").decode().splitlines()
    sums = [int(line.split(",")[0]) for line in answers]
    assert sums == [sum(int(c) for c in row.split(",")) for row in rows]
    counts = []  # records per request, as the model reported them
    position = 0
    while position < len(rows):
        count = int(answers[position].split(",")[1])
        assert {int(a.split(",")[1]) for a in answers[position : position + count]} == {count}
        counts.append(count)
        position += count
    assert len(counts) >= 3
    start = 0
    for count in counts:
        size = sum(len(row) for row in rows[start : start + count])
        assert size <= MB
        if start + count < len(rows):
            assert size + len(rows[start + count]) > MB, "a request stopped before it was full"
        start += count


# --- order, instances, naming ---------------------------------------------------------------


def test_objects_spread_over_instances_in_input_order(server: Clients, echo: str) -> None:
    """Five objects (two in sub-folders) on three instances: each object is handled whole by
    one instance, every instance gets some; with SingleRecord, four requests in flight and a
    model that sleeps at random, each output still lists the answers in input order. Outputs keep
    the key below the input prefix; the model servers are gone afterwards."""
    names = ["01.csv", "02.csv", "sub/03.csv", "sub/deeper/04.csv", "05.csv"]
    data = {name: csv_rows(100 * n, 12) for n, name in enumerate(names, 1)}
    for name, rows in data.items():
        upload(server, f"spread/in/{name}", rows)
    create_job(
        server,
        "spread",
        echo,
        "s3://data/spread/in/",
        "s3://data/spread/out",
        instances=3,
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=4,
        Environment={"ECHO_SLEEP": "0.02", "SAGEMAKER_MODEL_SERVER_WORKERS": "4"},
    )
    desc = completed(server, "spread")
    assert desc["MaxConcurrentTransforms"] == 4
    assert keys(server, "spread/out/") == sorted(f"spread/out/{name}.out" for name in names)
    for name, rows in data.items():
        want = expected_output(rows, "Line", "SingleRecord", "Line", csv_answer)
        assert read(server, f"spread/out/{name}.out") == want, name

    streams = log_streams(server, "spread")
    assert len(streams) == 3
    handled: dict[str, set[str]] = {}  # object -> the streams (instances) that sent its rows
    for stream, messages in streams.items():
        for message in messages:
            for first in re.findall(r"echo-request (\d+),", message):
                handled.setdefault(names[int(first) // 100 - 1], set()).add(stream)
    assert set(handled) == set(names)
    assert all(len(streams_of) == 1 for streams_of in handled.values()), handled
    assert {s for streams_of in handled.values() for s in streams_of} == set(streams)
    wait_servers_gone(server, "spread")


def test_output_names_for_a_partial_key_prefix(server: Clients, echo: str) -> None:
    """S3Uri `in/part` takes every key starting with it (in/part-1.csv, in/partition/z.csv), not
    in/other.csv; outputs keep the path below the prefix's folder, under an
    output path given with a trailing slash. An empty object gets an empty output: as many
    outputs as inputs."""
    for key in ("part-1.csv", "part-2.csv", "partition/z.csv", "other.csv"):
        upload(server, f"names/in/{key}", csv_rows(1, 2))
    upload(server, "names/in/part-empty.csv", b"")
    upload(server, "names/inside.csv", csv_rows(1, 2))
    create_job(server, "names", echo, "s3://data/names/in/part", "s3://data/names/out/")
    desc = completed(server, "names")
    assert desc["TransformStartTime"] <= desc["TransformEndTime"]
    assert keys(server, "names/out/") == [
        "names/out/part-1.csv.out",
        "names/out/part-2.csv.out",
        "names/out/part-empty.csv.out",
        "names/out/partition/z.csv.out",
    ]
    assert read(server, "names/out/partition/z.csv.out") == b"111,2\n222,2\n"
    assert read(server, "names/out/part-empty.csv.out") == b""


def test_manifest_of_gzip_objects(server: Clients, echo: str) -> None:
    """A ManifestFile lists the objects (one in a sub-folder; an object beside them that it does
    not list is left alone); CompressionType Gzip: the model gets the lines uncompressed, outputs
    are named after the listed keys. Unset batch parameters are described with their defaults."""
    x, y = csv_rows(1, 4), csv_rows(5, 3)
    upload(server, "mani/src/x.csv.gz", gzip.compress(x))
    upload(server, "mani/src/deep/y.csv.gz", gzip.compress(y))
    upload(server, "mani/src/unlisted.csv.gz", gzip.compress(csv_rows(9, 1)))
    manifest = [{"prefix": "s3://data/mani/src/"}, "x.csv.gz", "deep/y.csv.gz"]
    upload(server, "mani/list.manifest", json.dumps(manifest).encode())
    create_job(
        server,
        "mani",
        echo,
        "s3://data/mani/list.manifest",
        "s3://data/mani/out",
        data_type="ManifestFile",
        compression="Gzip",
    )
    desc = completed(server, "mani")
    assert desc["TransformInput"]["CompressionType"] == "Gzip"
    assert (desc["BatchStrategy"], desc["MaxPayloadInMB"], desc["MaxConcurrentTransforms"]) == (
        "MultiRecord",
        6,
        1,
    )
    assert keys(server, "mani/out/") == ["mani/out/deep/y.csv.gz.out", "mani/out/x.csv.gz.out"]
    assert read(server, "mani/out/x.csv.gz.out") == csv_answer(x) + b"\n"
    assert read(server, "mani/out/deep/y.csv.gz.out") == csv_answer(y) + b"\n"


# --- DataProcessing --------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_csv_join_and_filters(server: Clients, echo: str, strategy: str) -> None:
    """InputFilter $[1:] sends the columns after the id; JoinSource Input appends the answer's
    columns to the whole input row; OutputFilter $[0,-2] keeps the id and the sum."""
    rows = "".join(f"{100 + i},{i},{2 * i},{3 * i}\n" for i in range(1, 6)).encode()
    upload(server, f"dp-csv-{strategy}/in/rows.csv", rows)
    name = f"dp-csv-{strategy}"
    create_job(
        server,
        name,
        echo,
        f"s3://data/{name}/in/",
        f"s3://data/{name}/out",
        BatchStrategy=strategy,
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-2]"},
    )
    desc = completed(server, name)
    assert desc["DataProcessing"]["OutputFilter"] == "$[0,-2]"
    want = "".join(f"{100 + i},{6 * i}\n" for i in range(1, 6)).encode()
    assert read(server, f"{name}/out/rows.csv.out") == want


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_jsonlines_join_and_filters(server: Clients, echo: str, strategy: str) -> None:
    """InputFilter $.x sends only the array; the join puts the answer under SageMakerOutput in
    the input object; OutputFilter $['id','SageMakerOutput'] keeps those two keys. A second job
    joins inputs that are not objects: they come back as SageMakerInput."""
    records: list[dict[str, Any]] = [
        {"id": i, "x": [i, i + 1], "tag": f"t{i}"} for i in range(1, 5)
    ]
    upload(
        server,
        f"dp-jsonl-{strategy}/objects/in.jsonl",
        "".join(json.dumps(r) + "\n" for r in records).encode(),
    )
    upload(server, f"dp-jsonl-{strategy}/arrays/in.jsonl", b"[1, 2]\n[3, 4, 5]\n")
    name = f"dp-jsonl-{strategy}"
    common: dict[str, Any] = {"content_type": JSONL, "accept": JSONL, "BatchStrategy": strategy}
    create_job(
        server,
        name,
        echo,
        f"s3://data/{name}/objects/",
        f"s3://data/{name}/out",
        DataProcessing={
            "InputFilter": "$.x",
            "JoinSource": "Input",
            "OutputFilter": "$['id','SageMakerOutput']",
        },
        **common,
    )
    create_job(
        server,
        f"{name}-arrays",
        echo,
        f"s3://data/{name}/arrays/",
        f"s3://data/{name}/arrays-out",
        DataProcessing={"JoinSource": "Input"},
        **common,
    )
    completed(server, name)
    completed(server, f"{name}-arrays")
    per_request = 1 if strategy == "SingleRecord" else len(records)
    lines = read(server, f"{name}/out/in.jsonl.out").decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": r["id"], "SageMakerOutput": {"sum": 2 * r["id"] + 1, "n": per_request}}
        for r in records
    ]
    per_request = 1 if strategy == "SingleRecord" else 2
    lines = read(server, f"{name}/arrays-out/in.jsonl.out").decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"SageMakerInput": [1, 2], "SageMakerOutput": {"sum": 3, "n": per_request}},
        {"SageMakerInput": [3, 4, 5], "SageMakerOutput": {"sum": 12, "n": per_request}},
    ]


# --- failures and Stop -----------------------------------------------------------------------


def test_malformed_objects_fail_alone(server: Clients, echo: str) -> None:
    """Of four gzip objects on two instances, one has a cell the model answers 400 for and one is
    not gzip: the job fails naming both (and why), the two good ones have complete outputs, the
    bad ones none."""
    good1, good4 = csv_rows(1, 5), csv_rows(20, 5)
    upload(server, "fail/in/1-good.csv.gz", gzip.compress(good1))
    upload(server, "fail/in/2-cell.csv.gz", gzip.compress(b"1,2,3\n4,5,6\n7,x,9\n10,11,12\n"))
    upload(server, "fail/in/3-plain.csv.gz", csv_rows(1, 3))
    upload(server, "fail/in/4-good.csv.gz", gzip.compress(good4))
    create_job(
        server,
        "fail",
        echo,
        "s3://data/fail/in/",
        "s3://data/fail/out",
        compression="Gzip",
        instances=2,
    )
    desc = finish(server, "fail")
    assert desc["TransformJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert_mentions(
        reason,
        "2 of 4 input objects failed",
        "s3://data/fail/in/2-cell.csv.gz",
        "400",
        "line 3 of the request is not all numbers",
        "s3://data/fail/in/3-plain.csv.gz",
        "gunzip",
    )
    assert "1-good" not in reason
    assert "4-good" not in reason
    assert keys(server, "fail/out/") == ["fail/out/1-good.csv.gz.out", "fail/out/4-good.csv.gz.out"]
    assert read(server, "fail/out/1-good.csv.gz.out") == csv_answer(good1) + b"\n"
    assert read(server, "fail/out/4-good.csv.gz.out") == csv_answer(good4) + b"\n"
    wait_servers_gone(server, "fail")


def test_stop_a_long_running_job(server: Clients, echo: str) -> None:
    """StopTransformJob while a request is in flight (the model hangs on the second object's
    first record): the job ends Stopped, the first object's output, already written, is removed,
    and no model server is left."""
    upload(server, "stop/in/a.csv", csv_rows(1, 1))
    upload(server, "stop/in/b.csv", b"hang\n" + csv_rows(1, 50))
    create_job(
        server,
        "stop",
        echo,
        "s3://data/stop/in/",
        "s3://data/stop/out",
        BatchStrategy="SingleRecord",
        Environment={"ECHO_HANG": "hang"},
    )

    def hanging() -> bool:
        messages = [m for ms in log_streams(server, "stop").values() for m in ms]
        return any(m.endswith("echo-request hang") for m in messages)

    wait_for(hanging, 60, what="the model to get the hanging request")
    assert keys(server, "stop/out/") == ["stop/out/a.csv.out"]
    assert transform_server_pids(server.home, "stop")
    server.sagemaker.stop_transform_job(TransformJobName="stop")
    desc = finish(server, "stop")
    assert desc["TransformJobStatus"] == "Stopped"
    assert "FailureReason" not in desc
    assert "TransformEndTime" in desc
    assert keys(server, "stop/out/") == []
    wait_servers_gone(server, "stop")
    code, message = error_of(server.sagemaker.stop_transform_job, TransformJobName="stop")
    assert code == "ValidationException"
    assert "Stopped" in message


@pytest.mark.usefixtures("process_only")
def test_retries_and_invocation_timeout(server: Clients, echo: str) -> None:
    """ModelClientConfig: a 500 is retried (the default 3 retries get every record through a
    model that fails each first try; with InvocationsMaxRetries 0 the object fails), and a
    request that outlives InvocationsTimeoutInSeconds fails its object, saying so."""
    upload(server, "retry/in/rows.csv", csv_rows(1, 3))
    flaky = {"BatchStrategy": "SingleRecord", "Environment": {"ECHO_FLAKY": "1"}}
    source = "s3://data/retry/in/"
    create_job(server, "retry-default", echo, source, "s3://data/retry/default", **flaky)
    create_job(
        server,
        "retry-none",
        echo,
        source,
        "s3://data/retry/none",
        **flaky,
        ModelClientConfig={"InvocationsMaxRetries": 0},
    )
    create_job(
        server,
        "retry-timeout",
        echo,
        source,
        "s3://data/retry/timeout",
        Environment={"ECHO_HANG": "1,10,100"},
        ModelClientConfig={"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 0},
    )

    completed(server, "retry-default")
    want = expected_output(csv_rows(1, 3), "Line", "SingleRecord", "Line", csv_answer)
    assert read(server, "retry/default/rows.csv.out") == want
    desc = finish(server, "retry-none")
    assert desc["TransformJobStatus"] == "Failed"
    assert_mentions(
        desc["FailureReason"], "s3://data/retry/in/rows.csv", "record 1", "500", "flaky: first try"
    )
    desc = finish(server, "retry-timeout")
    assert desc["TransformJobStatus"] == "Failed"
    assert_mentions(desc["FailureReason"], "s3://data/retry/in/rows.csv", "within 1 second")
    assert keys(server, "retry/") == ["retry/default/rows.csv.out", "retry/in/rows.csv"]


# --- RecordIO --------------------------------------------------------------------------------


def test_recordio_single_and_multi_record(server: Clients, echo: str) -> None:
    """SplitType RecordIO: SingleRecord sends each record's payload without its framing,
    MultiRecord the records framed as in the file. An object with a bad magic word fails alone,
    naming the record."""
    payloads = [b"a", b"four", b"fives", b"seven!!", b"\x00\x01\x02\x03\x04\x05\x06\x07\x08"]
    good = recordio(payloads)
    bad = recordio([b"ok"]) + struct.pack("<II", 0xDEADBEEF, 4) + b"oops"
    upload(server, "rio/good.rec", good)
    upload(server, "rio/bad.rec", bad)
    common: dict[str, Any] = {"content_type": RECORDIO, "split": "RecordIO", "accept": REQUEST_INFO}
    create_job(
        server,
        "rio-single",
        echo,
        "s3://data/rio/",
        "s3://data/rio-single",
        BatchStrategy="SingleRecord",
        **common,
    )
    create_job(
        server,
        "rio-multi",
        echo,
        "s3://data/rio/good",
        "s3://data/rio-multi",
        BatchStrategy="MultiRecord",
        **common,
    )

    desc = finish(server, "rio-single")
    assert desc["TransformJobStatus"] == "Failed"
    assert_mentions(desc["FailureReason"], "s3://data/rio/bad.rec", "record 2", "bad magic")
    assert keys(server, "rio-single/") == ["rio-single/good.rec.out"]
    seen = [json.loads(line) for line in read(server, "rio-single/good.rec.out").splitlines()]
    assert [(s["length"], s["head"]) for s in seen] == [(len(p), p[:8].hex()) for p in payloads]

    completed(server, "rio-multi")
    seen = [json.loads(line) for line in read(server, "rio-multi/good.rec.out").splitlines()]
    assert [(s["length"], s["head"]) for s in seen] == [(len(good), good[:8].hex())]
    assert good[:4] == struct.pack("<I", RECORDIO_MAGIC)


# --- /execution-parameters and the environment ----------------------------------------------


def test_execution_parameters_and_batch_environment(server: Clients, echo: str) -> None:
    """The container's /execution-parameters fill in what the request leaves unset (Describe
    shows them, the model gets one record per request); values in the request win. The batch
    variables reach the container only when the request sets them; the job's Environment is
    merged over the model's."""
    container_values = {
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": 1,
        "MaxConcurrentTransforms": 2,
    }
    env = {"ECHO_EXECUTION_PARAMETERS": json.dumps(container_values), "JOB_COLOR": "job"}
    upload(server, "params/in/rows.csv", csv_rows(1, 3))
    common: dict[str, Any] = {"accept": REQUEST_INFO, "Environment": env}
    create_job(
        server,
        "params-container",
        echo,
        "s3://data/params/in/",
        "s3://data/params/container",
        **common,
    )
    create_job(
        server,
        "params-request",
        echo,
        "s3://data/params/in/",
        "s3://data/params/request",
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=5,
        MaxConcurrentTransforms=3,
        **common,
    )

    desc = completed(server, "params-container")
    assert (desc["BatchStrategy"], desc["MaxPayloadInMB"], desc["MaxConcurrentTransforms"]) == (
        "SingleRecord",
        1,
        2,
    )
    seen = [json.loads(line) for line in read(server, "params/container/rows.csv.out").splitlines()]
    assert [s["lines"] for s in seen] == [1, 1, 1]
    container_env = seen[0]["env"]
    assert container_env["SAGEMAKER_BATCH"] == "true"
    for unset in (
        "SAGEMAKER_MAX_PAYLOAD_IN_MB",
        "SAGEMAKER_BATCH_STRATEGY",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",
    ):
        assert unset not in container_env
    assert (container_env["JOB_COLOR"], container_env["JOB_SHAPE"]) == ("job", "model")

    desc = completed(server, "params-request")
    assert (desc["BatchStrategy"], desc["MaxPayloadInMB"], desc["MaxConcurrentTransforms"]) == (
        "MultiRecord",
        5,
        3,
    )
    seen = [json.loads(line) for line in read(server, "params/request/rows.csv.out").splitlines()]
    assert [s["lines"] for s in seen] == [3]
    request_env = seen[0]["env"]
    assert request_env["SAGEMAKER_BATCH"] == "true"
    assert request_env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "5"
    assert request_env["SAGEMAKER_BATCH_STRATEGY"] == "MULTI_RECORD"
    assert request_env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "3"
    # A worker process per request in flight, at most one per CPU.
    assert request_env["SAGEMAKER_MODEL_SERVER_WORKERS"] == str(min(3, os.cpu_count() or 1))


# --- the API ---------------------------------------------------------------------------------


def test_create_refuses_invalid_requests(server: Clients, echo: str) -> None:
    """What CreateTransformJob refuses, each with a message naming the problem; nothing is
    created for a refused request."""
    upload(server, "val/in/rows.csv", csv_rows(1, 2))

    def create(name: str, model: str = echo, **extra: Any) -> Callable[[], None]:
        return lambda: create_job(
            server, name, model, "s3://data/val/in/", "s3://data/val/out", **extra
        )

    code, message = error_of(create("val-nomodel", model="no-such-model"))
    assert code == "ResourceNotFound"
    assert "no-such-model" in message
    create("val-dup")()
    code, message = error_of(create("val-dup"))
    assert code == "ResourceInUse"
    assert "val-dup" in message
    completed(server, "val-dup")

    refused = [
        (create("val-payload", MaxPayloadInMB=101), "MaxPayloadInMB must be at most 100"),
        (
            create("val-product", MaxPayloadInMB=10, MaxConcurrentTransforms=11),
            "MaxConcurrentTransforms x MaxPayloadInMB",
        ),
        (
            create("val-join", split="None", DataProcessing={"JoinSource": "Input"}),
            "SplitType=Line",
        ),
        (create("val-path", DataProcessing={"InputFilter": "$.a["}), "InputFilter"),
        (create("val-csvkey", DataProcessing={"OutputFilter": "$.name"}), "by index"),
    ]
    for call, expected in refused:
        code, message = error_of(call)
        assert code == "ValidationException", message
        assert expected in message, message
    for name in ("val-payload", "val-product", "val-join", "val-path", "val-csvkey"):
        code, _ = error_of(server.sagemaker.describe_transform_job, TransformJobName=name)
        assert code == "ResourceNotFound"


def test_describe_and_stop_a_missing_job(server: Clients) -> None:
    """Both answer ResourceNotFound naming the job, as botocore's model declares."""
    for call in (server.sagemaker.describe_transform_job, server.sagemaker.stop_transform_job):
        code, message = error_of(call, TransformJobName="no-such-job")
        assert code == "ResourceNotFound"
        assert "no-such-job" in message


def test_list_transform_jobs(server: Clients, echo: str) -> None:
    """NameContains and StatusEquals filter; summaries carry the status, times, FailureReason."""
    upload(server, "lst/in/rows.csv", csv_rows(1, 2))
    for name in ("lst-ok-1", "lst-ok-2"):
        create_job(server, name, echo, "s3://data/lst/in/", f"s3://data/lst/{name}")
    create_job(server, "lst-empty", echo, "s3://data/lst/nothing-here/", "s3://data/lst/empty")
    for name in ("lst-ok-1", "lst-ok-2", "lst-empty"):
        finish(server, name)

    listed = server.sagemaker.list_transform_jobs(
        NameContains="lst-", SortBy="Name", SortOrder="Ascending"
    )
    summaries = listed["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in summaries] == ["lst-empty", "lst-ok-1", "lst-ok-2"]
    for summary in summaries:
        assert summary["TransformJobArn"].endswith(f":transform-job/{summary['TransformJobName']}")
        assert {"CreationTime", "LastModifiedTime", "TransformEndTime"} <= set(summary)
    empty = summaries[0]
    assert empty["TransformJobStatus"] == "Failed"
    assert "No input objects found at s3://data/lst/nothing-here/" in empty["FailureReason"]
    failed = server.sagemaker.list_transform_jobs(NameContains="lst-", StatusEquals="Failed")
    assert [s["TransformJobName"] for s in failed["TransformJobSummaries"]] == ["lst-empty"]
    done = server.sagemaker.list_transform_jobs(NameContains="lst-ok", StatusEquals="Completed")
    assert {s["TransformJobName"] for s in done["TransformJobSummaries"]} == {
        "lst-ok-1",
        "lst-ok-2",
    }
    assert all("FailureReason" not in s for s in done["TransformJobSummaries"])


# --- the SDK and a built-in model -----------------------------------------------------------


def test_sdk_model_transformer(
    server: Clients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Model.transformer().transform() runs a job and waits for it, with a bar of the objects
    done; the output is where transformer.output_path says. A failed job raises
    UnexpectedStatusError with its reason."""
    session = Session(endpoint_url=server.endpoint)
    script = tmp_path / "echo.py"
    script.write_text(textwrap.dedent(ECHO))
    model = Model(image_uri=SCRIPT_IMAGE, entry_point=str(script), sagemaker_session=session)
    upload(server, "sdk/in/rows.csv", csv_rows(1, 4))
    upload(server, "sdk/bad/rows.csv", b"1,2\nx,y\n")

    transformer = model.transformer(
        1, "ml.m5.large", strategy="SingleRecord", assemble_with="Line", accept=CSV
    )
    transformer.transform("s3://data/sdk/in/", content_type=CSV, split_type="Line", logs=False)
    assert transformer.output_path is not None
    bucket, _, prefix = transformer.output_path.removeprefix("s3://").partition("/")
    body = server.s3.get_object(Bucket=bucket, Key=f"{prefix}/rows.csv.out")["Body"].read()
    assert body == expected_output(csv_rows(1, 4), "Line", "SingleRecord", "Line", csv_answer)
    assert transformer.describe()["TransformJobStatus"] == "Completed"
    job = transformer.latest_transform_job
    assert job is not None
    assert re.fullmatch(r"python-\d{4}(-\d\d){5}-\d{3}", job.job_name)  # the image names it
    bar = capsys.readouterr().out
    assert f"Transform job {job.job_name}" in bar
    assert "1/1 Completed" in bar

    failing = model.transformer(1, "ml.m5.large", output_path="s3://data/sdk/bad-out", accept=CSV)
    with pytest.raises(UnexpectedStatusError) as info:
        failing.transform("s3://data/sdk/bad/", content_type=CSV, split_type="Line", logs=False)
    assert info.value.status == "Failed"
    assert "s3://data/sdk/bad/rows.csv" in str(info.value)
    assert "not all numbers" in str(info.value)
    assert "0/1 Failed" in capsys.readouterr().out


def test_xgboost_model_matches_the_booster(server: Clients) -> None:
    """The built-in XGBoost container on two CSV objects over two instances: each output line is
    the booster's own prediction for that row."""
    model = xgboost_model(server, "xgb")
    rng = np.random.default_rng(1)
    tables = {name: rng.normal(size=(20, N_FEATURES)) for name in ("a.csv", "b.csv")}
    texts = {}
    for name, rows in tables.items():
        texts[name] = "".join(",".join(f"{v:.6f}" for v in row) + "\n" for row in rows)
        upload(server, f"xgb/in/{name}", texts[name].encode())
    create_job(
        server,
        "xgb",
        model,
        "s3://data/xgb/in/",
        "s3://data/xgb/out",
        instances=2,
        BatchStrategy="MultiRecord",
    )
    completed(server, "xgb")
    booster = xgb.Booster()
    booster.load_model(bytearray(booster_bytes()))
    for name, text in texts.items():
        rows = np.loadtxt(text.splitlines(), delimiter=",", ndmin=2)
        want = booster.predict(xgb.DMatrix(rows))
        got = np.loadtxt(read(server, f"xgb/out/{name}.out").decode().splitlines())
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    wait_servers_gone(server, "xgb")
