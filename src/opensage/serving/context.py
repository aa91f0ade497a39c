"""The `context` argument that user handler functions may take, shaped like MMS/TorchServe's.

Scripts written for SageMaker read request headers through it
(`context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")` or
`context.request_processor[0].get_request_header(...)`) and `system_properties["model_dir"]`.
opensage adds two plain spellings: `context.custom_attributes` (the request's attributes) and
`context.set_response_custom_attributes(value)`, which sets the response's
`X-Amzn-SageMaker-Custom-Attributes` header; `set_response_header(0, name, value)` with that
header name, as on TorchServe, does the same. One context is made per request (and one with no
request for `model_fn`, `pre_model_fn` and `model_warmup_fn`), so threads never share one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opensage.serving.handler import CUSTOM_ATTRIBUTES_HEADER

_CUSTOM_ATTRIBUTES = CUSTOM_ATTRIBUTES_HEADER.lower()


class RequestProcessor:
    """One request's headers in, response content type, attributes and status out."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers
        self._lowered = {name.lower(): value for name, value in headers.items()}
        self.response_headers: dict[str, str] = {}
        self.status_code: int | None = None
        self.reason_phrase: str | None = None

    def get_request_header(self, name: str) -> str | None:
        """A request header by case-insensitive name, or None."""
        return self._lowered.get(name.lower())

    def get_request_property(self, name: str) -> str | None:
        return self.get_request_header(name)

    def get_request_properties(self) -> dict[str, str]:
        return dict(self._headers)

    def add_response_property(self, name: str, value: str) -> None:
        self.response_headers[name.lower()] = value

    def get_response_header(self) -> dict[str, str]:
        return dict(self.response_headers)

    def report_status(self, code: int, reason_phrase: str | None = None) -> None:
        self.status_code = code
        self.reason_phrase = reason_phrase


class Context:
    """What MMS hands a handler: system properties and the request processor of the request."""

    def __init__(self, model_dir: Path, headers: dict[str, str] | None = None) -> None:
        self.system_properties: dict[str, Any] = {
            "model_dir": str(model_dir),
            "gpu_id": None,
            "batch_size": 1,
            "server_name": "opensage",
            "server_version": "1",
        }
        self.request_processor = [RequestProcessor(headers or {})]

    @property
    def custom_attributes(self) -> str | None:
        """The request's `X-Amzn-SageMaker-Custom-Attributes`, or None."""
        return self.request_processor[0].get_request_header(_CUSTOM_ATTRIBUTES)

    def set_response_custom_attributes(self, value: str | None) -> None:
        """Send `value` back as the response's `X-Amzn-SageMaker-Custom-Attributes` header."""
        headers = self.request_processor[0].response_headers
        if value is None:
            headers.pop(_CUSTOM_ATTRIBUTES, None)
        else:
            headers[_CUSTOM_ATTRIBUTES] = value

    @property
    def response_custom_attributes(self) -> str | None:
        return self.request_processor[0].response_headers.get(_CUSTOM_ATTRIBUTES)

    def get_request_header(self, idx: int, name: str) -> str | None:
        return self.request_processor[idx].get_request_header(name)

    def get_all_request_header(self, idx: int) -> dict[str, str]:
        return self.request_processor[idx].get_request_properties()

    def set_response_header(self, idx: int, name: str, value: str) -> None:
        """Only `Content-Type` and the custom attributes header reach the caller."""
        self.request_processor[idx].add_response_property(name, value)

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.request_processor[idx].add_response_property("content-type", value)

    def get_response_content_type(self, idx: int) -> str | None:
        return self.request_processor[idx].response_headers.get("content-type")

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.request_processor[idx].report_status(code, phrase)

    set_http_response_status = set_response_status
