"""What a request's SigV4 signature says about it: the access key and the service it was signed
for. One port serves every service, and requests of the query protocol (STS) look alike but for
the credential scope, `<key>/<date>/<region>/<service>/aws4_request`."""

from __future__ import annotations

from starlette.requests import Request


def _credential(request: Request) -> list[str]:
    header = request.headers.get("authorization", "")
    _, found, rest = header.partition("Credential=")
    credential = rest.split(",", 1)[0] if found else request.query_params.get("X-Amz-Credential")
    parts = (credential or "").strip().split("/")
    return parts if len(parts) == 5 and parts[4] == "aws4_request" else []


def signing_service(request: Request) -> str | None:
    """The service the request was signed for (`s3`, `sts`, ...), None when unsigned."""
    parts = _credential(request)
    return parts[3] if parts else None


def access_key_of(request: Request) -> str | None:
    parts = _credential(request)
    return parts[0] if parts else None
