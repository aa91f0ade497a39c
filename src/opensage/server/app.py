"""The ASGI app of the edge: routes each request to its protocol by its headers and path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opensage.errors import UnknownOperationError
from opensage.server.awsjson import JsonService, error_response
from opensage.server.s3 import S3Api


def build_asgi(
    services: list[JsonService],
    s3: S3Api,
    on_startup: Callable[[], None],
    on_shutdown: Callable[[], None],
) -> Starlette:
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
        return await s3.handle(request)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        on_startup()
        try:
            yield
        finally:
            on_shutdown()

    methods = ["GET", "PUT", "POST", "HEAD", "DELETE"]
    routes = [
        Route("/", dispatch, methods=methods),
        Route("/{path:path}", dispatch, methods=methods),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
