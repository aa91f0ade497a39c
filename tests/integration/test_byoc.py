"""Bring your own container: images built by the tests, loaded into the image store, run as
SageMaker runs them (Entrypoint + `train` / `serve`) under bubblewrap, through boto3.

Two images, both assembled from this machine's files (nothing is pulled):
- `byoc/shell:1`, bash and its libraries, whose `train` is a shell script: it reports what it
  sees of the contract, fails with a failure file when asked, and probes the host's network;
- `byoc/python:1`, this Python's interpreter and standard library, whose `train` writes a model
  and whose `serve` is an HTTP server on port 8080 that answers `/ping` and `/invocations`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from opensage.app import EmbeddedServer
from opensage.images import ImageStore, load
from tests.images.builder import Entry, Image, build_layout, python_files, shell_files
from tests.integration.conftest import (
    ROLE,
    Clients,
    log_messages,
    make_clients,
    needs_bwrap,
    settings_for,
    wait_final,
    wait_for,
)

pytestmark = needs_bwrap

SHELL_IMAGE = "byoc/shell:1"
HOST_SECRET = "OPENSAGE_TEST_HOST_SECRET"
USER_IMAGE = "byoc/user:1"
PYTHON_IMAGE = "localhost:5000/byoc/python:1"  # any registry host names the stored image

TRAIN_SH = b"""#!/bin/bash
set -u
echo "argv: $*"
echo "cwd: $PWD"
echo "image variable: ${IMAGE_VARIABLE:-unset}"
echo "job variable: ${JOB_VARIABLE:-unset}"
echo "host variable: ${OPENSAGE_TEST_HOST_SECRET:-unset}"
echo "job name: $TRAINING_JOB_NAME"
hyperparameters=$(< /opt/ml/input/config/hyperparameters.json)
echo "hyperparameters: $hyperparameters"
read -r first < /opt/ml/input/data/train/data.csv
echo "first line: $first"
case "$hyperparameters" in
  *fail*) echo "bad data: line 1 has 3 columns, expected 2" > /opt/ml/output/failure; exit 1;;
esac
if [ -n "${PROBE_PORT:-}" ]; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$PROBE_PORT") 2>/dev/null; then
    echo "network: reachable"
  else
    echo "network: unreachable"; exit 3
  fi
fi
if (echo x > /usr/written) 2>/dev/null; then echo "the root is writable"; exit 4; fi
echo scratch > /tmp/scratch && echo scratch > /dev/shm/scratch && echo "tmp and shm are writable"
echo "model from $first" > /opt/ml/model/model.txt
echo "loss: 0.25"
"""

WHOAMI_SH = b"""#!/bin/bash
echo "uid $UID gid ${GROUPS[0]}"
echo mine > /opt/ml/model/owned.txt
"""

PASSWD = b"root:x:0:0::/root:/bin/bash\napp:x:1234:4321::/:/bin/bash\n"

MAIN_PY = b"""
import http.server, json, os, sys

