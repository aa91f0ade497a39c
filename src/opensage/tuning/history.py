"""What the durable runner hands back to the pure functions: trials as stored, nothing more.

Every decision in this package is a function of these records (plus the job's settings), so a
runner that restarts rebuilds exactly the same decisions from its database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAXIMIZE = "Maximize"
MINIMIZE = "Minimize"


@dataclass(frozen=True)
class Observation:
    """A trial as the search strategies see it.

    `values` are the tuned hyperparameters as launched (the formatted strings stored as
    TunedHyperParameters). `objective` is the final objective, None while unknown or when the trial
    never emitted it. `finished` is False while the trial runs (the Bayesian strategy then treats
    it as a pending point, so parallel trials spread out). `parent` names the warm-start parent
    tuning job the trial comes from; "" marks a trial of the job itself.
    """

    number: int
    values: Mapping[str, str]
    objective: float | None = None
    finished: bool = True
    parent: str = ""


@dataclass(frozen=True)
class TrialProgress:
    """A trial's intermediate objective values, one per emission (epoch), in log order.

    The number of values is the trial's resource so far (Hyperband) and its current epoch (the
    median rule); `number` is the 1-based launch sequence, which orders trials.
    """

    number: int
    values: Sequence[float]
    running: bool


def check_direction(direction: str) -> None:
    """Fail early on a direction that is neither of the API's two spellings."""
    if direction not in (MAXIMIZE, MINIMIZE):
        raise ValueError(f"objective type must be {MAXIMIZE!r} or {MINIMIZE!r}, not {direction!r}")


def loss(value: float, direction: str) -> float:
    """The value on a lower-is-better scale, so comparisons need no branch on the direction.

    NaN (a diverged metric) counts as the worst possible value in either direction.
    """
    check_direction(direction)
    if math.isnan(value):
        return math.inf
    return value if direction == MINIMIZE else -value
