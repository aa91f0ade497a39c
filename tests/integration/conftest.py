"""Integration fixtures: the real server (embedded on a thread, or a real process), real boto3.

With OPENSAGE_TEST_BACKENDS=postgres,s3 (either or both) every server these tests start keeps
its metadata in a fresh PostgreSQL database and its objects in an S3 service (moto), one of each
per server home; see tests/backends.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from opensage.app import EmbeddedServer, free_port
from opensage.settings import Settings
from opensage.storage import ObjectStorage
from opensage.storage import from_url as storage_from_url
from tests import backends

ROLE = "arn:aws:iam::123456789012:role/opensage-test"
PYTHON_IMAGE = "opensage/python:3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
FINAL = {"Completed", "Failed", "Stopped"}


@dataclass
class Clients:
    endpoint: str
    sagemaker: Any
    s3: Any
    logs: Any
    runtime: str = "auto"
    home: Path | None = None
    runtime_client: Any = None
    autoscaling: Any = None
    cloudwatch: Any = None


def make_clients(endpoint: str, runtime: str = "auto", home: Path | None = None) -> Clients:
    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    return Clients(
        endpoint,
        client("sagemaker"),
        client("s3"),
        client("logs"),
        runtime,
        home,
        client("sagemaker-runtime"),
        client("application-autoscaling"),
        client("cloudwatch"),
    )


def settings_for(home: Path, runtime: str = "auto") -> Settings:
    chosen = backends.for_home(home)
    return Settings(
        home=home,
        database=chosen.database,
        storage=chosen.storage,
        port=free_port(),
        runtime=runtime,
        stop_grace_seconds=3,
        poll_interval_seconds=0.05,
        checkpoint_sync_seconds=0.5,
        health_interval_seconds=0.2,
        metrics_flush_seconds=0.5,
        autoscaling_period_seconds=1.0,
        autoscaling_scale_in_points=3,
    )


def backend_env(home: Path) -> dict[str, str]:
    """The environment that gives an `opensage` process started on `home` the same backends."""
    return backends.for_home(home).env()


def storage_for(home: Path) -> ObjectStorage:
    """The object store the servers of `home` use, for tests that look at stored objects."""
    return storage_from_url(backends.for_home(home).storage, home / "storage")


def pytest_report_header() -> str:
    return str(backends.describe())


@pytest.fixture(scope="module", autouse=True)
def _release_backends() -> Iterator[None]:
    """A module's S3 servers stop when the module is done (its servers have stopped by then)."""
    before = backends.homes()
    yield
    backends.release(backends.homes() - before)


has_bwrap = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(not has_bwrap, reason="bubblewrap is not installed")


# The runtimes the `server` fixture runs each test under. The backends run (make test-backends)
# takes the process runtime alone: it tests the store and the storage, which do not depend on it.
RUNTIMES = os.environ.get("OPENSAGE_TEST_RUNTIMES", "sandbox,process").split(",")


@pytest.fixture(scope="module", params=RUNTIMES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clients]:
    """The real server, once per runtime: every test using it runs under both."""
    runtime = request.param
    if runtime == "sandbox" and not has_bwrap:
        pytest.skip("bubblewrap is not installed")
    home = tmp_path_factory.mktemp(f"opensage-home-{runtime}")
    embedded = EmbeddedServer(settings_for(home, runtime)).start()
    clients = make_clients(embedded.endpoint_url, runtime, home)
    clients.s3.create_bucket(Bucket="data")
    yield clients
    embedded.stop()


@pytest.fixture(scope="module")
def process_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    """One server under the process runtime, for a module whose tests do not depend on the
    runtime (the S3 API, the AWS CLI, the SDKs, the README's snippets); no buckets made."""
    home = tmp_path_factory.mktemp("opensage-home-process")
    embedded = EmbeddedServer(settings_for(home, "process")).start()
    yield make_clients(embedded.endpoint_url, "process", home)
    embedded.stop()


def aws_user_env(home: Path, endpoint: str | None = None) -> dict[str, str]:
    """The environment of a user's AWS program: this one's without AWS_* or OPENSAGE_*,
    throwaway credentials, no AWS config files, HOME at `home`, and the SageMaker SDK's telemetry
    off (an air-gapped user's setting: it would call AWS). With `endpoint`, AWS_ENDPOINT_URL
    points every client at it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENSAGE_"))}
    config = home / "sagemaker-config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\n"
        "SageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        HOME=str(home),
        SAGEMAKER_USER_CONFIG_OVERRIDE=str(config),
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
    )
    if endpoint is not None:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def wait_for(
    check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `check` until it returns a truthy value (synchronisation with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(interval)


def wait_final(clients: Clients, name: str, timeout: float = 90.0) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        desc = clients.sagemaker.describe_training_job(TrainingJobName=name)
        return desc if desc["TrainingJobStatus"] in FINAL else None

    return dict(wait_for(final, timeout, what=f"{name} to finish"))


def python_job(
    clients: Clients,
    name: str,
    code: str,
    *,
    channels: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Create a job that runs `python3 -c code` in the opensage/python image."""
    spec = {
        "TrainingImage": PYTHON_IMAGE,
        "TrainingInputMode": "File",
        "ContainerEntrypoint": [sys.executable, "-c", code],
        **extra.pop("algorithm", {}),
    }
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": spec,
        "OutputDataConfig": {"S3OutputPath": "s3://data/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        **extra,
    }
    if channels:
        request["InputDataConfig"] = channels
    return dict(clients.sagemaker.create_training_job(**request))


def s3_channel(name: str, uri: str, content_type: str | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }
    if content_type:
        channel["ContentType"] = content_type
    return channel


class ServerProcess:
    """`opensage server` as a real process, so a test can kill it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Clients:
        env = {
            **os.environ,
            "OPENSAGE_HOME": str(self.home),
            "OPENSAGE_STOP_GRACE_SECONDS": "3",
            **backend_env(self.home),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opensage.cli.main", "server", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        clients = make_clients(self.endpoint, home=self.home)

        def ready() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, "server exited"
            try:
                clients.sagemaker.list_training_jobs()
            except Exception:
                return False
            return True

        wait_for(ready, 30, 0.1, "the server to answer")
        return clients

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        """A graceful stop (SIGTERM), as Ctrl-C or a service manager would."""
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(60)

    def ensure_stopped(self) -> None:
        """For `finally:` blocks: a failed test must not leave a server running."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def log_messages(clients: Clients, job: str) -> list[str]:
    """Every log line of a job, read through the CloudWatch Logs client."""
    group = "/aws/sagemaker/TrainingJobs"
    streams = clients.logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")
    messages: list[str] = []
    for stream in streams["logStreams"]:
        page = clients.logs.get_log_events(
            logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
        )
        messages += [event["message"] for event in page["events"]]
    return messages


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP server on the host's loopback that accepts and closes connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
                conn.close()
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join()
    listener.close()
