"""Hyperband (spec §5.3): successive-halving brackets over [MinResource, MaxResource], eta = 3.

The resource is the number of objective-metric emissions (epochs) seen in a trial's log. A
training job cannot be paused and resumed, so "promotion" means being allowed to keep running: at
each rung of its bracket a trial continues only while it ranks in the top 1/eta of its bracket's
trials that reached that rung (asynchronous successive halving, as in ASHA and Optuna's
SuccessiveHalvingPruner). Configurations are Random's draws; Hyperband only decides who stops.

Brackets: with s_max = floor(log_eta(MaxResource / MinResource)), bracket b in 0..s_max judges
its trials at the rungs MinResource * eta^(b + k), k = 0, 1, ..., that lie below MaxResource.
Bracket 0 is the most aggressive (first cut at MinResource), bracket s_max the most patient (at
most one rung). Any trial reaching MaxResource is stopped (AWS: "Once a job reaches the
MaxResource value, it is stopped"); none is stopped before MinResource.

Assignment: trials go to brackets in proportion to the configurations each bracket gets in one
Hyperband iteration, n_b = ceil((s_max + 1) * eta^s / (s + 1)) with s = s_max - b its number of
halvings, interleaved over the launch sequence by smooth weighted round-robin, so small budgets
still visit every bracket and trial N's bracket is a function of N alone.

Judging: a running trial is judged at the highest rung r it has reached, against the values at
emission r of all trials of its bracket (any state, itself included) that reached r; it keeps
running while its value is within the best max(1, floor(n / eta)) of those n (ties kept). The
first trial at a rung therefore continues, and one between two rungs can still be stopped when
later trials reach its last rung and outrank it: the decision uses everything known now and never
depends on when the runner polled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opensage.tuning.errors import TuningConfigError
from opensage.tuning.history import TrialProgress, loss

ETA = 3
MAX_RESOURCE_LIMIT = 20000
DEFAULT_MIN_RESOURCE = 1
EPOCH_KEYS = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")


@dataclass(frozen=True)
class Bracket:
    index: int
    rungs: tuple[int, ...]  # resources at which its trials are judged, ascending, < MaxResource
    weight: int  # its configurations per Hyperband iteration: its share of the trials


def resolve_resources(
    min_resource: int | None, max_resource: int | None, static_hyperparameters: Mapping[str, str]
) -> tuple[int, int]:
    """(MinResource, MaxResource) after defaults, inference and the limits of spec §5.2.

    MinResource defaults to 1. A missing MaxResource is read from the first of EPOCH_KEYS among
    the static hyperparameters (plain or JSON-encoded, as the SDK sends them).
    """
    low = DEFAULT_MIN_RESOURCE if min_resource is None else min_resource
    high = _inferred_max_resource(static_hyperparameters) if max_resource is None else max_resource
    if low < 1:
        raise TuningConfigError(f"HyperbandStrategyConfig.MinResource is {low}; it must be >= 1")
    if not 1 <= high <= MAX_RESOURCE_LIMIT:
        raise TuningConfigError(
            f"Hyperband MaxResource is {high}; it must be between 1 and {MAX_RESOURCE_LIMIT}"
        )
    if low > high:
        raise TuningConfigError(
            f"HyperbandStrategyConfig.MinResource ({low}) is greater than MaxResource ({high})"
        )
    return low, high


def _inferred_max_resource(static_hyperparameters: Mapping[str, str]) -> int:
    for key in EPOCH_KEYS:
        if key in static_hyperparameters:
            text = static_hyperparameters[key]
            epochs = _whole_number(text)
            if epochs is None:
                raise TuningConfigError(
                    f"Hyperband infers MaxResource from the static hyperparameter {key}, but "
                    f"{text!r} is not a whole number of epochs; set HyperbandStrategyConfig"
                    ".MaxResource"
                )
            return epochs
    raise TuningConfigError(
        "Hyperband needs MaxResource: set StrategyConfig.HyperbandStrategyConfig.MaxResource or "
        f"one of the static hyperparameters {', '.join(EPOCH_KEYS)}"
    )


def _whole_number(text: str) -> int | None:
    try:
        value = json.loads(text)
        if isinstance(value, str):  # '"10"': a JSON-encoded string, as framework estimators send
            value = json.loads(value)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def hyperband_brackets(min_resource: int, max_resource: int) -> tuple[Bracket, ...]:
    """The brackets of the module docstring, most aggressive first; integer arithmetic only, so
    rungs land on whole epochs and no float rounding moves a bracket boundary."""
    s_max = 0
    while min_resource * ETA ** (s_max + 1) <= max_resource:
        s_max += 1
    brackets = []
    for b in range(s_max + 1):
        rungs = []
        rung = min_resource * ETA**b
        while rung < max_resource:
            rungs.append(rung)
            rung *= ETA
        halvings = s_max - b
        weight = -(-(s_max + 1) * ETA**halvings // (halvings + 1))
        brackets.append(Bracket(b, tuple(rungs), weight))
    return tuple(brackets)


def _assignments(count: int, weights: Sequence[int]) -> list[int]:
    """Brackets of trials 1..count: smooth weighted round-robin (nginx's), ties to the lower."""
    credit = [0] * len(weights)
    total = sum(weights)
    chosen = []
    for _ in range(count):
        credit = [c + w for c, w in zip(credit, weights, strict=True)]
        best = max(range(len(weights)), key=lambda i: (credit[i], -i))
        credit[best] -= total
        chosen.append(best)
    return chosen


def hyperband_bracket(number: int, min_resource: int, max_resource: int) -> int:
    """The bracket of trial `number` (1-based), for the runner to record with the trial."""
    weights = [b.weight for b in hyperband_brackets(min_resource, max_resource)]
    return _assignments(number, weights)[number - 1]


def hyperband_stops(
    trials: Sequence[TrialProgress], min_resource: int, max_resource: int, direction: str
) -> set[int]:
    """Numbers of the running trials to stop now. `trials` holds all of the job's trials, finished
    ones included: they are the peers a running trial is ranked against."""
    brackets = hyperband_brackets(min_resource, max_resource)
    assignment = _assignments(
        max((t.number for t in trials), default=0), [b.weight for b in brackets]
    )
    bracket_of = {t.number: assignment[t.number - 1] for t in trials}
    cutoffs: dict[tuple[int, int], float] = {}
    stops = set()
    for trial in trials:
        if not trial.running:
            continue
        if len(trial.values) >= max_resource:
            stops.add(trial.number)
            continue
        bracket = bracket_of[trial.number]
        reached = [r for r in brackets[bracket].rungs if r <= len(trial.values)]
        if not reached:
            continue
        key = (bracket, reached[-1])
        if key not in cutoffs:
            cutoffs[key] = _cutoff(trials, bracket_of, key, direction)
        if loss(trial.values[key[1] - 1], direction) > cutoffs[key]:
            stops.add(trial.number)
    return stops


def _cutoff(
    trials: Sequence[TrialProgress],
    bracket_of: Mapping[int, int],
    key: tuple[int, int],
    direction: str,
) -> float:
    """The worst loss at rung key[1] that still ranks in the bracket's top 1/eta."""
    bracket, rung = key
    losses = sorted(
        loss(t.values[rung - 1], direction)
        for t in trials
        if bracket_of[t.number] == bracket and len(t.values) >= rung
    )
    return losses[max(1, len(losses) // ETA) - 1]
