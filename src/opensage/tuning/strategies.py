"""One entry point for the four strategies: trial `number`'s hyperparameters, as strings.

Every suggestion is a pure function of (strategy, space, RandomSeed, number, history): the runner
may call it again after a restart and launch the same trial. Random and Hyperband draw from an RNG
keyed by (seed, number) alone, so trial N is the same whatever happened before it; Grid is
combination N; only Bayesian reads the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from opensage.tuning.bayesian import bayesian_point
from opensage.tuning.errors import TuningConfigError
from opensage.tuning.history import MINIMIZE, Observation
from opensage.tuning.space import CategoricalParameter, Space, Value


class Strategy(StrEnum):
    BAYESIAN = "Bayesian"
    RANDOM = "Random"
    HYPERBAND = "Hyperband"
    GRID = "Grid"


def suggest(
    strategy: str,
    space: Space,
    seed: int,
    number: int,
    history: Sequence[Observation] = (),
    direction: str = MINIMIZE,
) -> dict[str, str]:
    """The formatted tuned hyperparameters of trial `number` (1-based launch sequence).

    `history` is every trial of the job launched so far (running ones included) plus warm-start
    parents' trials; only Bayesian uses it.
    """
    if seed < 0 or number < 1:
        raise ValueError(f"seed must be >= 0 and number >= 1, got seed={seed}, number={number}")
    kind = Strategy(strategy)
    if kind is Strategy.GRID:
        values = grid_point(space, number)
    elif kind is Strategy.BAYESIAN:
        values = bayesian_point(space, seed, number, history, direction)
    else:
        values = random_point(space, seed, number)
    return space.format(values)


def random_point(space: Space, seed: int, number: int) -> dict[str, Value]:
    """Independent draws, uniform along each parameter's scaling (spec §5.3)."""
    rng = np.random.default_rng([seed, number])
    return space.from_unit([float(u) for u in rng.random(len(space.parameters))])


def grid_point(space: Space, number: int) -> dict[str, Value]:
    """Combination `number` of the lexicographic enumeration (spec §5.3)."""
    if number > space.grid_size():
        raise ValueError(f"trial {number} is past the grid's {space.grid_size()} combinations")
    return space.grid_combination(number - 1)


def check_grid(space: Space, max_number_of_training_jobs: int | None) -> int:
    """The number of trials a Grid job runs, after the rules of spec §5.2."""
    numeric = [p.name for p in space.parameters if not isinstance(p, CategoricalParameter)]
    if numeric:
        raise TuningConfigError(
            f"The Grid strategy accepts CategoricalParameterRanges only; {numeric} are "
            "integer or continuous ranges: list their values as categorical ones"
        )
    if not space.parameters:
        raise TuningConfigError("The Grid strategy needs at least one CategoricalParameterRanges")
    size = space.grid_size()
    if max_number_of_training_jobs is not None and max_number_of_training_jobs != size:
        raise TuningConfigError(
            f"MaxNumberOfTrainingJobs is {max_number_of_training_jobs} but the grid has {size} "
            f"combinations; omit it or set it to {size}"
        )
    return size
