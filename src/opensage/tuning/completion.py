"""TuningJobCompletionCriteria and BestTrainingJob (spec §5.3, §5.4) as pure functions.

"Improving" has one definition throughout: a result improves on the best so far when it is better
by at least IMPROVEMENT (1 %) of |best| (by any amount when the best is 0). The best itself still
moves to any strictly better result, so a run of sub-1 % gains counts as not improving. Results
without a finite objective (failed trials, NaN) neither improve nor count against.

Convergence (ConvergenceDetected, CompleteOnConvergence Enabled): SageMaker does not say how it
decides. Ours: the last convergence_window(budget) = max(10, ceil(20 % of the job's trial budget))
results with an objective all failed to improve. It applies to every strategy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from opensage.tuning.history import MAXIMIZE, Observation, check_direction, loss

IMPROVEMENT = 0.01
MIN_CONVERGENCE_WINDOW = 10
CONVERGENCE_FRACTION = 0.2


def best_of(observations: Iterable[Observation], direction: str) -> Observation | None:
    """The finished trial with the best finite objective; ties go to the earliest listed (pass
    trials in launch order). None until some trial succeeded."""
    check_direction(direction)
    best: Observation | None = None
    best_loss = math.inf
    for o in observations:
        if not o.finished or o.objective is None or not math.isfinite(o.objective):
            continue
        current = loss(o.objective, direction)
        if best is None or current < best_loss:
            best, best_loss = o, current
    return best


def target_reached(best: float | None, target: float, direction: str) -> bool:
    """TargetObjectiveMetricValue: reached at >= target when maximizing, <= when minimizing."""
    check_direction(direction)
    if best is None:
        return False
    return best >= target if direction == MAXIMIZE else best <= target


def trials_not_improving(objectives: Sequence[float | None], direction: str) -> int:
    """How many results since the last one that improved the best by >= 1 %: the value of
    TuningJobCompletionDetails.NumberOfTrainingJobsObjectiveNotImproving.

    `objectives` are the trials' final objectives in the order the trials finished.
    """
    best: float | None = None
    count = 0
    for value in objectives:
        if value is None or not math.isfinite(value):
            continue
        current = loss(value, direction)
        if best is None or best - current >= max(IMPROVEMENT * abs(best), math.ulp(0.0)):
            count = 0
        else:
            count += 1
        best = current if best is None else min(best, current)
    return count


def not_improving(objectives: Sequence[float | None], limit: int, direction: str) -> bool:
    """BestObjectiveNotImproving: `limit` consecutive results failed to improve the best."""
    return trials_not_improving(objectives, direction) >= limit


def convergence_window(budget: int) -> int:
    return max(MIN_CONVERGENCE_WINDOW, math.ceil(CONVERGENCE_FRACTION * budget))


def converged(objectives: Sequence[float | None], budget: int, direction: str) -> bool:
    """ConvergenceDetected; `budget` is MaxNumberOfTrainingJobs (the grid size for Grid)."""
    return not_improving(objectives, convergence_window(budget), direction)
