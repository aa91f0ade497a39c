"""`SAGEMAKER_MODEL_SERVER_WORKERS` above 1: worker processes behind one front end, for real.

The script's model is its worker's pid, and its predictions wait at a barrier of files until as
many requests as workers have arrived, so a test passes only if that many requests really are
in different processes at the same time (one process serving them in turn would never pass the
barrier and would answer 500 when its deadline runs out).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import ServerProcess
from tests.serving.test_server_process import start, stop, write_script

BARRIER_SCRIPT = """
    import json, os, time
    from pathlib import Path

    def model_fn(model_dir):
        return os.getpid()

    def input_fn(body, content_type):
        return json.loads(body)

    def predict_fn(data, pid):
        if data.get("exit"):
            os._exit(3)
        barrier = Path(data["barrier"])
        (barrier / f"{pid}-{data['n']}").touch()
        deadline = time.monotonic() + 60
        while len(list(barrier.iterdir())) < data["parties"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the other requests never arrived")
            time.sleep(0.01)
        names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        threads = {name: os.environ.get(name) for name in names}
        return {"pid": pid, "n": data["n"], "threads": threads}

    def output_fn(prediction, accept):
        return json.dumps(prediction), "application/json"
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited: its parent has not reaped it yet
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: set[int], deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        time.sleep(0.05)


def concurrent_answers(server: ServerProcess, barrier: Path, parties: int) -> list[dict[str, Any]]:
    """`parties` requests at once, each on its own connection; their JSON answers."""
    barrier.mkdir()
    answers: list[dict[str, Any]] = []

    def ask(n: int) -> None:
        body = json.dumps({"barrier": str(barrier), "parties": parties, "n": n}).encode()
        reply = server.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        assert reply.status == 200, reply.body
        answers.append(json.loads(reply.body))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(answers) == parties
    return sorted(answers, key=lambda answer: answer["n"])


@pytest.fixture
def script_dir(tmp_path: Path) -> Path:
    write_script(tmp_path, BARRIER_SCRIPT)
    return tmp_path


def test_requests_run_side_by_side_in_worker_processes(
    script_dir: Path, short_dir: Path, servers: list[ServerProcess]
) -> None:
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "3"}
    server = start(servers, script_dir, env, str(short_dir / "s.sock"))

    first = concurrent_answers(server, short_dir / "first", 3)
    pids = {answer["pid"] for answer in first}
    assert len(pids) == 3
    assert server.proc.pid not in pids
    # Each worker's native thread pools get its share of the CPUs; a value already set stays.
    share = str(max(1, (os.cpu_count() or 1) // 3))
    for answer in first:
        assert answer["threads"]["OMP_NUM_THREADS"] == "1"  # set by ServerProcess
        assert answer["threads"]["OPENBLAS_NUM_THREADS"] == os.environ.get(
            "OPENBLAS_NUM_THREADS", share
        )
    # Again, on new connections: the same three processes, each still holding one request.
    again = concurrent_answers(server, short_dir / "again", 3)
    assert {answer["pid"] for answer in again} == pids
    assert server.request("GET", "/ping").status == 200

    stderr = stop(server)  # SIGTERM to the front end alone: the workers leave with it
    assert "with 3 worker processes" in stderr
    wait_gone(pids)


def test_a_worker_that_dies_stops_the_server_with_exit_1(
    script_dir: Path, short_dir: Path, servers: list[ServerProcess]
) -> None:
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    server = start(servers, script_dir, env, str(short_dir / "s.sock"))
    pids = {answer["pid"] for answer in concurrent_answers(server, short_dir / "b", 2)}

    reply = server.request(
        "POST", "/invocations", b'{"exit": true}', {"Content-Type": "application/json"}
    )
    assert reply.status == 500
    assert b"exited during the request" in reply.body
    code, stderr = server.finish()
    assert code == 1
    assert "exited with code 3; stopping the model server" in stderr
    wait_gone(pids)


def test_workers_leave_when_the_front_end_is_killed(
    script_dir: Path, short_dir: Path, servers: list[ServerProcess]
) -> None:
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    server = start(servers, script_dir, env, str(short_dir / "s.sock"))
    pids = {answer["pid"] for answer in concurrent_answers(server, short_dir / "b", 2)}
    server.proc.send_signal(signal.SIGKILL)
    server.finish()
    wait_gone(pids)


def test_a_worker_that_cannot_load_fails_the_start_and_says_why_last(tmp_path: Path) -> None:
    write_script(
        tmp_path, "def model_fn(model_dir):\n    raise ValueError('weights are corrupt')\n"
    )
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    server = ServerProcess(tmp_path, env)
    code, stderr = server.finish()
    assert code == 1, stderr
    assert stderr.strip().splitlines()[-1] == (
        "opensage.serving: could not load the model: ValueError: weights are corrupt"
    )
    assert "Traceback" in stderr
