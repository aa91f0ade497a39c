"""Hyperparameter tuning's decisions as pure functions (spec hosting-transform-tuning §5).

The durable runner (control/tuning_runner.py) stores every trial before acting and, after a
restart, calls these functions again with what it stored; each answer is a deterministic function
of the job's settings, RandomSeed, the trial's 1-based launch number and the history passed in.
Nothing is kept between calls.

Search space (space.py):
- parse_ranges(ranges) -> Space: validate an API ParameterRanges (strings) per §5.2; SpaceError.
- Space.parameters: IntegerParameter / ContinuousParameter (name, kind, min_value, max_value,
  scaling) and CategoricalParameter (name, kind, values), for checks against a built-in's table.
- Space.format(values) -> dict[str, str]: the CreateTrainingJob strings ('7', '0.1015727388941435',
  categorical verbatim).
- Space.parse(texts) -> dict | None: a stored trial's values, None when it does not fit the space.
- Space.to_unit(values) / Space.from_unit(point): the unit-cube view, honouring each scaling.
- Space.grid_size() / Space.grid_combination(index): lexicographic grid of a categorical space.
- auto_scaling(low, high): ScalingType Auto = Logarithmic when low > 0 and high >= 100 * low.

Strategies (strategies.py, bayesian.py):
- suggest(strategy, space, seed, number, history, direction) -> dict[str, str]: trial `number`'s
  tuned hyperparameters. history: Observation(number, values, objective, finished, parent) for
  the job's trials and warm-start parents' trials (parent = the parent job's name).
- check_grid(space, max_number_of_training_jobs) -> int: the Grid job's trial count, or
  TuningConfigError.

Early stopping (early_stopping.py, TrainingJobEarlyStoppingType Auto):
- median_rule_stops(current, others, direction) -> bool: the median rule for one trial.
- median_rule_stopping(trials, direction) -> set[int]: running trials to stop now.

Hyperband (hyperband.py):
- resolve_resources(min_resource, max_resource, static_hyperparameters) -> (min, max).
- hyperband_brackets(min, max) -> tuple[Bracket, ...]; hyperband_bracket(number, min, max) -> int.
- hyperband_stops(trials, min, max, direction) -> set[int]: running trials to stop now.

Completion (completion.py):
- best_of(observations, direction) -> Observation | None: BestTrainingJob, ties to the earliest.
- target_reached(best, target, direction), not_improving(objectives, limit, direction),
  trials_not_improving(objectives, direction) -> int, converged(objectives, budget, direction).

The trial progress the stopping rules read is TrialProgress(number, values, running): a trial's
intermediate objective values, one per emission, in order. Directions are the API's 'Maximize'
and 'Minimize'. Configuration errors are TuningConfigError (a ValidationError and a ValueError).
"""

from opensage.tuning.completion import (
    best_of,
    converged,
    convergence_window,
    not_improving,
    target_reached,
    trials_not_improving,
)
from opensage.tuning.early_stopping import median_rule_stopping, median_rule_stops
from opensage.tuning.errors import SpaceError, TuningConfigError
from opensage.tuning.history import MAXIMIZE, MINIMIZE, Observation, TrialProgress
from opensage.tuning.hyperband import (
    Bracket,
    hyperband_bracket,
    hyperband_brackets,
    hyperband_stops,
    resolve_resources,
)
from opensage.tuning.space import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Parameter,
    Scaling,
    Space,
    Value,
    auto_scaling,
    parse_ranges,
)
from opensage.tuning.strategies import Strategy, check_grid, suggest

__all__ = [
    "MAXIMIZE",
    "MINIMIZE",
    "Bracket",
    "CategoricalParameter",
    "ContinuousParameter",
    "IntegerParameter",
    "Observation",
    "Parameter",
    "Scaling",
    "Space",
    "SpaceError",
    "Strategy",
    "TrialProgress",
    "TuningConfigError",
    "Value",
    "auto_scaling",
    "best_of",
    "check_grid",
    "converged",
    "convergence_window",
    "hyperband_bracket",
    "hyperband_brackets",
    "hyperband_stops",
    "median_rule_stopping",
    "median_rule_stops",
    "not_improving",
    "parse_ranges",
    "resolve_resources",
    "suggest",
    "target_reached",
    "trials_not_improving",
]
