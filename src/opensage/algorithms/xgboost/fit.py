"""From validated hyperparameters to `xgb.train`, and the booster it returns.

The round log is xgboost's own evaluation monitor (what `verbose_eval=True` adds), which prints
`[i]\\ttrain-<m>:<v>\\tvalidation-<m>:<v>` to stdout and flushes each line. Early stopping
watches the validation set on the tuning objective's metric if one is set, else on the last
listed eval metric, else on xgboost's default metric for the objective.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import xgboost as xgb

from opensage.algorithms.xgboost import custom_metrics, metrics
from opensage.algorithms.xgboost.errors import UserError
from opensage.algorithms.xgboost.hyperparameters import BY_NAME, Value, objective_of

_USER_ERROR_HINTS: Final = ("label", "base_score", "num_class", "feature", "weight", "qid")
"""XGBoost errors that mention these are about the data or hyperparameters, not a bug."""
_LOG_PREFIX: Final = re.compile(r"^\[[0-9:]+\] [^\s:]+:\d+: ")


@dataclass(frozen=True)
class Plan:
    """Everything `xgb.train` gets, worked out from the hyperparameters."""

    params: dict[str, Any]
    num_round: int
    metric_names: tuple[str, ...]
    early_stopping_rounds: int | None
    stopping_metric: str | None


def plan(values: Mapping[str, Value]) -> Plan:
    """Work out the xgboost params, the metrics to log and how to stop early."""
    listed = values.get("eval_metric", ())
    names = list(listed) if isinstance(listed, tuple) else []
    tuned = metrics.objective_metric(str(values.get("_tuning_objective_metric", "")))
    if tuned and tuned not in names:
        names.append(tuned)
    params = xgboost_params(values)
    builtin = [name for name in names if metrics.base_metric(name) not in metrics.CONTAINER_METRICS]
    if builtin:
        params["eval_metric"] = builtin
    rounds = values.get("early_stopping_rounds")
    return Plan(
        params=params,
        num_round=_as_int(values["num_round"]),
        metric_names=tuple(names),
        early_stopping_rounds=_as_int(rounds) if rounds is not None else None,
        stopping_metric=tuned or (names[-1] if names else None),
    )


def _as_int(value: Value) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected a validated integer, got {value!r}")
    return value


def xgboost_params(values: Mapping[str, Value]) -> dict[str, Any]:
    """The hyperparameters xgboost knows, in the form xgboost 3 expects."""
    params: dict[str, Any] = {"seed": 0}
    for name, value in values.items():
        if BY_NAME[name].native and name != "eval_metric":
            params[name] = ",".join(value) if isinstance(value, tuple) else value
    if params.get("objective") == "reg:linear":
        params["objective"] = "reg:squarederror"  # the old name; xgboost 3 warns on it
    if params.get("tree_method") == "gpu_hist":
        params.update(tree_method="hist", device="cuda")  # xgboost 2+ spelling of gpu_hist
    return params


def train(plan: Plan, dtrain: xgb.DMatrix, dvalid: xgb.DMatrix | None) -> xgb.Booster:
    """Run `xgb.train`, logging every round; data-caused xgboost errors become `UserError`."""
    evals = [(dtrain, "train")] + ([(dvalid, "validation")] if dvalid is not None else [])
    objective = objective_of(plan.params)
    try:
        return xgb.train(
            plan.params,
            dtrain,
            num_boost_round=plan.num_round,
            evals=evals,
            verbose_eval=False,  # the monitor is in `_callbacks`, ahead of early stopping
            callbacks=_callbacks(plan, dvalid is not None),
            custom_metric=custom_metrics.make_custom_metric(plan.metric_names, objective),
        )
    except xgb.core.XGBoostError as exc:
        message = _clean(str(exc))
        if any(hint in message.lower() for hint in _USER_ERROR_HINTS):
            raise UserError(f"XGBoost could not train on this data: {message}") from None
        raise RuntimeError(f"XGBoost training failed: {message}") from exc


def _callbacks(plan: Plan, has_validation: bool) -> list[xgb.callback.TrainingCallback]:
    """The round logger, then early stopping: so the round that stops is logged too."""
    monitor = xgb.callback.EvaluationMonitor()
    if plan.early_stopping_rounds is None or not has_validation:
        return [monitor]
    metric = plan.stopping_metric
    return [
        monitor,
        xgb.callback.EarlyStopping(
            rounds=plan.early_stopping_rounds,
            metric_name=metric,
            data_name="validation",
            maximize=metrics.is_maximized(metric) if metric else None,
        ),
    ]


def _clean(message: str) -> str:
    """The first line of an xgboost error, without its timestamp, source file or stack."""
    first = message.split("\nStack trace", 1)[0].strip()
    return _LOG_PREFIX.sub("", first)
