"""Completion criteria and BestTrainingJob."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.tuning import (
    Observation,
    best_of,
    converged,
    convergence_window,
    not_improving,
    target_reached,
    trials_not_improving,
)


def obs(number: int, objective: float | None, finished: bool = True) -> Observation:
    return Observation(number, {}, objective, finished)


def test_best_of_ties_go_to_the_earliest() -> None:
    trials = [obs(1, 0.5), obs(2, 0.2), obs(3, 0.2), obs(4, 0.9)]
    assert best_of(trials, "Minimize") == trials[1]
    assert best_of(trials, "Maximize") == trials[3]


def test_best_of_skips_running_failed_and_non_finite() -> None:
    trials = [obs(1, 0.1, finished=False), obs(2, None), obs(3, math.nan), obs(4, -math.inf)]
    assert best_of(trials, "Minimize") is None
    assert best_of([*trials, obs(5, 3.0)], "Minimize") == obs(5, 3.0)


def test_target_reached() -> None:
    assert target_reached(0.9, 0.9, "Maximize")
    assert not target_reached(0.89, 0.9, "Maximize")
    assert target_reached(0.1, 0.1, "Minimize")
    assert not target_reached(0.11, 0.1, "Minimize")
    assert not target_reached(None, 0.1, "Minimize")


def test_improvement_must_be_one_percent_of_the_best() -> None:
    assert trials_not_improving([1.0], "Minimize") == 0
    assert trials_not_improving([1.0, 0.995], "Minimize") == 1
    assert trials_not_improving([1.0, 0.99], "Minimize") == 0
    # Sub-1 % gains move the best but do not reset the count.
    assert trials_not_improving([1.0, 0.995, 0.99, 0.985], "Minimize") == 3
    assert trials_not_improving([-2.0, -1.99], "Maximize") == 1
    assert trials_not_improving([-2.0, -1.98], "Maximize") == 0
    assert trials_not_improving([100.0, 101.0, 101.5], "Maximize") == 1


def test_a_best_of_zero_needs_any_strict_improvement() -> None:
    assert trials_not_improving([0.0, 0.0], "Minimize") == 1
    assert trials_not_improving([0.0, -1e-12], "Minimize") == 0


def test_trials_without_an_objective_do_not_count() -> None:
    assert trials_not_improving([1.0, None, math.nan, 2.0, None], "Minimize") == 1
    assert trials_not_improving([None, None], "Minimize") == 0


def test_not_improving_and_convergence() -> None:
    flat = [1.0] + [1.0] * 9
    assert not_improving(flat, 9, "Minimize")
    assert not not_improving(flat, 10, "Minimize")
    assert convergence_window(30) == 10
    assert convergence_window(100) == 20
    assert not converged(flat, 30, "Minimize")
    assert converged([*flat, 1.0], 30, "Minimize")
    assert not converged([*flat, 1.0], 100, "Minimize")


values = st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), max_size=30)


@settings(deadline=None)
@given(values, st.sampled_from(["Minimize", "Maximize"]))
def test_counting_properties(objectives: list[float | None], direction: str) -> None:
    count = trials_not_improving(objectives, direction)
    results = [v for v in objectives if v is not None]
    assert 0 <= count <= max(0, len(results) - 1)
    if results:
        best = min(results) if direction == "Minimize" else max(results)
        step = 0.02 * abs(best) + 1.0
        better = best - step if direction == "Minimize" else best + step
        worse = best + step if direction == "Minimize" else best - step
        assert trials_not_improving([*objectives, better], direction) == 0
        assert trials_not_improving([*objectives, worse], direction) == count + 1


def test_unknown_direction() -> None:
    with pytest.raises(ValueError, match="'Up'"):
        best_of([obs(1, 1.0)], "Up")
