"""The `sagemaker-runtime` REST-JSON edge: `POST /endpoints/{name}/invocations`.

Plain ASGI rather than a framework route: this is the hot path of every prediction, and all it
does is read the body and a few headers, call the router, and relay the answer. Errors use the
REST-JSON shape botocore parses: the code in `x-amzn-ErrorType`, the message (and a ModelError's
modeled members) in the JSON body. The runtime's validation error is spelled `ValidationError`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from opensage.control.routing import Invocation, Router
from opensage.errors import ModelError, OpenSageError, PayloadTooLargeError, ValidationError

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 6 * 1024 * 1024  # 6 291 456 bytes, botocore's BodyBlob max
PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_HEADERS = {
    b"content-type": "content_type",
    b"accept": "accept",
    b"x-amzn-sagemaker-custom-attributes": "custom_attributes",
    b"x-amzn-sagemaker-target-variant": "target_variant",
    b"x-amzn-sagemaker-target-container-hostname": "target_container",
    b"x-amzn-sagemaker-inference-id": "inference_id",
}
# Request ids are unique, UUID-shaped, and cheap: a random per-process prefix and a counter
# (uuid4 per request costs more than the rest of the edge's parsing).
_PREFIX = os.urandom(8).hex()
_ID_PREFIX = f"{_PREFIX[:8]}-{_PREFIX[8:12]}-{_PREFIX[12:16]}"
_ID_COUNTER = itertools.count()
_UNSUPPORTED = {
    b"x-amzn-sagemaker-target-model": "TargetModel (multi-model endpoints)",
    b"x-amzn-sagemaker-inference-component": "InferenceComponentName",
    b"x-amzn-sagemaker-session-id": "SessionId (stateful sessions)",
    b"x-amzn-sagemaker-enable-explanations": "EnableExplanations",
}


def is_invocation(scope: Scope) -> re.Match[str] | None:
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("query_string"):
        return None
    return PATH.match(scope["path"])


class RuntimeApi:
    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(
        self, match: re.Match[str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        n = next(_ID_COUNTER)
        request_id = f"{_ID_PREFIX}-{(n >> 48) & 0xFFFF:04x}-{n & 0xFFFFFFFFFFFF:012x}"
        try:
            call = await self._parse(unquote(match.group(1)), scope, receive)
            result = await self.router.invoke(call)
        except OpenSageError as exc:
            await _send_error(send, exc, request_id)
            return
        except Exception:  # a router bug answers InternalFailure, never a bare 500 page
            log.exception("InvokeEndpoint on %s failed", match.group(1))
            await _send_error(send, OpenSageError("An internal error occurred."), request_id)
            return
        headers = [
            (b"x-amzn-requestid", request_id.encode()),
            (b"x-amzn-invoked-production-variant", result.variant.encode()),
            (b"content-length", str(len(result.body)).encode()),
        ]
        if result.content_type:
            headers.append((b"content-type", result.content_type.encode("latin-1")))
        if result.custom_attributes:
            headers.append(
                (b"x-amzn-sagemaker-custom-attributes", result.custom_attributes.encode("latin-1"))
            )
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": result.body})

    async def _parse(self, name: str, scope: Scope, receive: Receive) -> Invocation:
        fields: dict[str, str] = {}
        declared = None
        for key, value in scope["headers"]:
            if key in _HEADERS:
                fields[_HEADERS[key]] = value.decode("latin-1")
            elif key == b"content-length":
                declared = value
            elif key in _UNSUPPORTED:
                raise ValidationError(f"{_UNSUPPORTED[key]} is not supported yet.")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            raise PayloadTooLargeError(f"HTTP content length exceeded {MAX_BODY} bytes.")
        body = await _read_body(receive)
        if not _NAME.match(name):
            raise ValidationError(
                f"1 validation error detected: Value '{name}' at 'endpointName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                "^[a-zA-Z0-9](-*[a-zA-Z0-9])*"
            )
        custom = fields.get("custom_attributes")
        if custom is not None and len(custom) > 1024:
            raise ValidationError("CustomAttributes must be at most 1024 characters.")
        return Invocation(endpoint=name, body=body, **fields)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLargeError(f"HTTP content length exceeded {MAX_BODY} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_error(send: Send, exc: OpenSageError, request_id: str) -> None:
    code = "ValidationError" if exc.code == "ValidationException" else exc.code
    body: dict[str, Any] = {"message": exc.message}
    if isinstance(exc, ModelError):
        body.update(
            {
                "Message": exc.message,
                "OriginalStatusCode": exc.original_status,
                "OriginalMessage": exc.original_message,
                "LogStreamArn": exc.log_stream_arn,
            }
        )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.http_status,
            "headers": [
                (b"x-amzn-requestid", request_id.encode()),
                (b"x-amzn-errortype", code.encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
