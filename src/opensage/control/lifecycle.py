"""Training job statuses and the one function that moves a job between them.

SecondaryStatus is the fine-grained state; TrainingJobStatus follows from it (and from whether a
stop was requested). A status never changes anywhere but in `advance`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from opensage.errors import OpenSageError


class Primary(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class Secondary(StrEnum):
    STARTING = "Starting"
    DOWNLOADING = "Downloading"
    TRAINING = "Training"
    UPLOADING = "Uploading"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"


TERMINAL = {
    Secondary.COMPLETED,
    Secondary.FAILED,
    Secondary.STOPPED,
    Secondary.MAX_RUNTIME_EXCEEDED,
}
ACTIVE_PRIMARY = [Primary.IN_PROGRESS.value, Primary.STOPPING.value]

_ENDINGS = {Secondary.FAILED, Secondary.STOPPING}
TRANSITIONS: dict[Secondary, set[Secondary]] = {
    Secondary.STARTING: {Secondary.DOWNLOADING, Secondary.STOPPED, *_ENDINGS},
    Secondary.DOWNLOADING: {Secondary.TRAINING, Secondary.STOPPED, *_ENDINGS},
    Secondary.TRAINING: {Secondary.UPLOADING, *_ENDINGS},
    Secondary.STOPPING: {Secondary.UPLOADING, Secondary.STOPPED, Secondary.FAILED,
                         Secondary.MAX_RUNTIME_EXCEEDED},
    Secondary.UPLOADING: {Secondary.COMPLETED, Secondary.STOPPED, Secondary.FAILED,
                          Secondary.MAX_RUNTIME_EXCEEDED},
}  # fmt: skip

MESSAGES = {
    Secondary.STARTING: "Preparing the instances for training",
    Secondary.DOWNLOADING: "Downloading input data",
    Secondary.TRAINING: "Training image download completed. Training in progress.",
    Secondary.UPLOADING: "Uploading generated training model",
    Secondary.STOPPING: "Stopping the training job",
    Secondary.COMPLETED: "Training job completed",
    Secondary.FAILED: "Training job failed",
    Secondary.STOPPED: "Training job stopped",
    Secondary.MAX_RUNTIME_EXCEEDED: "Training job exceeded MaxRuntimeInSeconds provided",
}


class IllegalTransition(OpenSageError):
    """A bug, not a user error: the supervisor asked for a move the table forbids."""


def primary_for(secondary: Secondary, *, stop_requested: bool) -> Primary:
    if secondary is Secondary.COMPLETED:
        return Primary.COMPLETED
    if secondary is Secondary.FAILED:
        return Primary.FAILED
    if secondary in (Secondary.STOPPED, Secondary.MAX_RUNTIME_EXCEEDED):
        return Primary.STOPPED
    if secondary is Secondary.STOPPING or stop_requested:
        return Primary.STOPPING
    return Primary.IN_PROGRESS


def initial_state(now: float) -> dict[str, Any]:
    return {
        "SecondaryStatus": Secondary.STARTING.value,
        "SecondaryStatusTransitions": [
            {"Status": "Starting", "StartTime": now, "StatusMessage": MESSAGES[Secondary.STARTING]}
        ],
        "LastModifiedTime": now,
    }


def advance(state: dict[str, Any], to: Secondary, now: float, message: str | None = None) -> str:
    """Move `state` (a job's stored state, changed in place) to `to`; returns the new primary."""
    current = Secondary(state["SecondaryStatus"])
    if to not in TRANSITIONS.get(current, set()):
        raise IllegalTransition(f"Training job cannot move from {current} to {to}")
    transitions = state["SecondaryStatusTransitions"]
    transitions[-1]["EndTime"] = now
    entry = {"Status": to.value, "StartTime": now, "StatusMessage": message or MESSAGES[to]}
    if to in TERMINAL:
        entry["EndTime"] = now
    transitions.append(entry)
    state["SecondaryStatus"] = to.value
    state["LastModifiedTime"] = now
    return primary_for(to, stop_requested=bool(state.get("StopRequested"))).value
