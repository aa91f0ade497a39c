"""The CLI: usage errors, not tracebacks; jobs commands against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Clients, python_job, wait_final


def opensage(*args: str, endpoint: str | None = None, home: Path | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    if endpoint:
        env["OPENSAGE_ENDPOINT"] = endpoint
    if home:
        env["OPENSAGE_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "opensage.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_server_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    code, output = opensage("server", "--host", "0.0.0.0", "--port", "1", home=tmp_path)
    assert code == 1
    assert "Refusing to listen on 0.0.0.0" in output
    assert "Traceback" not in output


def test_jobs_commands(server: Clients) -> None:
    python_job(server, "cli-job", "print('from the cli job')")
    wait_final(server, "cli-job")
    code, output = opensage("jobs", "list", endpoint=server.endpoint)
    assert code == 0
    assert "cli-job" in output
    code, output = opensage("jobs", "logs", "cli-job", endpoint=server.endpoint)
    assert (code, output.strip()) == (0, "from the cli job")
    code, output = opensage("jobs", "describe", "cli-job", endpoint=server.endpoint)
    assert code == 0
    assert '"TrainingJobStatus": "Completed"' in output
    python_job(server, "cli-stop", "import time; time.sleep(300)")
    code, output = opensage("jobs", "stop", "cli-stop", endpoint=server.endpoint)
    assert (code, output.strip()) == (0, "Stopping cli-stop")
    assert wait_final(server, "cli-stop")["TrainingJobStatus"] == "Stopped"
    code, output = opensage("jobs", "describe", "missing-job", endpoint=server.endpoint)
    assert code == 1
    assert output.strip() == "opensage: ValidationException: Requested resource not found."


def test_unreachable_server_is_a_usage_error() -> None:
    code, output = opensage("jobs", "list", endpoint="http://127.0.0.1:9")
    assert code == 1
    assert "cannot reach the server" in output
    assert "Traceback" not in output


def test_one_server_per_home(tmp_path: Path) -> None:
    from opensage.app import EmbeddedServer, HomeInUseError
    from tests.integration.conftest import settings_for

    first = EmbeddedServer(settings_for(tmp_path)).start()
    try:
        code, output = opensage("server", "--port", "1", home=tmp_path)
        assert code == 1
        assert f"{tmp_path} is in use by another opensage server (pid {os.getpid()})" in output
        with pytest.raises(HomeInUseError):
            EmbeddedServer(settings_for(tmp_path)).start()
    finally:
        first.stop()
    second = EmbeddedServer(settings_for(tmp_path)).start()  # free again once the first stopped
    second.stop()
