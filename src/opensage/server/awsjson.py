"""The AWS JSON 1.1 protocol: `POST /`, `X-Amz-Target: <Prefix>.<Operation>`, JSON in and out."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.model import ServiceModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opensage.errors import (
    OpenSageError,
    SerializationError,
    UnknownOperationError,
    UnsupportedOperationError,
)
from opensage.server.validation import validate

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/x-amz-json-1.1"
Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class JsonService:
    """One AWS service spoken over JSON 1.1: its botocore model and our handlers by operation."""

    target_prefix: str
    model: ServiceModel
    handlers: dict[str, Handler]

    @classmethod
    def from_botocore(cls, service: str, handlers: dict[str, Handler]) -> JsonService:
        loader = botocore.session.get_session().get_component("data_loader")
        model = ServiceModel(loader.load_service_model(service, "service-2"), service)
        prefix = model.metadata["targetPrefix"]
        unknown = set(handlers) - set(model.operation_names)
        if unknown:
            raise ValueError(f"{service} has no operations {sorted(unknown)}")
        return cls(prefix, model, handlers)

    async def handle(self, operation: str, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            if operation not in self.model.operation_names:
                raise UnknownOperationError(
                    f"Operation {self.target_prefix}.{operation} is not an operation of this "
                    "service"
                )
            handler = self.handlers.get(operation)
            if handler is None:
                raise UnsupportedOperationError(
                    f"opensage does not support {self.target_prefix}.{operation} yet"
                )
            body = await request.body()
            try:
                payload = json.loads(body) if body.strip() else {}
            except (ValueError, UnicodeDecodeError) as exc:
                raise SerializationError("The request body is not valid JSON") from exc
            params = validate(self.model.operation_model(operation).input_shape, payload)
            result = await run_in_threadpool(handler, params)
            return _json(200, result, request_id)
        except OpenSageError as exc:
            return error_response(exc, request_id)
        except Exception:
            log.exception("%s.%s failed", self.target_prefix, operation)
            return error_response(OpenSageError("An internal error occurred."), request_id)


def _json(status: int, body: dict[str, Any], request_id: str) -> Response:
    return Response(
        json.dumps(body, allow_nan=False),
        status_code=status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )


def error_response(exc: OpenSageError, request_id: str | None = None) -> Response:
    body = {"__type": exc.code, "message": exc.message}
    return _json(exc.http_status, body, request_id or str(uuid.uuid4()))
