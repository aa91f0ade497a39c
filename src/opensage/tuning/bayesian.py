"""The Bayesian strategy: an Optuna surrogate rebuilt from the stored history at every call.

A fresh in-memory study per suggestion keeps the strategy a pure function of (seed, number,
history): nothing survives between calls, so a restarted runner suggests exactly what it would
have.

The surrogate:
- a Gaussian process (Optuna's `GPSampler`: Matern 5/2 with one length scale per parameter,
  log expected improvement, and q-batch log EI over the running trials, so the trials of one
  parallel wave do not pile onto one spot), as SageMaker's own Bayesian search is. Optuna builds
  it on PyTorch, the `deep` extra; on the tuning benchmark's bowl it reaches 1 % of the optimum
  in a median 11 trials where TPE needs 13 and Random 24 (benchmarks/RESULTS.md).
- without PyTorch, Optuna's TPE, multivariate (one joint density over all parameters, so
  interactions are modelled) with the constant liar (running trials count as bad points).
  `SURROGATE` says which one this process uses; a job's suggestions are reproducible on one
  installation, not across the two.
- N_STARTUP_TRIALS = 5 for both: the first five finished trials are random. Tuning budgets are
  small (tens of trials) and the first parallel wave is random anyway, so Optuna's default of 10
  would spend a third of a 30-trial budget before modelling. Warm-start observations count toward
  these five.
- the GP estimates the objective's noise rather than trusting each value (a training job's
  metric moves with its seed and data order).

Observations become Optuna trials: finished with a finite objective → COMPLETE; running →
RUNNING; finished without one (failed, or NaN) → left out, as both surrogates would ignore them.
Warm-start parents (IdenticalDataAndAlgorithm and TransferLearning alike) are plain observations;
one whose values do not fit this space (a parameter missing or out of range) is skipped, and
parameters the space does not know are dropped (`Space.parse`).

ReverseLogarithmic parameters are handed to Optuna as t = -log(1 - x) on a linear axis, the same
warp the space samples with.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from opensage.tuning.history import MAXIMIZE, Observation, check_direction
from opensage.tuning.space import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Parameter,
    Scaling,
    Space,
    Value,
)

N_STARTUP_TRIALS = 5
GP, TPE = "gp", "tpe"
SURROGATE = GP if importlib.util.find_spec("torch") is not None else TPE

# Optuna logs every study and trial at INFO; one suggestion per trial would flood the server log.
optuna.logging.set_verbosity(optuna.logging.WARNING)


def bayesian_point(
    space: Space, seed: int, number: int, history: Sequence[Observation], direction: str
) -> dict[str, Value]:
    """The surrogate's next point given the history, reproducible from (seed, number, history)."""
    check_direction(direction)
    if not space.parameters:
        return {}
    distributions = {p.name: _distribution(p) for p in space.parameters}
    study = optuna.create_study(
        sampler=_sampler(_sampler_seed(seed, number)),
        direction="maximize" if direction == MAXIMIZE else "minimize",
    )
    study.add_trials(_trials(space, distributions, history))
    params = study.ask(distributions).params
    return {p.name: _from_optuna(p, params[p.name]) for p in space.parameters}


def _sampler(seed: int) -> optuna.samplers.BaseSampler:
    if SURROGATE == GP:
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=N_STARTUP_TRIALS)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=N_STARTUP_TRIALS, multivariate=True, constant_liar=True
    )


def _sampler_seed(seed: int, number: int) -> int:
    """A 32-bit seed for trial `number` (Optuna's RandomState takes no wider)."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def _ordered(history: Sequence[Observation]) -> list[Observation]:
    """Parents first, each job by trial number: TPE weighs trials by their order in the study
    (and the GP's fit starts from it), so the order must not depend on how the runner happened to
    list them."""
    return sorted(history, key=lambda o: (o.parent == "", o.parent, o.number))


def _trials(
    space: Space, distributions: dict[str, BaseDistribution], history: Sequence[Observation]
) -> list[optuna.trial.FrozenTrial]:
    trials = []
    for observation in _ordered(history):
        values = space.parse(observation.values)
        if values is None:
            continue
        params = {p.name: _to_optuna(p, values[p.name]) for p in space.parameters}
        if not observation.finished:
            trials.append(
                create_trial(state=TrialState.RUNNING, params=params, distributions=distributions)
            )
        elif observation.objective is not None and math.isfinite(observation.objective):
            trials.append(
                create_trial(
                    params=params, distributions=distributions, value=observation.objective
                )
            )
    return trials


def _distribution(p: Parameter) -> BaseDistribution:
    if isinstance(p, CategoricalParameter):
        return CategoricalDistribution(p.values)
    if isinstance(p, IntegerParameter):
        return IntDistribution(p.min_value, p.max_value, log=p.scaling is Scaling.LOGARITHMIC)
    if p.scaling is Scaling.REVERSE_LOGARITHMIC:
        return FloatDistribution(_reverse_log(p.min_value), _reverse_log(p.max_value))
    return FloatDistribution(p.min_value, p.max_value, log=p.scaling is Scaling.LOGARITHMIC)


def _reverse_log(x: float) -> float:
    return -math.log1p(-x)


def _to_optuna(p: Parameter, value: Value) -> Value:
    if isinstance(p, ContinuousParameter) and p.scaling is Scaling.REVERSE_LOGARITHMIC:
        low, high = _reverse_log(p.min_value), _reverse_log(p.max_value)
        return min(high, max(low, _reverse_log(float(value))))
    return value


def _from_optuna(p: Parameter, raw: Any) -> Value:
    if isinstance(p, CategoricalParameter):
        return str(raw)
    if isinstance(p, IntegerParameter):
        return int(raw)
    x = float(raw)
    if p.scaling is Scaling.REVERSE_LOGARITHMIC:
        x = -math.expm1(-x)
    return min(p.max_value, max(p.min_value, x))
