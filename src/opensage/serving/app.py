"""The ASGI callable: three routes, a body limit and a thread pool, nothing else.

Plain ASGI rather than a routing framework because the per-request cost is the product here
(it is benchmarked against a minimal FastAPI app). `/ping` is answered on the event loop, so it
stays fast while every worker is busy predicting; `invoke` runs in a `ThreadPoolExecutor` of
`workers` threads (each one waits on a worker process when there are several, see
`opensage.serving.workers`), and every exception is turned into a `Result` in that thread so
the loop only ever writes responses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opensage.serving.errors import status_of
from opensage.serving.handler import CUSTOM_ATTRIBUTES_HEADER, Handler, Result

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("opensage.serving")

_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_PING_BODY = b'{"status": "Healthy"}'
_NO_BODY_STATUSES = frozenset({204, 304})
_CUSTOM_ATTRIBUTES = CUSTOM_ATTRIBUTES_HEADER.lower().encode("latin-1")


class InferenceApp:
    """`GET /ping`, `POST /invocations`, `GET /execution-parameters` over one `Handler`."""

    def __init__(self, handler: Handler, workers: int = 1, max_payload_bytes: int | None = None):
        self.handler = handler
        self.max_payload_bytes = max_payload_bytes
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not part of the contract
        path, method = scope["path"], scope["method"]
        if path == "/invocations":
            if method == "POST":
                await self._invocations(scope, receive, send)
            else:
                await _respond(send, 405, b"Use POST /invocations.\n", _TEXT)
        elif path == "/ping":
            if method in ("GET", "HEAD"):
                await _respond(send, 200, _PING_BODY, _JSON)
            else:
                await _respond(send, 405, b"Use GET /ping.\n", _TEXT)
        elif path == "/execution-parameters" and method == "GET":
            await self._execution_parameters(send)
        else:
            await _respond(send, 404, b"Not Found\n", _TEXT)

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = accept = custom_attributes = None
        declared_length = -1
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == _CUSTOM_ATTRIBUTES:
                custom_attributes = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared_length = int(value)
        limit = self.max_payload_bytes
        if limit is not None and declared_length > limit:
            await _too_large(send, limit)
            return
        body = await _read_body(receive, limit)
        if body is None:
            await _too_large(send, limit or 0)
            return
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            self.executor, self._invoke, body, content_type, accept, custom_attributes
        )
        await _send_result(send, result)

    def _invoke(
        self, body: bytes, content_type: str | None, accept: str | None, attributes: str | None
    ) -> Result:
        """Run the handler in a pool thread; errors become their status or a 500."""
        try:
            return self.handler.invoke(body, content_type, accept, attributes)
        except Exception as exc:
            return error_result(exc)

    async def _execution_parameters(self, send: Send) -> None:
        try:
            parameters = self.handler.execution_parameters()
        except Exception as exc:
            await _send_result(send, error_result(exc))
            return
        if parameters is None:
            await _respond(send, 404, b"Not Found\n", _TEXT)
        else:
            await _respond(send, 200, json.dumps(parameters).encode(), _JSON)

    def close(self) -> None:
        """Stop taking predictions; a running one is abandoned, not awaited (SIGKILL follows)."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def error_result(exc: BaseException) -> Result:
    """A status error's own status and message, else the toolkit's 500 `message\\ntraceback`."""
    chosen = status_of(exc)
    if chosen is not None:
        return Result(chosen[1].encode("utf-8"), "text/plain; charset=utf-8", chosen[0])
    trace = "".join(traceback.format_exception(exc))
    log.error("Inference failed: %s", trace.rstrip())
    return Result(f"{exc}\n{trace}".encode(), "text/plain; charset=utf-8", 500)


async def _read_body(receive: Receive, limit: int | None) -> bytes | None:
    """The whole request body, or None as soon as it grows past `limit` bytes."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body if limit is None or len(body) <= limit else None
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _too_large(send: Send, limit: int) -> None:
    # The wording SageMaker's front end used for oversized payloads (spec hosting §1.4).
    await _respond(send, 413, f"HTTP content length exceeded {limit} bytes.\n".encode(), _TEXT)


async def _send_result(send: Send, result: Result) -> None:
    headers = [(b"content-type", _header_value(result.content_type))]
    if result.custom_attributes is not None:
        headers.append((_CUSTOM_ATTRIBUTES, _header_value(result.custom_attributes)))
    await _respond(send, result.status, result.body, None, headers)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes | None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = headers if headers is not None else []
    if content_type is not None:
        headers.append((b"content-type", content_type))
    if status in _NO_BODY_STATUSES:
        body = b""  # HTTP forbids a body (and Content-Length) on 204 and 304
    else:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header_value(value: str) -> bytes:
    """Header-safe bytes: CR and LF become spaces (as the toolkit does), non-Latin-1 becomes ?."""
    return value.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace")
