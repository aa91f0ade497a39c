"""Hyperband: brackets, assignment of trials to brackets, stops, and MaxResource inference."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.tuning import (
    Bracket,
    TrialProgress,
    TuningConfigError,
    hyperband_bracket,
    hyperband_brackets,
    hyperband_stops,
    resolve_resources,
)


def test_brackets_of_a_power_of_three() -> None:
    assert hyperband_brackets(1, 81) == (
        Bracket(0, (1, 3, 9, 27), 81),
        Bracket(1, (3, 9, 27), 34),
        Bracket(2, (9, 27), 15),
        Bracket(3, (27,), 8),
        Bracket(4, (), 5),
    )


def test_brackets_of_other_ranges() -> None:
    assert hyperband_brackets(2, 10) == (Bracket(0, (2, 6), 3), Bracket(1, (6,), 2))
    assert hyperband_brackets(5, 5) == (Bracket(0, (), 1),)
    assert hyperband_brackets(1, 2) == (Bracket(0, (1,), 1),)


def test_assignment_follows_the_weights_and_interleaves() -> None:
    brackets = hyperband_brackets(1, 81)
    total = sum(b.weight for b in brackets)
    chosen = [hyperband_bracket(n, 1, 81) for n in range(1, total + 1)]
    assert Counter(chosen) == {b.index: b.weight for b in brackets}
    assert set(chosen[:13]) == {0, 1, 2, 3, 4}  # small budgets see every bracket
    assert chosen[:total] == [hyperband_bracket(n, 1, 81) for n in range(1, total + 1)]


def in_bracket(bracket: int, count: int, low: int = 1, high: int = 81) -> list[int]:
    numbers = (n for n in range(1, 1000) if hyperband_bracket(n, low, high) == bracket)
    return [next(numbers) for _ in range(count)]


def test_a_trial_reaching_max_resource_stops() -> None:
    n = in_bracket(4, 1)[0]
    trials = [TrialProgress(n, [1.0] * 81, True), TrialProgress(n + 1000, [1.0] * 90, False)]
    assert hyperband_stops(trials, 1, 81, "Minimize") == {n}


def test_weak_trials_stop_at_a_rung_and_the_best_third_continues() -> None:
    numbers = in_bracket(0, 6)
    finals = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # value at the first rung (1 emission)
    trials = [TrialProgress(n, [v], True) for n, v in zip(numbers, finals, strict=True)]
    assert hyperband_stops(trials, 1, 81, "Minimize") == set(numbers[2:])
    assert hyperband_stops(trials, 1, 81, "Maximize") == set(numbers[:4])


def test_the_first_trial_at_a_rung_continues_and_fewer_than_eta_keep_one() -> None:
    a, b = in_bracket(0, 2)
    assert hyperband_stops([TrialProgress(a, [0.9], True)], 1, 81, "Minimize") == set()
    pair = [TrialProgress(a, [0.9, 0.8], True), TrialProgress(b, [0.5], True)]
    assert hyperband_stops(pair, 1, 81, "Minimize") == {a}


def test_judged_at_the_highest_rung_reached_against_its_bracket_only() -> None:
    a, b, c = in_bracket(1, 3)
    other = in_bracket(0, 1)[0]
    trials = [
        TrialProgress(a, [9.0, 9.0, 1.0, 1.0], True),  # rung 3: value 1.0, best of its bracket
        TrialProgress(b, [0.0, 0.0, 5.0], False),
        TrialProgress(c, [0.0, 0.0], True),  # below bracket 1's first rung (3): not judged
        TrialProgress(other, [0.0, 0.0, 0.0, 0.0], False),  # bracket 0: not a peer
    ]
    assert hyperband_stops(trials, 1, 81, "Minimize") == set()
    trials[1] = TrialProgress(b, [0.0, 0.0, 0.5], False)
    assert hyperband_stops(trials, 1, 81, "Minimize") == {a}


def test_nothing_stops_before_min_resource() -> None:
    numbers = in_bracket(0, 4, low=3, high=27)
    trials = [TrialProgress(n, [float(i)] * 2, True) for i, n in enumerate(numbers)]
    assert hyperband_stops(trials, 3, 27, "Minimize") == set()


progress = st.builds(
    TrialProgress,
    st.integers(1, 200),
    st.lists(st.floats(-10, 10), max_size=30),
    st.booleans(),
)


@settings(deadline=None)
@given(
    st.lists(progress, max_size=30, unique_by=lambda t: t.number),
    st.integers(1, 5),
    st.integers(0, 25),
    st.sampled_from(["Minimize", "Maximize"]),
)
def test_stops_respect_the_invariants(
    trials: list[TrialProgress], low: int, span: int, direction: str
) -> None:
    high = low + span
    stops = hyperband_stops(trials, low, high, direction)
    running = {t.number for t in trials if t.running}
    assert stops <= running
    assert {t.number for t in trials if t.running and len(t.values) >= high} <= stops
    assert not {t.number for t in trials if len(t.values) < low} & stops
    assert hyperband_stops(list(reversed(trials)), low, high, direction) == stops


@pytest.mark.parametrize(
    ("static", "expected"),
    [
        ({"epochs": "30"}, 30),
        ({"num_epochs": '"12"'}, 12),
        ({"n-epochs": "7.0"}, 7),
        ({"numepochs": "5", "n_epochs": "9"}, 5),
        ({"epochs": "10", "num_epochs": "99"}, 10),
    ],
)
def test_max_resource_is_inferred_from_epochs(static: dict[str, str], expected: int) -> None:
    assert resolve_resources(None, None, static) == (1, expected)


def test_given_resources_win() -> None:
    assert resolve_resources(2, 50, {"epochs": "10"}) == (2, 50)


@pytest.mark.parametrize(
    ("low", "high", "static", "message"),
    [
        (None, None, {"max_iter": "10"}, "needs MaxResource: .*epochs, numepochs"),
        (None, None, {"epochs": "ten"}, "static hyperparameter epochs, but 'ten'"),
        (None, None, {"epochs": "2.5"}, "'2.5' is not a whole number"),
        (None, 20001, {}, "MaxResource is 20001; .*between 1 and 20000"),
        (None, None, {"epochs": "0"}, "MaxResource is 0"),
        (0, 10, {}, "MinResource is 0"),
        (11, 10, {}, r"MinResource \(11\) is greater than MaxResource \(10\)"),
    ],
)
def test_resource_errors(
    low: int | None, high: int | None, static: dict[str, str], message: str
) -> None:
    with pytest.raises(TuningConfigError, match=message):
        resolve_resources(low, high, static)
