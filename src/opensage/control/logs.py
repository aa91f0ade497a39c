"""A CloudWatch Logs view of job output: groups, streams and events, read from the shim's files.

Group `/aws/sagemaker/TrainingJobs`, stream `<job>/algo-1-<start epoch>`, as the SageMaker SDK's
`logs=True` expects. Tokens are `f/<index>` (forward) and `b/<index>` (backward) into a stream.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from opensage.errors import LogsResourceNotFoundError, ValidationError
from opensage.store import Resource, Store
from opensage.store.repository import ListQuery

TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"


class LogService:
    def __init__(self, store: Store, log_file: Callable[[str], Path], region: str, account: str):
        self.store = store
        self._log_file = log_file  # job name → its output file
        self.region = region
        self.account = account

    def _require_group(self, group: str) -> None:
        if group != TRAINING_GROUP:
            raise LogsResourceNotFoundError("The specified log group does not exist.")

    def _jobs_with_streams(self, prefix: str) -> list[Resource]:
        job_prefix = prefix.split("/", 1)[0]
        query = ListQuery(kind="TrainingJob", name_contains=job_prefix or None, limit=10_000)
        jobs = [j for j in self.store.query(query) if "LogStream" in j.state]
        return [j for j in jobs if j.state["LogStream"].startswith(prefix)]

    def describe_log_streams(self, request: dict[str, Any]) -> dict[str, Any]:
        group = request["logGroupName"]
        self._require_group(group)
        prefix = request.get("logStreamNamePrefix", "")
        if prefix and request.get("orderBy") == "LastEventTime":
            raise ValidationError("Cannot order by LastEventTime with a logStreamNamePrefix.")
        streams = [self._stream(group, job) for job in self._jobs_with_streams(prefix)]
        key = "lastEventTimestamp" if request.get("orderBy") == "LastEventTime" else "logStreamName"
        streams.sort(key=lambda s: s.get(key, 0), reverse=bool(request.get("descending")))
        offset = _index(request.get("nextToken"), "s")
        limit = request.get("limit", 50)
        out: dict[str, Any] = {"logStreams": streams[offset : offset + limit]}
        if offset + limit < len(streams):
            out["nextToken"] = f"s/{offset + limit}"
        return out

    def _stream(self, group: str, job: Resource) -> dict[str, Any]:
        name = job.state["LogStream"]
        path = self._log_file(job.name)
        created = int(job.state.get("TrainingStartTime", job.created_at) * 1000)
        stream: dict[str, Any] = {
            "logStreamName": name,
            "creationTime": created,
            "arn": f"arn:aws:logs:{self.region}:{self.account}:log-group:{group}:log-stream:{name}",
            "storedBytes": path.stat().st_size if path.exists() else 0,
        }
        events = _events(path)
        if events:
            stream["firstEventTimestamp"] = events[0]["timestamp"]
            stream["lastEventTimestamp"] = events[-1]["timestamp"]
            stream["lastIngestionTime"] = events[-1]["ingestionTime"]
        return stream

    def get_log_events(self, request: dict[str, Any]) -> dict[str, Any]:
        self._require_group(request["logGroupName"])
        stream = request["logStreamName"]
        jobs = [j for j in self._jobs_with_streams(stream) if j.state["LogStream"] == stream]
        if not jobs:
            raise LogsResourceNotFoundError("The specified log stream does not exist.")
        events = _events(self._log_file(jobs[0].name))
        start, end = request.get("startTime"), request.get("endTime")
        if start is not None or end is not None:
            events = [
                e
                for e in events
                if (start is None or e["timestamp"] >= start)
                and (end is None or e["timestamp"] < end)
            ]
        limit = request.get("limit", 10_000)
        token = request.get("nextToken")
        if token and token.startswith("b/"):
            stop = _index(token, "b")
            begin = max(0, stop - limit)
        elif token:
            begin = _index(token, "f")
            stop = min(len(events), begin + limit)
        elif request.get("startFromHead"):
            begin, stop = 0, min(len(events), limit)
        else:
            stop = len(events)
            begin = max(0, stop - limit)
        return {
            "events": events[begin:stop],
            "nextForwardToken": f"f/{stop}",
            "nextBackwardToken": f"b/{begin}",
        }


def _index(token: str | None, kind: str) -> int:
    if not token:
        return 0
    head, _, number = token.partition("/")
    if head != kind or not (number.isascii() and number.isdigit()):
        raise ValidationError("The specified nextToken is invalid.")
    return int(number)


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for raw in f:
            if not raw.endswith("\n"):
                break  # a line still being written
            stamp, _, message = raw[:-1].partition(" ")
            ms = int(stamp) if stamp.isascii() and stamp.isdigit() else 0
            events.append({"timestamp": ms, "message": message, "ingestionTime": ms})
    return events
