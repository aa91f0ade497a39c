"""The sandbox runtime: the real /opt/ml, and network isolation that really isolates."""

from __future__ import annotations

import pytest

from opensage.settings import Settings
from tests.integration.conftest import (
    Clients,
    log_messages,
    needs_bwrap,
    python_job,
    wait_final,
)

pytestmark = needs_bwrap


@pytest.fixture
def sandboxed(server: Clients) -> Clients:
    if server.runtime != "sandbox":
        pytest.skip("a sandbox-only behaviour")
    return server


def test_auto_runtime_is_the_sandbox_with_bwrap() -> None:
    assert Settings(runtime="auto").resolved_runtime() == "sandbox"


def test_job_sees_the_real_opt_ml(sandboxed: Clients) -> None:
    code = (
        "import os, pathlib, json; "
        "assert 'SAGEMAKER_BASE_DIR' not in os.environ; "
        "p = pathlib.Path('/opt/ml/input/config/resourceconfig.json'); "
        "assert json.loads(p.read_text())['current_host'] == 'algo-1'; "
        "open('/usr/opensage-write-test', 'w')"
    )
    python_job(sandboxed, "sandbox-optml", code)
    desc = wait_final(sandboxed, "sandbox-optml")
    # The last statement must fail: the host's root is read-only inside the sandbox.
    assert desc["TrainingJobStatus"] == "Failed"
    output = "\n".join(log_messages(sandboxed, "sandbox-optml"))
    assert "Read-only file system: '/usr/opensage-write-test'" in output
    assert "AssertionError" not in output


@pytest.mark.parametrize(("isolated", "expected"), [(True, "Failed"), (False, "Completed")])
def test_network_isolation(
    sandboxed: Clients, host_listener: int, isolated: bool, expected: str
) -> None:
    server = sandboxed
    name = f"net-{'isolated' if isolated else 'open'}"
    code = f"import socket; socket.create_connection(('127.0.0.1', {host_listener}), 5).close()"
    python_job(server, name, code, EnableNetworkIsolation=isolated)
    desc = wait_final(server, name)
    assert desc["TrainingJobStatus"] == expected, desc.get("FailureReason")
    assert desc["EnableNetworkIsolation"] is isolated
    if isolated:
        assert "ConnectionRefusedError" in "\n".join(log_messages(server, name))


@pytest.mark.parametrize("isolated", [True, False])
def test_endpoint_network_isolation(sandboxed: Clients, host_listener: int, isolated: bool) -> None:
    """An isolated model still answers invocations (over its socket) but reaches nothing."""
    from tests.integration.hosting import delete, deploy, script_container, variant

    name = f"net-model-{'isolated' if isolated else 'open'}"
    container = script_container(
        sandboxed,
        name,
        f"""
        import socket

        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept):
            try:
                socket.create_connection(("127.0.0.1", {host_listener}), 5).close()
            except OSError as exc:
                return type(exc).__name__, "text/plain"
            return "connected", "text/plain"
        """,
    )
    sandboxed.sagemaker.create_model(
        ModelName=name, PrimaryContainer=container, EnableNetworkIsolation=isolated
    )
    deploy(sandboxed, name, [variant(name)])
    runtime = sandboxed.runtime_client
    body = runtime.invoke_endpoint(EndpointName=name, Body=b"{}", ContentType="application/json")
    assert body["Body"].read() == (b"ConnectionRefusedError" if isolated else b"connected")
    delete(sandboxed, name)
