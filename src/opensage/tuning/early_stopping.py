"""TrainingJobEarlyStoppingType Auto: SageMaker's median stopping rule (spec §5.3).

After epoch e of a trial with objective v: take every previous trial (launched before it, any
state) that has reached epoch e, the running average of its objective over epochs 1..e, and the
median of those averages; stop the trial if v is worse than that median.

SageMaker documents no guards. Ours are conservative, so noise alone rarely stops a trial:
- no judgement before epoch MIN_EPOCHS (3): first epochs are noisy and say little;
- no judgement with fewer than MIN_PEERS (3) previous trials at that epoch: the median of one or
  two trials is one trial's luck;
- ties do not stop (strictly worse only); a NaN value counts as the worst possible value.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from opensage.tuning.history import TrialProgress, loss

MIN_EPOCHS = 3
MIN_PEERS = 3


def median_rule_stops(
    current: Sequence[float],
    others: Sequence[Sequence[float]],
    direction: str,
    *,
    min_epochs: int = MIN_EPOCHS,
    min_peers: int = MIN_PEERS,
) -> bool:
    """Whether the trial whose intermediate values are `current` should stop after its latest
    epoch, given the intermediate values of the trials launched before it."""
    epoch = len(current)
    if epoch < max(1, min_epochs):
        return False
    averages = [_average_loss(o[:epoch], direction) for o in others if len(o) >= epoch]
    if len(averages) < max(1, min_peers):
        return False
    return loss(current[-1], direction) > statistics.median(averages)


def median_rule_stopping(trials: Sequence[TrialProgress], direction: str) -> set[int]:
    """Numbers of the running trials the rule stops now; `trials` holds all of the job's trials."""
    ordered = sorted(trials, key=lambda t: t.number)
    return {
        trial.number
        for i, trial in enumerate(ordered)
        if trial.running
        and median_rule_stops(trial.values, [p.values for p in ordered[:i]], direction)
    }


def _average_loss(values: Sequence[float], direction: str) -> float:
    average = math.fsum(loss(v, direction) for v in values) / len(values)
    return math.inf if math.isnan(average) else average
