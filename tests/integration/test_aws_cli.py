"""The AWS CLI against a real opensage server with `--endpoint-url`: `aws s3` (mb, cp with a
multipart upload, ls, sync, rm, rb), `aws sagemaker` training jobs, and `aws sagemaker-runtime
invoke-endpoint`. The CLI is a separate program, run as users run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PYTHON_IMAGE, ROLE, Clients, aws_user_env, log_messages
from tests.integration.hosting import delete, deploy, variant, xgboost_model

AWS = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
pytestmark = pytest.mark.skipif(AWS is None, reason="the AWS CLI (pip awscli) is not installed")


@pytest.fixture(scope="module")
def cli_server(process_server: Clients) -> Clients:
    process_server.s3.create_bucket(Bucket="data")
    return process_server


def aws(server: Clients, *args: str, cwd: Path | None = None) -> str:
    """Run `aws --endpoint-url <server> ARGS` with throwaway credentials; its stdout."""
    assert AWS is not None
    assert server.home is not None
    env = aws_user_env(server.home)  # no AWS_ENDPOINT_URL: the flag alone must find the server
    done = subprocess.run(
        [AWS, "--endpoint-url", server.endpoint, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"aws {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def test_aws_s3_commands(cli_server: Clients, tmp_path: Path) -> None:
    big = os.urandom(9 * 1024 * 1024 + 17)  # over the CLI's 8 MiB threshold: multipart
    (tmp_path / "big.bin").write_bytes(big)
    tree = tmp_path / "tree"
    (tree / "sub dir").mkdir(parents=True)
    (tree / "a.csv").write_text("1,2\n")
    (tree / "sub dir" / "b+c.txt").write_text("hello")

    aws(cli_server, "s3", "mb", "s3://cli-bucket")
    aws(cli_server, "s3", "cp", str(tmp_path / "big.bin"), "s3://cli-bucket/blobs/big.bin")
    aws(cli_server, "s3", "sync", str(tree), "s3://cli-bucket/tree")
    listing = aws(cli_server, "s3", "ls", "--recursive", "s3://cli-bucket/")
    keys = sorted(line.split(maxsplit=3)[3] for line in listing.splitlines())
    assert keys == ["blobs/big.bin", "tree/a.csv", "tree/sub dir/b+c.txt"]
    assert "PRE sub dir/" in aws(cli_server, "s3", "ls", "s3://cli-bucket/tree/")

    second = aws(cli_server, "s3", "sync", str(tree), "s3://cli-bucket/tree")
    assert second.strip() == ""  # nothing changed: sync compares sizes and times, copies none

    back = tmp_path / "back"
    aws(cli_server, "s3", "cp", "--recursive", "s3://cli-bucket/", str(back))
    assert (back / "blobs" / "big.bin").read_bytes() == big
    assert (back / "tree" / "sub dir" / "b+c.txt").read_text() == "hello"

    aws(cli_server, "s3", "rm", "--recursive", "s3://cli-bucket/")
    aws(cli_server, "s3", "rb", "s3://cli-bucket")
    buckets = json.loads(aws(cli_server, "s3api", "list-buckets"))["Buckets"]
    assert "cli-bucket" not in [b["Name"] for b in buckets]


def test_aws_sagemaker_training_job(cli_server: Clients, tmp_path: Path) -> None:
    request: dict[str, Any] = {
        "TrainingJobName": "cli-job",
        "AlgorithmSpecification": {
            "TrainingImage": PYTHON_IMAGE,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": [
                sys.executable,
                "-c",
                "print('loss: 0.5')",
            ],
            "MetricDefinitions": [{"Name": "loss", "Regex": "loss: ([0-9.]+)"}],
        },
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://data/cli-output"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": 1,
            "VolumeSizeInGB": 1,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(request))
    created = json.loads(
        aws(cli_server, "sagemaker", "create-training-job", "--cli-input-json", f"file://{spec}")
    )
    assert created["TrainingJobArn"].endswith(":training-job/cli-job")

    deadline = time.monotonic() + 120
    while True:
        described = json.loads(
            aws(cli_server, "sagemaker", "describe-training-job", "--training-job-name", "cli-job")
        )
        if described["TrainingJobStatus"] in {"Completed", "Failed", "Stopped"}:
            break
        assert time.monotonic() < deadline, "the training job did not finish in time"
    assert described["TrainingJobStatus"] == "Completed", log_messages(cli_server, "cli-job")
    assert described["ModelArtifacts"]["S3ModelArtifacts"].startswith("s3://data/cli-output/")
    assert [m["Value"] for m in described["FinalMetricDataList"]] == [0.5]
    listed = json.loads(
        aws(cli_server, "sagemaker", "list-training-jobs", "--name-contains", "cli-")
    )
    assert [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]] == ["cli-job"]


def test_aws_sagemaker_runtime_invoke_endpoint(cli_server: Clients, tmp_path: Path) -> None:
    model = xgboost_model(cli_server, "cli-model")
    deploy(cli_server, "cli-endpoint", [variant(model)])
    try:
        body = tmp_path / "rows.csv"
        body.write_text("3,0,0,0,0\n-3,0,0,0,0\n")
        out = tmp_path / "out.txt"
        answer = json.loads(
            aws(
                cli_server,
                "sagemaker-runtime",
                "invoke-endpoint",
                "--endpoint-name",
                "cli-endpoint",
                "--content-type",
                "text/csv",
                "--body",
                f"fileb://{body}",
                str(out),
            )
        )
        assert answer["InvokedProductionVariant"] == "AllTraffic"
        scores = [float(v) for v in out.read_text().replace("\n", ",").split(",") if v]
        assert len(scores) == 2
        assert scores[0] > 0.5 > scores[1]
    finally:
        delete(cli_server, "cli-endpoint")
