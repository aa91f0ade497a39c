"""The training job status machine: advance, TRANSITIONS and primary_for."""

from __future__ import annotations

import copy
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.control.lifecycle import (
    MESSAGES,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    Primary,
    Secondary,
    advance,
    initial_state,
    primary_for,
)

S = Secondary


def walk(
    steps: list[Secondary], *, stop_requested: bool = False
) -> tuple[dict[str, Any], list[str]]:
    state = initial_state(0.0)
    if stop_requested:
        state["StopRequested"] = True
    primaries = [advance(state, to, float(i + 1)) for i, to in enumerate(steps)]
    return state, primaries


def test_initial_state() -> None:
    state = initial_state(5.0)
    assert state == {
        "SecondaryStatus": "Starting",
        "SecondaryStatusTransitions": [
            {"Status": "Starting", "StartTime": 5.0, "StatusMessage": MESSAGES[S.STARTING]}
        ],
        "LastModifiedTime": 5.0,
    }


def test_happy_path() -> None:
    state, primaries = walk([S.DOWNLOADING, S.TRAINING, S.UPLOADING, S.COMPLETED])
    assert primaries == ["InProgress", "InProgress", "InProgress", "Completed"]
    assert state["SecondaryStatus"] == "Completed"
    assert state["LastModifiedTime"] == 4.0
    transitions = state["SecondaryStatusTransitions"]
    assert [t["Status"] for t in transitions] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"
    ]  # fmt: skip
    assert [(t["StartTime"], t.get("EndTime")) for t in transitions] == [
        (0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 4.0)
    ]  # fmt: skip
    assert transitions[2]["StatusMessage"] == (
        "Training image download completed. Training in progress."
    )
    assert transitions[-1]["StatusMessage"] == "Training job completed"


def test_custom_message() -> None:
    state = initial_state(0.0)
    advance(state, S.FAILED, 1.0, "ClientError: no data")
    assert state["SecondaryStatusTransitions"][-1] == {
        "Status": "Failed",
        "StartTime": 1.0,
        "EndTime": 1.0,
        "StatusMessage": "ClientError: no data",
    }


def test_stop_path() -> None:
    state, primaries = walk([S.DOWNLOADING, S.TRAINING], stop_requested=False)
    state["StopRequested"] = True
    assert advance(state, S.STOPPING, 3.0) == "Stopping"
    assert advance(state, S.UPLOADING, 4.0) == "Stopping"
    assert advance(state, S.STOPPED, 5.0) == "Stopped"
    assert primaries == ["InProgress", "InProgress"]
    assert state["SecondaryStatusTransitions"][-1]["StatusMessage"] == "Training job stopped"


def test_stop_before_running() -> None:
    _, primaries = walk([S.STOPPING, S.STOPPED], stop_requested=True)
    assert primaries == ["Stopping", "Stopped"]
    _, primaries = walk([S.STOPPED], stop_requested=True)
    assert primaries == ["Stopped"]


def test_max_runtime_exceeded_is_primary_stopped() -> None:
    state, _ = walk([S.DOWNLOADING, S.TRAINING])
    state.update(StopRequested=True, MaxRuntimeExceeded=True)
    assert advance(state, S.STOPPING, 3.0) == "Stopping"
    assert advance(state, S.UPLOADING, 4.0) == "Stopping"
    assert advance(state, S.MAX_RUNTIME_EXCEEDED, 5.0) == "Stopped"
    assert state["SecondaryStatus"] == "MaxRuntimeExceeded"


