"""`opensage models|endpoint-configs|endpoints|transforms list|describe`, `opensage endpoints
invoke` and `opensage jobs logs --follow`: every resource kind the API serves, as the other
commands show theirs (a table newest first; Describe as JSON).

$ opensage endpoints list
NAME         STATUS     CREATED              MODIFIED
my-endpoint  InService  2026-11-29 10:02:11  2026-11-29 10:02:13
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opensage.cli.tables import table
from opensage.errors import ValidationError
from opensage.sdk.logs import LogTailer

FINAL = {"Completed", "Failed", "Stopped"}


@dataclass(frozen=True)
class Kind:
    """One resource kind: its List and Describe operations and the columns of its table."""

    command: str
    help: str
    list_operation: str
    items_key: str
    name_key: str
    status_key: str | None
    describe_operation: str

    def list(self, client: Any, name_contains: str | None) -> None:
        kwargs: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
        if name_contains:
            kwargs["NameContains"] = name_contains
        pages = client.get_paginator(self.list_operation).paginate(**kwargs)
        rows = []
        for page in pages:
            for item in page[self.items_key]:
                row = [item[self.name_key], _time(item.get("CreationTime"))]
                if self.status_key:  # the kinds with a status change after their creation
                    row[1:1] = [item.get(self.status_key, "")]
                    row.append(_time(item.get("LastModifiedTime")))
                rows.append(row)
        if not rows:
            print(f"No {self.help}.")
            return
        headers = (
            ["NAME", "STATUS", "CREATED", "MODIFIED"] if self.status_key else ["NAME", "CREATED"]
        )
        table(headers, rows)

    def describe(self, client: Any, name: str) -> None:
        desc = getattr(client, self.describe_operation)(**{self.name_key: name})
        desc.pop("ResponseMetadata", None)
        print(json.dumps(desc, indent=2, default=str))


KINDS = (
    Kind("models", "models", "list_models", "Models", "ModelName", None, "describe_model"),
    Kind(
        "endpoint-configs",
        "endpoint configurations",
        "list_endpoint_configs",
        "EndpointConfigs",
        "EndpointConfigName",
        None,
        "describe_endpoint_config",
    ),
    Kind(
        "endpoints",
        "real-time endpoints",
        "list_endpoints",
        "Endpoints",
        "EndpointName",
        "EndpointStatus",
        "describe_endpoint",
    ),
    Kind(
        "transforms",
        "batch transform jobs",
        "list_transform_jobs",
        "TransformJobSummaries",
        "TransformJobName",
        "TransformJobStatus",
        "describe_transform_job",
    ),
)


def invoke(runtime: Any, name: str, body: str, content_type: str, accept: str | None) -> None:
    """Send BODY (or the file named by @PATH) to the endpoint and print its answer: text as
    text, anything else as raw bytes on stdout."""
    try:
        data = Path(body[1:]).read_bytes() if body.startswith("@") else body.encode()
    except OSError as exc:
        raise ValidationError(f"Cannot read the request body {body[1:]}: {exc.strerror}") from exc
    kwargs: dict[str, Any] = {"EndpointName": name, "ContentType": content_type, "Body": data}
    if accept:
        kwargs["Accept"] = accept
    answer = runtime.invoke_endpoint(**kwargs)["Body"].read()
    try:
        text = answer.decode()
    except UnicodeDecodeError:
        sys.stdout.buffer.write(answer)
        return
    print(text.rstrip("\n"))


def follow_logs(
    sagemaker: Any, logs: Any, name: str, poll: float = 1.0, timeout: float | None = None
) -> None:
    """Print the job's log lines as they come until the job ends, then the last ones."""
    tailer = LogTailer(logs, name)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        tailer.flush()
        if status in FINAL:
            print(f"{name}: {status}", file=sys.stderr)
            return
        if deadline is not None and time.monotonic() > deadline:
            return
        time.sleep(poll)


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else ""
