"""Killing the server mid-tuning-job loses and repeats no trial (spec §5.3).

Each trial is stored before its training job is created; after a restart the supervisor goes on
from the store. The server is killed three times: right after CreateHyperParameterTuningJob
answers (while the first trials are being launched), while the first wave trains, and while a
later wave trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.conftest import Clients, ServerProcess, wait_for
from tests.integration.test_tuning import (
    XY,
    audit,
    job_config,
    list_trials,
    script_definition,
    tune,
    upload_script,
)

NAME = "durable-tuning"
TRIALS = 6


def training(clients: Clients, first: int) -> bool:
    """Whether a trial numbered `first` or later is training now."""
    return any(
        int(t["TrainingJobName"].split("-")[-2]) >= first
        and t["TrainingJobStatus"] == "InProgress"
        and "TrainingStartTime" in t
        for t in list_trials(clients, NAME)
    )


def test_killed_server_finishes_the_tuning_job_with_every_trial_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        clients = server.start()
        clients.s3.create_bucket(Bucket="data")
        upload_script(clients)
        definition = script_definition(epochs="4", pace="0.3")
        tune(clients, NAME, job_config("Random", XY, TRIALS, 2, RandomSeed=1), definition)
        server.kill()

        clients = server.start()
        wait_for(lambda: training(clients, 1), 60, 0.1, "the first wave to train")
        server.kill()

        clients = server.start()
        wait_for(lambda: training(clients, 3), 60, 0.1, "a later wave to train")
        server.kill()

        clients = server.start()
        result = audit(clients, NAME)
        assert result.desc["HyperParameterTuningJobStatus"] == "Completed"
        assert len(result.jobs) == TRIALS  # audit checked they are numbered 001..006
        assert sum(result.desc["TrainingJobStatusCounters"].values()) == TRIALS
        assert result.desc["TrainingJobStatusCounters"]["Completed"] == TRIALS
        names = [job["TrainingJobName"] for job in result.jobs]
        everything: list[dict[str, Any]] = clients.sagemaker.list_training_jobs(
            NameContains=NAME, MaxResults=100
        )["TrainingJobSummaries"]
        assert sorted(j["TrainingJobName"] for j in everything) == names  # no orphan, no twin
        server.stop()
    finally:
        server.ensure_stopped()
