"""End to end: `python -m opensage.serving serve` as a real process, as the control plane runs it.

Each test writes an `/opt/ml` tree (`SAGEMAKER_BASE_DIR`), starts the server, polls `/ping`
against a deadline, talks HTTP over the Unix socket or TCP port, and stops it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import ServerProcess, Trained, csv_rows

SCRIPT = """
    import json

    def model_fn(model_dir):
        return {"offset": 10}

    def input_fn(body, content_type):
        return json.loads(body)["values"]

    def predict_fn(data, model):
        if data == ["boom"]:
            raise RuntimeError("the model cannot take boom")
        return [v + model["offset"] for v in data]

    def output_fn(prediction, accept, context):
        context.set_response_custom_attributes("got=" + str(context.custom_attributes))
        return json.dumps({"results": prediction}), "application/json"
"""


def start(
    servers: list[ServerProcess], base: Path, env: dict[str, str], sock: str | None
) -> ServerProcess:
    server = ServerProcess(base, env, sock)
    servers.append(server)
    server.wait_ready()
    return server


def stop(server: ServerProcess) -> str:
    server.proc.send_signal(signal.SIGTERM)
    code, stderr = server.finish()
    assert code == 0, stderr
    return stderr


def write_script(base: Path, source: str, requirements: bool = False) -> Path:
    code = base / "model" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(textwrap.dedent(source))
    if requirements:
        (code / "requirements.txt").write_text("left-pad==1.0\n")
    return code


def test_xgboost_over_a_unix_socket(
    binary: Trained, tmp_path: Path, short_dir: Path, servers: list[ServerProcess]
) -> None:
    binary.write(tmp_path / "model")
    sock = str(short_dir / "serving.sock")
    env = {
        "OPENSAGE_SERVING_HANDLER": "xgboost",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
    }
    server = start(servers, tmp_path, env, sock)

    rows = binary.x[:2]
    reply = server.request("POST", "/invocations", csv_rows(rows), {"Content-Type": "text/csv"})
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/csv"
    served = [float(v) for v in reply.body.decode().splitlines()]
    np.testing.assert_allclose(served, binary.expected(rows), rtol=1e-6)

    reply = server.request(
        "POST",
        "/invocations",
        csv_rows(rows[:1]),
        {"Content-Type": "text/csv", "Accept": "application/json"},
    )
    assert json.loads(reply.body)["predictions"][0]["score"] == pytest.approx(served[0])

    reply = server.request("POST", "/invocations", b"\x89PNG", {"Content-Type": "image/png"})
    assert reply.status == 415
    assert b"image/png" in reply.body
    reply = server.request("POST", "/invocations", b"1,2", {"Content-Type": "text/csv"})
    assert reply.status == 415
    assert reply.body.startswith(b"Feature size of csv inference data 2")
    big = b"1" * (1024 * 1024 + 1)
    assert server.request("POST", "/invocations", big, {"Content-Type": "text/csv"}).status == 413
    params = server.request("GET", "/execution-parameters")
    assert json.loads(params.body) == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    assert server.request("GET", "/models").status == 404

    stop(server)
    assert not os.path.exists(sock)  # removed on the way out


def test_xgboost_over_tcp_in_batch_mode(
    regression: Trained, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    regression.write(tmp_path / "model")
    env = {"OPENSAGE_SERVING_HANDLER": "xgboost", "SAGEMAKER_BATCH": "true"}
    server = start(servers, tmp_path, env, None)
    rows = regression.x[:3]
    reply = server.request("POST", "/invocations", csv_rows(rows), {"Content-Type": "text/csv"})
    assert reply.status == 200
    lines = reply.body.decode().split("\n")
    assert lines[-1] == ""
    np.testing.assert_allclose([float(v) for v in lines[:-1]], regression.expected(rows), rtol=1e-6)
    assert server.request("POST", "/invocations", b"", {"Content-Type": "text/csv"}).status == 204
    stop(server)


def test_user_script_over_a_unix_socket(
    tmp_path: Path, short_dir: Path, servers: list[ServerProcess]
) -> None:
    code = write_script(tmp_path, SCRIPT, requirements=True)
    sock = str(short_dir / "s.sock")
    server = start(servers, tmp_path, {"SAGEMAKER_PROGRAM": "inference.py"}, sock)

    headers = {"Content-Type": "application/json", "X-Amzn-SageMaker-Custom-Attributes": "k=v"}
    reply = server.request("POST", "/invocations", b'{"values": [1, 2]}', headers)
    assert reply.status == 200
    assert json.loads(reply.body) == {"results": [11, 12]}
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["x-amzn-sagemaker-custom-attributes"] == "got=k=v"

    reply = server.request("POST", "/invocations", b'{"values": ["boom"]}', headers)
    assert reply.status == 500
    message, trace = reply.body.decode().split("\n", 1)
    assert message == "the model cannot take boom"
    assert "Traceback" in trace
    assert server.request("GET", "/execution-parameters").status == 404

    stderr = stop(server)
    assert "requirements.txt" in stderr
    assert "platform's Python environment" in stderr
    assert not (code / "__pycache__").exists()  # nothing written into the model directory


@pytest.mark.parametrize(
    ("env", "script", "expected"),
    [
        ({}, "def model_fn(model_dir):\n    raise ValueError('weights are corrupt')\n",
         "ValueError: weights are corrupt"),
        ({}, "import not_a_module_anywhere\n", "No module named 'not_a_module_anywhere'"),
        ({}, None, "Please provide a model_fn implementation"),
        ({"OPENSAGE_SERVING_HANDLER": "xgboost"}, None, "No XGBoost model file 'xgboost-model'"),
        ({"OPENSAGE_SERVING_HANDLER": "nope"}, None,
         "OPENSAGE_SERVING_HANDLER='nope' names no built-in serving handler"),
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "x"}, None, "is not an integer"),
    ],
    ids=["model-fn-raises", "import-fails", "no-script", "no-model", "unknown-handler", "bad-env"],
)  # fmt: skip
def test_start_up_failures_exit_1_and_say_why_last(
    tmp_path: Path, env: dict[str, str], script: str | None, expected: str
) -> None:
    (tmp_path / "model").mkdir()
    if script is not None:
        write_script(tmp_path, script)
    server = ServerProcess(tmp_path, env)
    code, stderr = server.finish()
    assert code == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("opensage.serving: ")
    assert expected in last, stderr


def test_anything_but_serve_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opensage.serving", "train"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "usage: python -m opensage.serving serve"
