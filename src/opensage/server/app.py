"""The ASGI app of the edge: routes each request to its protocol by its headers and path.

- `X-Amz-Target: <Prefix>.<Operation>` → the JSON service with that prefix (SageMaker,
  CloudWatch Logs, Application Auto Scaling, and CloudWatch metrics, which botocore speaks in
  JSON 1.0 when a service offers it);
- `POST /endpoints/{name}/invocations` → the runtime API (checked first: it is the hot path);
- an unsigned `GET /metrics` → Prometheus text (S3 requests are always signed, so a bucket named
  `metrics` stays reachable);
- `/v2/...` → the image registry (no bucket can be named `v2`: bucket names have 3 characters
  or more);
- a request signed for a query-protocol service (STS) → that service: its SigV4 credential
  scope names it, as nothing else in a form-encoded `POST /` does;
- anything else → the S3 subset.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from opensage.errors import UnknownOperationError
from opensage.server.awsjson import JsonService, error_response
from opensage.server.registry import RegistryApi, is_registry
from opensage.server.runtime_api import Receive, RuntimeApi, Scope, Send, is_invocation
from opensage.server.s3 import S3Api
from opensage.server.signing import signing_service
from opensage.server.sts import StsApi

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class EdgeApp:
    """The one ASGI callable: the runtime fast path, then Starlette for everything else."""

    def __init__(self, runtime: RuntimeApi, rest: Starlette) -> None:
        self.runtime = runtime
        self.rest = rest
        self.state = rest.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = is_invocation(scope)
            if match is not None:
                await self.runtime(match, scope, receive, send)
                return
        await self.rest(scope, receive, send)


def build_asgi(
    services: list[JsonService],
    s3: S3Api,
    sts: StsApi,
    runtime: RuntimeApi,
    registry: RegistryApi,
    prometheus: Callable[[], str],
    on_startup: Callable[[], None],
    on_shutdown: Callable[[], None],
) -> EdgeApp:
    by_prefix = {service.target_prefix: service for service in services}

    async def dispatch(request: Request) -> Response:
        target = request.headers.get("x-amz-target")
        if target is not None:
            prefix, _, operation = target.rpartition(".")
            service = by_prefix.get(prefix)
            if request.method != "POST" or service is None:
                return error_response(
                    UnknownOperationError(f"Unknown operation {target}: no such service here")
                )
            return await service.handle(operation, request)
        if is_registry(request.url.path):
            return await registry.handle(request)
        if (
            request.method == "GET"
            and request.url.path == "/metrics"
            and "authorization" not in request.headers
            and "x-amz-date" not in request.headers
        ):
            return PlainTextResponse(prometheus(), media_type=PROMETHEUS)
        if signing_service(request) == sts.signing_name:
            return await sts.handle(request)
        return await s3.handle(request)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        on_startup()
        try:
            yield
        finally:
            on_shutdown()

    methods = ["GET", "PUT", "POST", "HEAD", "DELETE", "PATCH"]
    routes = [
        Route("/", dispatch, methods=methods),
        Route("/{path:path}", dispatch, methods=methods),
    ]
    return EdgeApp(runtime, Starlette(routes=routes, lifespan=lifespan))
