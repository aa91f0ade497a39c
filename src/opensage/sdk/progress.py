"""Progress bars for `wait()` on transform and tuning jobs.

The SageMaker SDK prints a dot per poll; a bar says how far a job is. Everything it shows comes
from the public API, so it reads the same against real SageMaker:

- a tuning job: the trials that ended (`TrainingJobStatusCounters`) out of
  `ResourceLimits.MaxNumberOfTrainingJobs`, with the trials running and the best objective so far;
- a transform job: its output objects out of its input objects. Each input object becomes one
  `<S3OutputPath>/<key relative to the input's folder>.out` once it is done, so the SDK lists the
  inputs (a prefix's objects, or a manifest's keys) once and the outputs as the job goes,
  counting those written since the job was created (an earlier job's outputs at the same place
  do not count).

On a terminal the bar redraws in place and log lines print above it; elsewhere (a CI log, a
captured stream) only its final state is printed, once.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from opensage.formats.manifest import parse_manifest

ENDED_TRIALS = ("Completed", "RetryableError", "NonRetryableError", "Stopped")
LISTING_INTERVAL = 2.0
"""Seconds between two listings of a transform job's outputs: a job with many objects costs
one listing page per thousand outputs."""


class Bar:
    """One job's bar: `with Bar("Transform job x", total=3) as bar: bar.update(1, "...")`."""

    def __init__(self, description: str, total: int | None) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=_console(),
        )
        self._task: TaskID = self._progress.add_task(description, total=total, detail="")

    def __enter__(self) -> Bar:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, completed: int, detail: str = "", total: int | None = None) -> None:
        if total is not None:
            self._progress.update(self._task, total=total)
        self._progress.update(self._task, completed=completed, detail=detail)


def tuning_counts(desc: dict[str, Any]) -> tuple[int, int | None, str]:
    """(trials ended, the trial budget or None, a detail line) of a DescribeHyperParameterTuningJob
    answer."""
    counters = desc.get("TrainingJobStatusCounters", {})
    ended = sum(int(counters.get(key, 0)) for key in ENDED_TRIALS)
    limits = desc["HyperParameterTuningJobConfig"].get("ResourceLimits", {})
    budget = limits.get("MaxNumberOfTrainingJobs")
    detail = f"{counters.get('InProgress', 0)} running"
    best = desc.get("BestTrainingJob", {}).get("FinalHyperParameterTuningJobObjectiveMetric")
    if best is not None:
        detail += f", best {best['MetricName']} {best['Value']:.6g}"
    return ended, budget, detail


class TransformOutputs:
    """Counts a transform job's finished output objects (see the module's docstring)."""

    def __init__(self, s3: Any, desc: dict[str, Any]) -> None:
        self.s3 = s3
        self.since: datetime = desc["CreationTime"].replace(microsecond=0)
        self.bucket, self.prefix = _split(desc["TransformOutput"]["S3OutputPath"])
        self.expected: set[str] | None = self._expected(desc)
        self._done = 0
        self._listed_at = float("-inf")

    @property
    def total(self) -> int | None:
        return None if self.expected is None else len(self.expected)

    def count(self, force: bool = False) -> int:
        """Outputs written since the job began; listed at most every LISTING_INTERVAL."""
        now = time.monotonic()
        if not force and now - self._listed_at < LISTING_INTERVAL:
            return self._done
        self._listed_at = now
        listed = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        self._done = sum(
            1
            for page in listed
            for item in page.get("Contents", [])
            if item["LastModified"] >= self.since
            and (item["Key"] in self.expected if self.expected else item["Key"].endswith(".out"))
        )
        return self._done

    def _expected(self, desc: dict[str, Any]) -> set[str] | None:
        """The output keys of the job's input objects; None when they cannot be read (the job
        then fails on its own, saying why)."""
        source = desc["TransformInput"]["DataSource"]["S3DataSource"]
        try:
            if source["S3DataType"] == "ManifestFile":
                bucket, key = _split(source["S3Uri"])
                body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                base, keys = parse_manifest(body)
                bucket, base_key = _split(base)
                inputs = [base_key + key for key in keys]
            else:
                bucket, base_key = _split(source["S3Uri"])
                pages = self.s3.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=base_key
                )
                inputs = [
                    item["Key"]
                    for page in pages
                    for item in page.get("Contents", [])
                    if not item["Key"].endswith("/")
                ]
        except (self.s3.exceptions.ClientError, ValueError):  # ValueError: a bad manifest
            return None
        folder = base_key[: base_key.rfind("/") + 1]
        return {self._output_key(key[len(folder) :]) for key in inputs}

    def _output_key(self, relative: str) -> str:
        parts = (self.prefix.rstrip("/"), relative + ".out")
        return "/".join(part.strip("/") for part in parts if part.strip("/"))


def _console() -> Console:
    """A console on stdout as it is now (a redirected stdout is honoured); off a terminal, wide
    enough that a long job name does not squeeze out the counts."""
    console = Console(file=sys.stdout)
    return console if console.is_terminal else Console(file=sys.stdout, width=160)


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key
