"""The four strategies: determinism, independence from history where promised, Grid order, and
that the Bayesian strategy actually learns, on each surrogate it can run on here (the Gaussian
process needs PyTorch; TPE is what a process without it uses)."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import random
import statistics
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Observation,
    Scaling,
    Space,
    TuningConfigError,
    bayesian,
    check_grid,
    parse_ranges,
    suggest,
)

SURROGATES = [bayesian.TPE] + ([bayesian.GP] if importlib.util.find_spec("torch") else [])


@contextlib.contextmanager
def surrogate_of_bayesian(name: str) -> Iterator[None]:
    shipped = bayesian.SURROGATE
    bayesian.SURROGATE = name
    try:
        yield
    finally:
        bayesian.SURROGATE = shipped


@pytest.fixture(params=SURROGATES)
def surrogate(request: pytest.FixtureRequest) -> Iterator[str]:
    with surrogate_of_bayesian(request.param):
        yield request.param


SPACE = Space(
    (
        IntegerParameter("trees", 10, 1000, Scaling.LOGARITHMIC),
        ContinuousParameter("x", -5.0, 5.0),
        ContinuousParameter("lr", 1e-4, 1e-1, Scaling.LOGARITHMIC),
        ContinuousParameter("momentum", 0.9, 0.999, Scaling.REVERSE_LOGARITHMIC),
        CategoricalParameter("opt", ("sgd", "adam", '"rmsprop"')),
    )
)


def objective(values: dict[str, str]) -> float:
    return (float(values["x"]) - 1.0) ** 2 + (0.5 if values["opt"] == "sgd" else 0.0)


def history(seed: int, count: int, running: int = 0) -> list[Observation]:
    observations = []
    for n in range(1, count + 1):
        values = suggest("Random", SPACE, seed, n)
        finished = n <= count - running
        score = objective(values) if finished else None
        observations.append(Observation(n, values, score, finished))
    return observations


@pytest.mark.parametrize("strategy", ["Random", "Hyperband", "Bayesian"])
@pytest.mark.usefixtures("surrogate")
def test_same_inputs_same_suggestion(strategy: str) -> None:
    past = history(3, 12, running=2)
    first = suggest(strategy, SPACE, 42, 13, past, "Minimize")
    assert suggest(strategy, SPACE, 42, 13, list(past), "Minimize") == first
    assert suggest(strategy, SPACE, 43, 13, past, "Minimize") != first


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**40), st.integers(1, 1000), st.integers(0, 8))
def test_random_trial_depends_on_seed_and_number_only(seed: int, number: int, seen: int) -> None:
    alone = suggest("Random", SPACE, seed, number)
    assert suggest("Random", SPACE, seed, number, history(seed + 1, seen), "Maximize") == alone
    assert suggest("Hyperband", SPACE, seed, number, history(seed, seen)) == alone


def test_random_trials_differ_from_one_another() -> None:
    draws = {suggest("Random", SPACE, 5, n)["x"] for n in range(1, 51)}
    assert len(draws) == 50


@pytest.mark.usefixtures("surrogate")
def test_bayesian_ignores_the_order_the_history_comes_in() -> None:
    past = history(9, 20, running=3)
    shuffled = past[:]
    random.Random(1).shuffle(shuffled)
    assert suggest("Bayesian", SPACE, 1, 21, shuffled) == suggest("Bayesian", SPACE, 1, 21, past)


@pytest.mark.usefixtures("surrogate")
def test_bayesian_steers_away_from_running_trials() -> None:
    past = history(9, 20)
    for number in (21, 22, 23):
        alone = suggest("Bayesian", SPACE, 1, number, past)
        pending = Observation(99, alone, None, finished=False)
        assert suggest("Bayesian", SPACE, 1, number, [*past, pending]) != alone


@pytest.mark.usefixtures("surrogate")
def test_bayesian_warm_start_skips_what_does_not_fit_and_drops_unknown_keys() -> None:
    own = history(4, 8)
    parent = [
        Observation(i, {**o.values, "retired": "1"}, o.objective, parent="old-job")
        for i, o in enumerate(history(6, 8), start=1)
    ]
    clean = [Observation(o.number, dict(o.values), o.objective, parent="old-job") for o in parent]
    unusable = [
        Observation(1, {k: v for k, v in own[0].values.items() if k != "x"}, 0.0, parent="p"),
        Observation(2, {**own[0].values, "x": "7.5"}, 0.0, parent="p"),
        Observation(3, {**own[0].values, "opt": "adagrad"}, 0.0, parent="p"),
        Observation(4, own[0].values, None, parent="p"),
        Observation(5, own[0].values, float("nan"), parent="p"),
    ]
    expected = suggest("Bayesian", SPACE, 2, 9, own + clean)
    assert suggest("Bayesian", SPACE, 2, 9, own + parent + unusable) == expected
    assert suggest("Bayesian", SPACE, 2, 9, own) != expected


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 30), st.sampled_from(["Minimize", "Maximize"]))
def test_bayesian_suggestions_lie_in_the_space(seed: int, seen: int, direction: str) -> None:
    past = history(seed, seen, running=1)
    for name in SURROGATES:
        with surrogate_of_bayesian(name):
            values = suggest("Bayesian", SPACE, seed, seen + 1, past, direction)
        parsed = SPACE.parse(values)
        assert parsed is not None
        assert SPACE.format(parsed) == values


def test_the_surrogate_is_the_gaussian_process_wherever_pytorch_is_installed() -> None:
    torch = importlib.util.find_spec("torch") is not None
    assert (bayesian.GP if torch else bayesian.TPE) == bayesian.SURROGATE


def quadratic(values: dict[str, str]) -> float:
    return (float(values["x"]) - 1.3) ** 2 + (float(values["y"]) + 0.7) ** 2


def best_after(strategy: str, seed: int, trials: int) -> float:
    space = parse_ranges(
        {
            "ContinuousParameterRanges": [
                {"Name": "x", "MinValue": "-5", "MaxValue": "5"},
                {"Name": "y", "MinValue": "-5", "MaxValue": "5"},
            ]
        }
    )
    seen: list[Observation] = []
    for n in range(1, trials + 1):
        values = suggest(strategy, space, seed, n, seen, "Minimize")
        seen.append(Observation(n, values, quadratic(values)))
    return min(o.objective for o in seen if o.objective is not None)


@pytest.mark.usefixtures("surrogate")
def test_bayesian_beats_random_on_a_quadratic() -> None:
    seeds = range(5)
    bayesian = statistics.median(best_after("Bayesian", s, 20) for s in seeds)
    random_ = statistics.median(best_after("Random", s, 20) for s in seeds)
    assert bayesian < random_ / 2


def test_bayesian_of_an_empty_space_is_empty() -> None:
    assert suggest("Bayesian", Space(), 1, 1) == {}


@pytest.mark.usefixtures("surrogate")
def test_bayesian_handles_degenerate_ranges() -> None:
    space = Space(
        (
            IntegerParameter("k", 4, 4, Scaling.LOGARITHMIC),
            ContinuousParameter("m", 0.9, 0.9, Scaling.REVERSE_LOGARITHMIC),
            ContinuousParameter("x", 0.0, 1.0),
            CategoricalParameter("c", ("only",)),
        )
    )
    seen = [Observation(n, suggest("Random", space, 1, n), float(n % 5)) for n in range(1, 12)]
    suggestion = suggest("Bayesian", space, 3, 12, seen)
    assert suggestion | {"x": "-"} == {"k": "4", "m": "0.9", "x": "-", "c": "only"}


GRID = Space(
    (CategoricalParameter("opt", ("sgd", "adam")), CategoricalParameter("bs", ("32", "64", "128")))
)


def test_grid_runs_every_combination_once_in_order() -> None:
    trials = [suggest("Grid", GRID, 0, n) for n in range(1, 7)]
    assert [tuple(t.values()) for t in trials] == list(
        itertools.product(("sgd", "adam"), ("32", "64", "128"))
    )
    with pytest.raises(ValueError, match="past the grid's 6 combinations"):
        suggest("Grid", GRID, 0, 7)


def test_check_grid() -> None:
    assert check_grid(GRID, None) == 6
    assert check_grid(GRID, 6) == 6
    with pytest.raises(TuningConfigError, match=r"MaxNumberOfTrainingJobs is 5 .* set it to 6"):
        check_grid(GRID, 5)
    with pytest.raises(TuningConfigError, match=r"\['x'\] are integer or continuous"):
        check_grid(Space((*GRID.parameters, ContinuousParameter("x", 0.0, 1.0))), None)
    with pytest.raises(TuningConfigError, match="at least one"):
        check_grid(Space(), None)


@pytest.mark.parametrize(("seed", "number"), [(-1, 1), (0, 0)])
def test_seed_and_number_are_checked(seed: int, number: int) -> None:
    with pytest.raises(ValueError, match="seed must be >= 0 and number >= 1"):
        suggest("Random", SPACE, seed, number)


def test_unknown_strategy_and_direction_are_refused() -> None:
    with pytest.raises(ValueError, match="Annealing"):
        suggest("Annealing", SPACE, 0, 1)
    with pytest.raises(ValueError, match="'Lower'"):
        suggest("Bayesian", SPACE, 0, 1, (), "Lower")
