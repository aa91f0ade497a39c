"""Follows a training job's CloudWatch log streams, as the SageMaker SDK's `logs=True` does."""

from __future__ import annotations

from typing import Any

GROUP = "/aws/sagemaker/TrainingJobs"


class LogTailer:
    def __init__(self, logs_client: Any, job_name: str) -> None:
        self.client = logs_client
        self.job_name = job_name
        self.tokens: dict[str, str | None] = {}

    def flush(self) -> None:
        """Print every event not printed yet, from every stream of the job."""
        try:
            streams = self.client.describe_log_streams(
                logGroupName=GROUP, logStreamNamePrefix=f"{self.job_name}/", orderBy="LogStreamName"
            )["logStreams"]
        except self.client.exceptions.ResourceNotFoundException:
            return
        for stream in streams:
            name = stream["logStreamName"]
            while True:
                kwargs: dict[str, Any] = {
                    "logGroupName": GROUP,
                    "logStreamName": name,
                    "startFromHead": True,
                }
                if self.tokens.get(name):
                    kwargs["nextToken"] = self.tokens[name]
                page = self.client.get_log_events(**kwargs)
                self.tokens[name] = page["nextForwardToken"]
                for event in page["events"]:
                    print(event["message"], flush=True)
                if not page["events"]:
                    break
