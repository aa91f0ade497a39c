"""The protocol between the HTTP server and whatever computes predictions.

A handler is loaded once per worker process, before the server listens, and then called one
request at a time (`SAGEMAKER_MODEL_SERVER_WORKERS` above 1 means that many processes, each
with its own handler, as in SageMaker's model servers; see `opensage.serving.workers`). It
gets the raw body and the three request headers SageMaker forwards, and returns a `Result` or
raises `opensage.serving.errors.InferenceError`; any other exception becomes a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
DEFAULT_MAX_PAYLOAD_MB = 6


@dataclass(frozen=True, slots=True)
class Result:
    """One response: the body, its media type, the status and optional custom attributes."""

    body: bytes
    content_type: str
    status: int = 200
    custom_attributes: str | None = None


class Handler(Protocol):
    """What `opensage.algorithms.<name>.serve.load(model_dir)` and the toolkit loader return."""

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        """Answer one `POST /invocations`; raise `InferenceError` for a chosen error status."""
        ...

    def execution_parameters(self) -> Mapping[str, object] | None:
        """The `GET /execution-parameters` body for batch transform, or None for a 404."""
        ...


def builtin_execution_parameters(workers: int) -> dict[str, object]:
    """What the SageMaker built-in containers answer: one transform per worker, 6 MB batches."""
    return {
        "MaxConcurrentTransforms": workers,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": DEFAULT_MAX_PAYLOAD_MB,
    }


def media_type(value: str | None) -> str | None:
    """`text/csv; charset=utf-8` -> `text/csv`: parameters dropped, lower-cased; None if blank."""
    if value is None:
        return None
    kind = value.split(";", 1)[0].strip().lower()
    return kind or None


def accept_list(value: str | None) -> list[str]:
    """The media types of a comma-separated Accept header, in the client's order."""
    if not value:
        return []
    kinds = (media_type(part) for part in value.split(","))
    return [kind for kind in kinds if kind]
