"""A CloudWatch Logs view of job output: groups, streams and events, read from the shim's files.

Group `/aws/sagemaker/TrainingJobs`, stream `<job>/algo-1-<start epoch>`, as the SageMaker SDK's
`logs=True` expects; group `/aws/sagemaker/Endpoints/<endpoint>`, stream
`<variant>/<instance-id>` (pipelines add `/<container>`), one per model-server process; group
`/aws/sagemaker/TransformJobs`, stream `<job>/<instance-id>` (pipelines add `/<container>`). Tokens
are `f/<index>` (forward) and `b/<index>` (backward) into a stream.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensage.errors import LogsResourceNotFoundError, ValidationError
from opensage.store import Resource, Store
from opensage.store.repository import ListQuery

TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINT_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
TRANSFORM_GROUP = "/aws/sagemaker/TransformJobs"


@dataclass(frozen=True)
class Stream:
    name: str
    path: Path
    created_ms: int


class LogService:
    def __init__(
        self,
        store: Store,
        log_file: Callable[[str, str], Path],
        region: str,
        account: str,
        endpoint_logs: Path | None = None,
        transform_logs: Path | None = None,
    ):
        self.store = store
        self._log_file = log_file  # (job name, host) → that host's output file
        self.region = region
        self.account = account
        self._endpoint_logs = endpoint_logs  # <endpoint>/<variant>/<instance>[/<container>]
        self._transform_logs = transform_logs  # <job>/<instance>[/<container>]
        self._indexes: dict[Path, LineIndex] = {}  # a cache, derived from the files
        self._lock = threading.Lock()

    def _streams(self, group: str, prefix: str) -> list[Stream]:
        if group == TRAINING_GROUP:
            return [
                Stream(
                    stream,
                    self._log_file(j.name, host),
                    int(j.state.get("TrainingStartTime", j.created_at) * 1000),
                )
                for j in self._jobs_with_streams(prefix)
                for stream, host in _job_streams(j).items()
                if stream.startswith(prefix)
            ]
        if group == TRANSFORM_GROUP and self._transform_logs is not None:
            return _folder_streams(self._transform_logs, prefix)
        endpoint = group.removeprefix(ENDPOINT_GROUP_PREFIX)
        root = self._endpoint_logs / endpoint if self._endpoint_logs else None
        if (
            group.startswith(ENDPOINT_GROUP_PREFIX)
            and "/" not in endpoint
            and endpoint not in ("", ".", "..")
            and root is not None
            and root.is_dir()
        ):
            return _folder_streams(root, prefix)
        raise LogsResourceNotFoundError("The specified log group does not exist.")

    def _jobs_with_streams(self, prefix: str) -> list[Resource]:
        job_prefix = prefix.split("/", 1)[0]
        query = ListQuery(kind="TrainingJob", name_contains=job_prefix or None, limit=10_000)
        jobs = [j for j in self.store.query(query) if "LogStream" in j.state]
        return [j for j in jobs if any(s.startswith(prefix) for s in _job_streams(j))]

    def describe_log_streams(self, request: dict[str, Any]) -> dict[str, Any]:
        group = request["logGroupName"]
        prefix = request.get("logStreamNamePrefix", "")
        if prefix and request.get("orderBy") == "LastEventTime":
            raise ValidationError("Cannot order by LastEventTime with a logStreamNamePrefix.")
        streams = [self._stream(group, stream) for stream in self._streams(group, prefix)]
        key = "lastEventTimestamp" if request.get("orderBy") == "LastEventTime" else "logStreamName"
        streams.sort(key=lambda s: s.get(key, 0), reverse=bool(request.get("descending")))
        offset = _index(request.get("nextToken"), "s")
        limit = request.get("limit", 50)
        out: dict[str, Any] = {"logStreams": streams[offset : offset + limit]}
        if offset + limit < len(streams):
            out["nextToken"] = f"s/{offset + limit}"
        return out

    def _stream(self, group: str, found: Stream) -> dict[str, Any]:
        name, path = found.name, found.path
        stream: dict[str, Any] = {
            "logStreamName": name,
            "creationTime": found.created_ms,
            "arn": f"arn:aws:logs:{self.region}:{self.account}:log-group:{group}:log-stream:{name}",
            "storedBytes": path.stat().st_size if path.exists() else 0,
        }
        with self._lock:
            index = self._line_index(path)
            first = index.read(path, 0, 1)
            last = index.read(path, index.count - 1, index.count)
        if first:
            stream["firstEventTimestamp"] = first[0]["timestamp"]
            stream["lastEventTimestamp"] = last[0]["timestamp"]
            stream["lastIngestionTime"] = last[0]["ingestionTime"]
        return stream

    def _line_index(self, path: Path) -> LineIndex:
        """The cached index of a log file (keyed by inode: a re-staged job writes a new file)."""
        inode = path.stat().st_ino if path.exists() else -1
        index = self._indexes.get(path)
        if index is None or index.inode != inode:
            index = self._indexes[path] = LineIndex(inode)
        index.refresh(path)
        return index

    def get_log_events(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["logStreamName"]
        found = [s for s in self._streams(request["logGroupName"], name) if s.name == name]
        if not found:
            raise LogsResourceNotFoundError("The specified log stream does not exist.")
        path = found[0].path
        start, end = request.get("startTime"), request.get("endTime")
        if start or end is not None:  # a time window: filter the whole stream, then page
            events = [
                e
                for e in _events(path)
                if (start is None or e["timestamp"] >= start)
                and (end is None or e["timestamp"] < end)
            ]
            return _page(request, len(events), lambda b, s: events[b:s])
        with self._lock:  # the hot path of tailing: read only the requested lines
            index = self._line_index(path)
            return _page(request, index.count, lambda b, s: index.read(path, b, s))


def _job_streams(job: Resource) -> dict[str, str]:
    """Stream name → host; jobs from before multi-instance support stored only algo-1's."""
    return dict(job.state.get("LogStreams") or {job.state["LogStream"]: "algo-1"})


