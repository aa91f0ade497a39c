"""The environment variables the model server and its handlers read, parsed once.

Names and defaults are SageMaker's (`SAGEMAKER_*`, spec hosting §1.5) except the three
`OPENSAGE_SERVING_*` variables, which only the opensage control plane sets: which built-in
handler to load and where to listen when it is not TCP port 8080.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opensage.contract import MLPaths

HANDLER_ENV = "OPENSAGE_SERVING_HANDLER"
SOCKET_ENV = "OPENSAGE_SERVING_SOCKET"
HOST_ENV = "OPENSAGE_SERVING_HOST"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
PROGRAM_ENV = "SAGEMAKER_PROGRAM"
SUBMIT_DIRECTORY_ENV = "SAGEMAKER_SUBMIT_DIRECTORY"
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
MAX_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
BATCH_ENV = "SAGEMAKER_BATCH"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MIB = 1024 * 1024


@dataclass(frozen=True)
class ServingEnvironment:
    """Everything the server takes from its environment; see `from_env` for the defaults."""

    model_dir: Path
    handler: str | None = None
    socket: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    program: str | None = None
    submit_directory: str | None = None
    default_accept: str | None = None
    workers: int = 1
    max_payload_bytes: int | None = None
    batch: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingEnvironment:
        """Parse the variables; a malformed number raises `ValueError` naming the variable."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        megabytes = _integer(env, MAX_PAYLOAD_ENV, 0, minimum=0)
        return cls(
            model_dir=MLPaths.from_env(dict(env)).model,
            handler=text(HANDLER_ENV),
            socket=text(SOCKET_ENV),
            host=text(HOST_ENV) or DEFAULT_HOST,
            port=_integer(env, PORT_ENV, DEFAULT_PORT, minimum=1),
            program=text(PROGRAM_ENV),
            submit_directory=text(SUBMIT_DIRECTORY_ENV),
            default_accept=text(DEFAULT_ACCEPT_ENV),
            workers=_integer(env, WORKERS_ENV, 1, minimum=1),
            # Unset or 0: no limit here (the platform enforces the API's 6 MB); 0 is "unlimited"
            # for batch transform's MaxPayloadInMB too.
            max_payload_bytes=megabytes * MIB if megabytes else None,
            # Like the SageMaker containers: any non-empty value means batch (they test truthiness).
            batch=bool(env.get(BATCH_ENV)),
        )


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value
