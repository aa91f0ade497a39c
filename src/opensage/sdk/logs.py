"""Follows a job's CloudWatch log streams, as the SageMaker SDK's `logs=True` does."""

from __future__ import annotations

from typing import Any

TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
TRANSFORM_GROUP = "/aws/sagemaker/TransformJobs"


class LogTailer:
    def __init__(self, logs_client: Any, job_name: str, group: str = TRAINING_GROUP) -> None:
        self.client = logs_client
        self.job_name = job_name
        self.group = group
        self.tokens: dict[str, str | None] = {}

    def flush(self) -> None:
        """Print every event not printed yet, from every stream of the job."""
        try:
            streams = self.client.describe_log_streams(
                logGroupName=self.group,
                logStreamNamePrefix=f"{self.job_name}/",
                orderBy="LogStreamName",
            )["logStreams"]
        except self.client.exceptions.ResourceNotFoundException:
            return
        for stream in streams:
            name = stream["logStreamName"]
            while True:
                kwargs: dict[str, Any] = {
                    "logGroupName": self.group,
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
