"""TrainingJobEarlyStoppingType Auto: the median rule and its guards."""

from __future__ import annotations

import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.tuning import TrialProgress, median_rule_stopping, median_rule_stops

PEERS = [[5.0, 4.0, 3.0], [6.0, 5.0, 4.0], [7.0, 6.0, 5.0]]  # running averages at 3: 4, 5, 6


def test_stops_when_worse_than_the_median_of_running_averages() -> None:
    assert median_rule_stops([9.0, 9.0, 5.5], PEERS, "Minimize")
    assert not median_rule_stops([9.0, 9.0, 4.5], PEERS, "Minimize")


def test_compares_against_running_averages_not_latest_values() -> None:
    # Latest values 3, 4, 5 (median 4) but running averages 4, 5, 6 (median 5).
    assert not median_rule_stops([0.0, 0.0, 4.5], PEERS, "Minimize")


def test_maximizing_flips_the_comparison() -> None:
    assert median_rule_stops([0.0, 0.0, 4.5], PEERS, "Maximize")
    assert not median_rule_stops([0.0, 0.0, 5.5], PEERS, "Maximize")


def test_a_tie_with_the_median_does_not_stop() -> None:
    assert not median_rule_stops([1.0, 1.0, 5.0], PEERS, "Minimize")


def test_no_judgement_before_min_epochs() -> None:
    assert not median_rule_stops([99.0, 99.0], PEERS, "Minimize")
    assert median_rule_stops([99.0, 99.0], PEERS, "Minimize", min_epochs=2)


def test_needs_enough_peers_that_reached_the_epoch() -> None:
    peers = [*PEERS[:2], [1.0, 1.0]]  # the third has not reached epoch 3
    assert not median_rule_stops([9.0, 9.0, 9.0], peers, "Minimize")
    assert median_rule_stops([9.0, 9.0, 9.0], peers, "Minimize", min_peers=2)


def test_nan_counts_as_worst() -> None:
    assert median_rule_stops([1.0, 1.0, float("nan")], PEERS, "Minimize")
    assert median_rule_stops([1.0, 1.0, float("nan")], PEERS, "Maximize")
    diverged = [[float("nan")] * 3] * 3
    assert not median_rule_stops([1e9, 1e9, 1e9], PEERS[:1] + diverged, "Minimize")


series = st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8)


@settings(deadline=None)
@given(series, st.lists(series, max_size=8), st.sampled_from(["Minimize", "Maximize"]))
def test_rule_matches_its_definition(
    current: list[float], others: list[list[float]], direction: str
) -> None:
    epoch = len(current)
    averages = [statistics.fmean(o[:epoch]) for o in others if len(o) >= epoch]
    sign = 1 if direction == "Minimize" else -1
    expected = (
        epoch >= 3
        and len(averages) >= 3
        and sign * current[-1] > sign * statistics.median(averages)
    )
    if averages and abs(current[-1] - statistics.median(averages)) < 1e-6:
        return  # too close to call in floating point
    assert median_rule_stops(current, others, direction) == expected


def test_stopping_judges_running_trials_against_earlier_ones_only() -> None:
    trials = [
        TrialProgress(1, [5.0, 4.0, 3.0], running=False),
        TrialProgress(2, [6.0, 5.0, 4.0], running=False),
        TrialProgress(3, [7.0, 6.0, 5.0], running=False),
        TrialProgress(4, [9.0, 9.0, 9.0], running=True),
        TrialProgress(5, [9.0, 9.0, 9.0], running=False),
        TrialProgress(6, [1.0, 1.0, 1.0], running=True),
    ]
    assert median_rule_stopping(trials, "Minimize") == {4}
    # Trials launched later are not peers: 3 and 4 have too few earlier trials to be judged.
    early = [TrialProgress(3, [7.0, 6.0, 5.0], running=True), *trials[3:]]
    assert median_rule_stopping(early, "Minimize") == set()
