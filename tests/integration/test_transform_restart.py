"""A transform job survives the server dying mid-job: the next server runs it again, whole."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import ROLE, ServerProcess, wait_for
from tests.integration.hosting import script_container, upload
from tests.integration.test_transform import (
    ECHO,
    completed,
    create_job,
    csv_answer,
    csv_rows,
    read,
    transform_server_pids,
)


def requests_logged(home: Path, job: str) -> int:
    """How many requests the job's model servers have logged so far."""
    return sum(
        log.read_text(errors="replace").count("echo-request")
        for log in home.glob(f"logs/transform-jobs/{job}/**/output.log")
    )


def test_a_job_killed_with_the_server_runs_again_and_completes(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        clients = server.start()
        clients.s3.create_bucket(Bucket="data")
        container = script_container(clients, "echo", ECHO)
        container["Environment"]["ECHO_SLEEP"] = "0.05"
        clients.sagemaker.create_model(
            ModelName="echo", PrimaryContainer=container, ExecutionRoleArn=ROLE
        )
        rows = {name: csv_rows(first, 40) for name, first in (("a", 1), ("b", 100))}
        for name, body in rows.items():
            upload(clients, f"restart/in/{name}.csv", body)
        create_job(
            clients,
            "restart",
            "echo",
            "s3://data/restart/in/",
            "s3://data/restart/out",
            BatchStrategy="SingleRecord",  # one request per row: the job takes a while
        )
        wait_for(lambda: requests_logged(tmp_path, "restart") >= 3, 60, what="requests")

        server.kill()  # mid-job; the tethered model servers stop by themselves
        wait_for(lambda: not transform_server_pids(tmp_path, "restart"), 30, what="servers")

        clients = server.start()
        completed(clients, "restart")
        for name, body in rows.items():  # one request per row: each answers for one line
            expected = b"".join(csv_answer(line) + b"\n" for line in body.splitlines())
            assert read(clients, f"restart/out/{name}.csv.out") == expected
        wait_for(lambda: not transform_server_pids(tmp_path, "restart"), 30, what="servers")
        server.stop()
    finally:
        server.ensure_stopped()
