"""The ASGI app driven in-process: routes, status mapping, headers, the payload limit."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from opensage.serving.app import InferenceApp
from opensage.serving.environment import ServingEnvironment
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result


@dataclass
class Echo:
    """A handler that echoes what it was given, or raises what the body asks for."""

    parameters: Mapping[str, object] | None = None
    calls: list[tuple[bytes, str | None, str | None, str | None]] = field(default_factory=list)

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, attributes: str | None
    ) -> Result:
        self.calls.append((body, content_type, accept, attributes))
        if body == b"teapot":
            raise InferenceError(418, "I'm a teapot")
        if body == b"boom":
            raise KeyError("boom")
        if body == b"empty":
            return Result(b"", "text/csv", 204)
        return Result(
            body.upper(), accept or "text/plain", 200, attributes and f"seen {attributes}"
        )

    def execution_parameters(self) -> Mapping[str, object] | None:
        if self.parameters == {"fail": True}:
            raise RuntimeError("cannot tell")
        return self.parameters


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def call(
    app: InferenceApp,
    method: str,
    path: str,
    chunks: tuple[bytes, ...] = (b"",),
    headers: Mapping[str, str] | None = None,
) -> Response:
    return asyncio.run(acall(app, method, path, chunks, headers))


async def acall(
    app: InferenceApp,
    method: str,
    path: str,
    chunks: tuple[bytes, ...] = (b"",),
    headers: Mapping[str, str] | None = None,
) -> Response:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    await app(scope, receive, send)
    start, body = sent
    decoded = {k.decode(): v.decode() for k, v in start["headers"]}
    return Response(start["status"], decoded, body["body"])


@pytest.fixture
def app() -> InferenceApp:
    return InferenceApp(Echo(), workers=2, max_payload_bytes=10)


def test_ping_and_unknown_paths(app: InferenceApp) -> None:
    ping = call(app, "GET", "/ping")
    assert (ping.status, json.loads(ping.body)) == (200, {"status": "Healthy"})
    assert call(app, "GET", "/nope").status == 404
    assert call(app, "POST", "/ping").status == 405
    assert call(app, "GET", "/invocations").status == 405


def test_invocations_pass_the_three_headers_and_return_attributes(app: InferenceApp) -> None:
    headers = {
        "Content-Type": "text/csv",
        "Accept": "application/json",
        "X-Amzn-SageMaker-Custom-Attributes": "a=1",
        "X-Other": "ignored",
    }
    response = call(app, "POST", "/invocations", (b"ab", b"c"), headers)
    assert response.status == 200
    assert response.body == b"ABC"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == "3"
    assert response.headers["x-amzn-sagemaker-custom-attributes"] == "seen a=1"
    assert app.handler.calls[-1] == (b"abc", "text/csv", "application/json", "a=1")  # type: ignore[attr-defined]


def test_handler_errors_become_statuses(app: InferenceApp) -> None:
    teapot = call(app, "POST", "/invocations", (b"teapot",))
    assert (teapot.status, teapot.body) == (418, b"I'm a teapot")
    boom = call(app, "POST", "/invocations", (b"boom",))
    assert boom.status == 500
    message, trace = boom.body.decode().split("\n", 1)
    assert message == "'boom'"
    assert "KeyError" in trace
    empty = call(app, "POST", "/invocations", (b"empty",))
    assert (empty.status, empty.body) == (204, b"")
    assert "content-length" not in empty.headers


def test_payload_limit_is_413(app: InferenceApp) -> None:
    declared = call(app, "POST", "/invocations", (b"x",), {"Content-Length": "11"})
    assert declared.status == 413
    assert declared.body == b"HTTP content length exceeded 10 bytes.\n"
    streamed = call(app, "POST", "/invocations", (b"123456", b"789012"))
    assert streamed.status == 413
    assert call(app, "POST", "/invocations", (b"1234567890",)).status == 200


def test_execution_parameters(app: InferenceApp) -> None:
    assert call(app, "GET", "/execution-parameters").status == 404
    handler = Echo(parameters={"MaxConcurrentTransforms": 2})
    answer = call(InferenceApp(handler), "GET", "/execution-parameters")
    assert (answer.status, json.loads(answer.body)) == (200, {"MaxConcurrentTransforms": 2})
    failing = call(InferenceApp(Echo(parameters={"fail": True})), "GET", "/execution-parameters")
    assert failing.status == 500


def test_ping_is_answered_while_every_worker_is_busy() -> None:
    release = threading.Event()
    started = threading.Event()

    class Busy(Echo):
        def invoke(self, body: bytes, *args: Any) -> Result:
            started.set()
            release.wait(timeout=30)
            return Result(b"done", "text/plain")

    app = InferenceApp(Busy(), workers=1)

    async def scenario() -> tuple[Response, Response]:
        invocation = asyncio.create_task(acall(app, "POST", "/invocations", (b"x",)))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
        pinged = await acall(app, "GET", "/ping")
        assert not invocation.done()  # the only worker is still predicting
        release.set()
        return pinged, await invocation

    pinged, invoked = asyncio.run(scenario())
    assert pinged.status == 200
    assert invoked.body == b"done"
    app.close()


def test_environment_defaults_and_validation(tmp_path: Any) -> None:
    env = ServingEnvironment.from_env({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert env.model_dir == tmp_path / "model"
    assert (env.host, env.port, env.workers, env.socket, env.handler) == (
        "127.0.0.1",
        8080,
        1,
        None,
        None,
    )
    assert env.max_payload_bytes is None
    assert env.batch is False
    env = ServingEnvironment.from_env(
        {
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "2",
            "SAGEMAKER_BATCH": "True",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "4",
            "SAGEMAKER_BIND_TO_PORT": "9000",
        }
    )
    assert (env.max_payload_bytes, env.batch, env.workers, env.port) == (
        2 * 1024 * 1024,
        True,
        4,
        9000,
    )
    with pytest.raises(ValueError, match="SAGEMAKER_MODEL_SERVER_WORKERS='many' is not an integer"):
        ServingEnvironment.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "many"})
    with pytest.raises(ValueError, match="must be at least 1"):
        ServingEnvironment.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "0"})