def train():
    with open("/opt/ml/input/data/train/data.csv") as f:
        rows = f.read().split()
    with open("/opt/ml/model/model.json", "w") as f:
        json.dump({"rows": len(rows)}, f)
    print("trained on", len(rows), "rows", flush=True)

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ping":
            self.answer(200, b"{}")
        else:
            self.answer(404, b"{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if body.startswith(b"probe:"):  # can this container reach the host's loopback?
            import socket
            try:
                socket.create_connection(("10.0.2.2", int(body[6:])), 5).close()
                return self.answer(200, b"reachable", "text/plain")
            except OSError:
                return self.answer(200, b"unreachable", "text/plain")
        with open("/opt/ml/model/model.json") as f:
            model = json.load(f)
        lines = body.decode().splitlines()
        answer = "\\n".join(f"{model['rows']},{line.upper()}" for line in lines)
        self.answer(200, answer.encode(), "text/csv")

    def log_message(self, *args):
        pass

def serve():
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    print("serving on", port, flush=True)
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()

{"train": train, "serve": serve}[sys.argv[1]]()
"""


@pytest.fixture(scope="session")
def image_layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("byoc-images")
    app = [Entry("work", folder=True), Entry("app", folder=True)]
    shell = Image(
        [shell_files(), [*app, Entry("app/train.sh", TRAIN_SH, 0o755)]],
        {
            "Entrypoint": ["/bin/bash", "/app/train.sh"],
            "Cmd": ["ignored"],
            "Env": ["IMAGE_VARIABLE=from-the-image", "PATH=/usr/bin:/bin"],
            "WorkingDir": "/work",
        },
    )
    files, interpreter = python_files()
    python = Image(
        [files, [*app, Entry("app/main.py", MAIN_PY)]],
        {"Entrypoint": [interpreter, "/app/main.py"], "ExposedPorts": {"8080/tcp": {}}},
        gzip_layers=False,
    )
    user = Image(
        [shell_files(), [*app, Entry("etc", folder=True),
                         Entry("etc/passwd", PASSWD),
                         Entry("etc/group", b"root:x:0:\ngrp:x:4321:\n"),
                         Entry("app/whoami.sh", WHOAMI_SH, 0o755)]],
        {"Entrypoint": ["/bin/bash", "/app/whoami.sh"], "User": "app:grp"},
    )  # fmt: skip
    build_layout(base / "shell", shell, SHELL_IMAGE)
    build_layout(base / "python", python, "byoc/python:1")
    build_layout(base / "user", user, USER_IMAGE)
    return {"shell": base / "shell", "python": base / "python", "user": base / "user"}


@pytest.fixture(scope="module")
def byoc(
    tmp_path_factory: pytest.TempPathFactory, image_layouts: dict[str, Path]
) -> Iterator[Clients]:
    home = tmp_path_factory.mktemp("opensage-home-byoc")
    os.environ[HOST_SECRET] = "leaked"  # the server's environment; no image may see it
    store = ImageStore(home / "images")
    for layout in image_layouts.values():
        load(store, layout)
    embedded = EmbeddedServer(settings_for(home, "process")).start()
    clients = make_clients(embedded.endpoint_url, "process", home)
    clients.s3.create_bucket(Bucket="byoc")
    clients.s3.put_object(Bucket="byoc", Key="train/data.csv", Body=b"a,1\nb,2\nc,3\n")
    yield clients
    embedded.stop()
    os.environ.pop(HOST_SECRET, None)


def _train(clients: Clients, name: str, image: str, **extra: Any) -> dict[str, Any]:
    spec = {"TrainingImage": image, "TrainingInputMode": "File", **extra.pop("algorithm", {})}
    clients.sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification=spec,
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://byoc/train/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://byoc/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 300},
        **extra,
    )
    return wait_final(clients, name)


def _model_files(clients: Clients, desc: dict[str, Any]) -> dict[str, bytes]:
    bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    data = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_a_shell_image_trains_under_the_contract(byoc: Clients) -> None:
    desc = _train(
        byoc,
        "byoc-shell",
        SHELL_IMAGE,
        HyperParameters={"depth": "3"},
        Environment={"JOB_VARIABLE": "from-the-job"},
        algorithm={"MetricDefinitions": [{"Name": "train:loss", "Regex": "loss: ([0-9.]+)"}]},
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    log = "\n".join(log_messages(byoc, "byoc-shell"))
    assert "argv: train" in log  # `train` replaces the image's Cmd
    assert "cwd: /work" in log
    assert "image variable: from-the-image" in log
    assert "job variable: from-the-job" in log
    assert "host variable: unset" in log  # nothing of the host's environment leaks in
    assert "job name: byoc-shell" in log
    assert 'hyperparameters: {"depth": "3"}' in log
    assert "first line: a,1" in log
    assert "tmp and shm are writable" in log
    assert _model_files(byoc, desc) == {"model.txt": b"model from a,1\n"}
    assert desc["FinalMetricDataList"][0]["MetricName"] == "train:loss"
    assert desc["FinalMetricDataList"][0]["Value"] == pytest.approx(0.25)


def test_the_failure_file_becomes_the_failure_reason(byoc: Clients) -> None:
    desc = _train(byoc, "byoc-fail", SHELL_IMAGE, HyperParameters={"fail": "yes"})
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"] == "AlgorithmError: bad data: line 1 has 3 columns, expected 2"


def test_container_arguments_replace_train_and_an_entrypoint_replaces_the_images(
    byoc: Clients,
) -> None:
    desc = _train(byoc, "byoc-args", SHELL_IMAGE, algorithm={"ContainerArguments": ["fit", "x"]})
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert "argv: fit x" in "\n".join(log_messages(byoc, "byoc-args"))
    desc = _train(
        byoc,
        "byoc-entrypoint",
        SHELL_IMAGE,
        algorithm={"ContainerEntrypoint": ["/bin/bash", "-c", 'echo "own entry $0 $1"; exit 7']},
    )
    assert desc["TrainingJobStatus"] == "Failed"
    assert "own entry" in "\n".join(log_messages(byoc, "byoc-entrypoint"))
    assert desc["FailureReason"].endswith("exit code: 7")


@pytest.mark.parametrize(("isolated", "expected"), [(True, "unreachable"), (False, "reachable")])
def test_network_isolation_takes_the_network_away(
    byoc: Clients, host_listener: int, isolated: bool, expected: str
) -> None:
    name = f"byoc-net-{'isolated' if isolated else 'open'}"
    desc = _train(
        byoc,
        name,
        SHELL_IMAGE,
        Environment={"PROBE_PORT": str(host_listener)},
        EnableNetworkIsolation=isolated,
    )
    assert f"network: {expected}" in "\n".join(log_messages(byoc, name))
    assert desc["TrainingJobStatus"] == ("Failed" if isolated else "Completed")


def test_the_images_user_runs_the_program(byoc: Clients) -> None:
    desc = _train(byoc, "byoc-user", USER_IMAGE)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert "uid 1234 gid 4321" in "\n".join(log_messages(byoc, "byoc-user"))
    assert _model_files(byoc, desc) == {"owned.txt": b"mine\n"}


def test_an_unknown_image_is_refused_with_what_to_do(byoc: Clients) -> None:
    with pytest.raises(ClientError) as info:
        _train(byoc, "byoc-unknown", "localhost:5000/nobody/here:1")
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "not in opensage's image store" in error["Message"]
    assert "opensage images load" in error["Message"]


def test_an_image_serves_an_endpoint_and_a_batch_transform(byoc: Clients) -> None:
    desc = _train(byoc, "byoc-python", PYTHON_IMAGE)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert json.loads(_model_files(byoc, desc)["model.json"]) == {"rows": 3}
    sm = byoc.sagemaker
    sm.create_model(
        ModelName="byoc-python",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": PYTHON_IMAGE,
            "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"],
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName="byoc-python",
        ProductionVariants=[
            {
                "VariantName": "main",
                "ModelName": "byoc-python",
                "InitialInstanceCount": 2,  # two instances, both on port 8080, side by side
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName="byoc-python", EndpointConfigName="byoc-python")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="byoc-python", WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
    )
    for _ in range(4):
        answer = byoc.runtime_client.invoke_endpoint(
            EndpointName="byoc-python", Body=b"hello\nworld", ContentType="text/csv"
        )
        assert answer["Body"].read() == b"3,HELLO\n3,WORLD"
    sm.delete_endpoint(EndpointName="byoc-python")

    byoc.s3.put_object(Bucket="byoc", Key="batch/in.csv", Body=b"x\ny\nz\n")
    sm.create_transform_job(
        TransformJobName="byoc-python",
        ModelName="byoc-python",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://byoc/batch/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": "s3://byoc/batch-out/", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )

    def finished() -> dict[str, Any] | None:
        job = sm.describe_transform_job(TransformJobName="byoc-python")
        return job if job["TransformJobStatus"] in ("Completed", "Failed", "Stopped") else None

    job = wait_for(finished, timeout=120, what="the transform job")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    out = byoc.s3.get_object(Bucket="byoc", Key="batch-out/in.csv.out")["Body"].read()
    assert out.split() == [b"3,X", b"3,Y", b"3,Z"]


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns is not installed")
@pytest.mark.parametrize(("isolated", "expected"), [(True, b"unreachable"), (False, b"reachable")])
def test_a_model_server_has_the_network_unless_isolated(
    byoc: Clients, host_listener: int, isolated: bool, expected: bytes
) -> None:
    name = f"byoc-netmodel-{'isolated' if isolated else 'open'}"
    desc = _train(byoc, name, PYTHON_IMAGE)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    sm = byoc.sagemaker
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": PYTHON_IMAGE,
            "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"],
        },
        EnableNetworkIsolation=isolated,
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "main", "ModelName": name,
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
    )
    answer = byoc.runtime_client.invoke_endpoint(
        EndpointName=name, Body=f"probe:{host_listener}".encode(), ContentType="text/csv"
    )
    assert answer["Body"].read() == expected
    sm.delete_endpoint(EndpointName=name)


def test_the_unpacked_root_is_cached_per_image(byoc: Clients) -> None:
    """Every job above ran on one of two unpacked roots: one per image, however many runs."""
    assert byoc.home is not None
    store = ImageStore(byoc.home / "images")
    roots = sorted(p.name for p in store.roots.iterdir())
    used = (SHELL_IMAGE, PYTHON_IMAGE, USER_IMAGE)
    ids = sorted(store.resolve(i).id.removeprefix("sha256:") for i in used)
    assert roots == ids
    shell = store.resolve(SHELL_IMAGE)
    assert store.root_of(shell) == store.roots / shell.id.removeprefix("sha256:")
    assert sorted(p.name for p in store.roots.iterdir()) == ids  # nothing unpacked again