@pytest.mark.parametrize(
    ("secondary", "stop_requested", "primary"),
    [
        (S.STARTING, False, Primary.IN_PROGRESS),
        (S.DOWNLOADING, False, Primary.IN_PROGRESS),
        (S.TRAINING, False, Primary.IN_PROGRESS),
        (S.UPLOADING, False, Primary.IN_PROGRESS),
        (S.TRAINING, True, Primary.STOPPING),
        (S.UPLOADING, True, Primary.STOPPING),
        (S.STOPPING, False, Primary.STOPPING),
        (S.COMPLETED, False, Primary.COMPLETED),
        (S.COMPLETED, True, Primary.COMPLETED),
        (S.FAILED, True, Primary.FAILED),
        (S.STOPPED, False, Primary.STOPPED),
        (S.MAX_RUNTIME_EXCEEDED, False, Primary.STOPPED),
        (S.MAX_RUNTIME_EXCEEDED, True, Primary.STOPPED),
    ],
)
def test_primary_for(secondary: Secondary, stop_requested: bool, primary: Primary) -> None:
    assert primary_for(secondary, stop_requested=stop_requested) is primary


@pytest.mark.parametrize(
    "steps",
    [
        [S.UPLOADING],  # Starting → Uploading
        [S.TRAINING],  # Starting → Training
        [S.COMPLETED],  # Starting → Completed
        [S.DOWNLOADING, S.COMPLETED],
        [S.DOWNLOADING, S.TRAINING, S.COMPLETED],
        [S.DOWNLOADING, S.TRAINING, S.UPLOADING, S.COMPLETED, S.TRAINING],
        [S.FAILED, S.STARTING],
        [S.STOPPING, S.TRAINING],
        [S.DOWNLOADING, S.TRAINING, S.STOPPED],
        [S.DOWNLOADING, S.DOWNLOADING],
        [S.MAX_RUNTIME_EXCEEDED],
    ],
)
def test_illegal_moves_raise_and_leave_state_alone(steps: list[Secondary]) -> None:
    state, _ = walk(steps[:-1])
    before = copy.deepcopy(state)
    with pytest.raises(IllegalTransition, match="cannot move from"):
        advance(state, steps[-1], 99.0)
    assert state == before


def test_terminal_states_have_no_way_out() -> None:
    for terminal in TERMINAL:
        assert terminal not in TRANSITIONS
    assert {S.COMPLETED, S.FAILED, S.STOPPED, S.MAX_RUNTIME_EXCEEDED} == TERMINAL
    for targets in TRANSITIONS.values():
        assert S.STARTING not in targets


def test_every_state_is_reachable_and_every_active_state_can_fail() -> None:
    reachable = {S.STARTING}
    frontier = [S.STARTING]
    while frontier:
        for target in TRANSITIONS.get(frontier.pop(), set()):
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(Secondary)
    for source, targets in TRANSITIONS.items():
        assert S.FAILED in targets, source


@given(steps=st.lists(st.sampled_from(list(Secondary)), max_size=12))
@settings(max_examples=300, deadline=None)
def test_random_walks_accept_exactly_the_table(steps: list[Secondary]) -> None:
    state = initial_state(0.0)
    stop_requested = False
    for i, to in enumerate(steps):
        current = Secondary(state["SecondaryStatus"])
        before = copy.deepcopy(state)
        if to is S.STOPPING:
            stop_requested = True
            state["StopRequested"] = True
            before["StopRequested"] = True
        if to in TRANSITIONS.get(current, set()):
            primary = advance(state, to, float(i + 1))
            assert primary == primary_for(to, stop_requested=stop_requested).value
            assert state["SecondaryStatus"] == to.value
            transitions = state["SecondaryStatusTransitions"]
            assert transitions[-2]["EndTime"] == float(i + 1)
            assert transitions[-1]["Status"] == to.value
            assert ("EndTime" in transitions[-1]) == (to in TERMINAL)
        else:
            with pytest.raises(IllegalTransition):
                advance(state, to, float(i + 1))
            assert state == before
    transitions = state["SecondaryStatusTransitions"]
    assert transitions[0]["Status"] == "Starting"
    for earlier, later in pairwise(transitions):
        assert Secondary(later["Status"]) in TRANSITIONS[Secondary(earlier["Status"])]
        assert earlier["EndTime"] == later["StartTime"]
