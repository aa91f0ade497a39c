"""Killing the server mid-job never leaves the job InProgress forever."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.integration.conftest import (
    ServerProcess,
    python_job,
    wait_final,
    wait_for,
)

JOB = "import time; print('working', flush=True); time.sleep(4); print('finished', flush=True)"


def test_restart_reattaches_a_running_job(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    clients = server.start()
    clients.s3.create_bucket(Bucket="data")
    python_job(clients, "survivor", JOB)
    wait_for(
        lambda: (
            clients.sagemaker.describe_training_job(TrainingJobName="survivor")["SecondaryStatus"]
            == "Training"
        ),
        what="training to start",
    )
    server.kill()
    clients = server.start()
    desc = wait_final(clients, "survivor")
    assert desc["TrainingJobStatus"] == "Completed"
    group = "/aws/sagemaker/TrainingJobs"
    (stream,) = clients.logs.describe_log_streams(logGroupName=group)["logStreams"]
    events = clients.logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
    )["events"]
    assert [e["message"] for e in events] == ["working", "finished"]
    server.kill()


def test_restart_fails_a_job_whose_program_vanished(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    clients = server.start()
    clients.s3.create_bucket(Bucket="data")
    python_job(clients, "orphan", "import time; time.sleep(60)")
    run_dir = tmp_path / "jobs" / "orphan" / "run"
    wait_for(lambda: (run_dir / "child.pid").exists(), what="the program to start")
    server.kill()
    # While the server is down, the job's shim and program die without leaving an exit status.
    os.kill(int((run_dir / "shim.pid").read_text()), signal.SIGKILL)
    os.killpg(int((run_dir / "child.pid").read_text()), signal.SIGKILL)
    clients = server.start()
    desc = wait_final(clients, "orphan")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "server was down" in desc["FailureReason"]
    server.kill()