def _page(
    request: dict[str, Any], count: int, read: Callable[[int, int], list[dict[str, Any]]]
) -> dict[str, Any]:
    """One page of events by CloudWatch's token rules; tokens are indexes into the stream."""
    limit = request.get("limit", 10_000)
    token = request.get("nextToken")
    if token and token.startswith("b/"):
        stop = min(count, _index(token, "b"))
        begin = max(0, stop - limit)
    elif token:
        begin = min(count, _index(token, "f"))
        stop = min(count, begin + limit)
    elif request.get("startFromHead"):
        begin, stop = 0, min(count, limit)
    else:
        stop = count
        begin = max(0, stop - limit)
    return {
        "events": read(begin, stop),
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


class LineIndex:
    """Where each complete line of an append-only log file ends, extended as the file grows.

    A client tailing a stream asks for the lines after its token again and again; with the index
    each call reads only those lines instead of the whole file.
    """

    def __init__(self, inode: int) -> None:
        self.inode = inode
        self.ends = [0]  # ends[i] is the byte offset where line i starts

    @property
    def count(self) -> int:
        return len(self.ends) - 1

    def refresh(self, path: Path) -> None:
        if not path.exists():
            return
        with path.open("rb") as f:
            f.seek(self.ends[-1])
            data = f.read()
        base = self.ends[-1]
        position = data.find(b"\n")
        while position != -1:
            self.ends.append(base + position + 1)
            position = data.find(b"\n", position + 1)

    def read(self, path: Path, begin: int, stop: int) -> list[dict[str, Any]]:
        begin, stop = max(begin, 0), min(stop, self.count)
        if begin >= stop:
            return []
        with path.open("rb") as f:
            f.seek(self.ends[begin])
            data = f.read(self.ends[stop] - self.ends[begin])
        lines = data.decode("utf-8", errors="replace").split("\n")[:-1]  # only \n ends a line
        return [parse_log_line(line) for line in lines]


def parse_log_line(line: str) -> dict[str, Any]:
    """A shim line `<epoch-ms> <message>` as a CloudWatch event."""
    stamp, _, message = line.partition(" ")
    ms = int(stamp) if stamp.isascii() and stamp.isdigit() else 0
    return {"timestamp": ms, "message": message, "ingestionTime": ms}


def _events(path: Path) -> list[dict[str, Any]]:
    index = LineIndex(-1)
    index.refresh(path)
    return index.read(path, 0, index.count)


def _folder_streams(root: Path, prefix: str) -> list[Stream]:
    """One stream per model server's `output.log` under `root`, named by its folder's path."""
    streams = []
    if root.is_dir():
        for log in sorted(root.glob("**/output.log")):
            name = log.parent.relative_to(root).as_posix()
            if name.startswith(prefix):
                streams.append(Stream(name, log, int(log.parent.stat().st_mtime * 1000)))
    return streams
