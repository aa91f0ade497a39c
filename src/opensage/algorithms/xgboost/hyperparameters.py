"""XGBoost hyperparameters: the table (`TABLE`, on the algorithm contract of
`opensage.algorithms.base`) and XGBoost's rules across hyperparameters.

`validate` turns the strings into typed values or raises one `HyperparameterError` whose message
always starts with `Hyperparameter '<name>'`, like the container's `hyperparameter_validation.py`.
The table is plain data and imports no ML library, so the API layer reuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    NON_NEGATIVE,
    POSITIVE,
    UNIT,
    Hyperparameter,
    HyperparameterError,
    HyperparameterTable,
    Interval,
    Kind,
    Value,
    clip,
)
from opensage.algorithms.xgboost import metrics

__all__ = ["HyperparameterError", "Interval", "Kind", "Value", "validate"]

FRACTION: Final = Interval(0, 1, low_open=True)
FLAG: Final = Interval(0, 1)
AT_LEAST_1: Final = Interval(1)
ROUNDS: Final = Interval(1, 4000)
UP_TO_5: Final = Interval(0, 5)
UP_TO_1000: Final = Interval(0, 1000)
PREDICTORS: Final = ("auto", "cpu_predictor", "gpu_predictor")
_INT, _FLOAT, _CHOICE, _BOOL = Kind.INT, Kind.FLOAT, Kind.CHOICE, Kind.BOOL
H = Hyperparameter

OBJECTIVES: Final = (
    *("binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson"),
    *("multi:softmax", "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map"),
    *("reg:linear", "reg:squarederror", "reg:logistic", "reg:gamma", "reg:pseudohubererror"),
    *("reg:squaredlogerror", "reg:absoluteerror", "reg:tweedie", "survival:aft", "survival:cox"),
)
MULTICLASS: Final = ("multi:softmax", "multi:softprob")
UPDATERS: Final = (
    *("grow_colmaker", "grow_histmaker", "grow_quantile_histmaker", "grow_gpu_hist"),
    *("grow_gpu_approx", "sync", "refresh", "prune", "shotgun", "coord_descent"),
)

HYPERPARAMETERS: Final[tuple[Hyperparameter, ...]] = (
    H("num_round", _INT, None, AT_LEAST_1, required=True, tunable_range=ROUNDS, native=False),
    H("num_class", _INT, None, Interval(2)),
    H("objective", _CHOICE, "reg:squarederror", options=OBJECTIVES),
    H("booster", _CHOICE, "gbtree", options=("gbtree", "gblinear", "dart")),
    H("eta", _FLOAT, "0.3", UNIT, aliases=("learning_rate",), tunable_range=Interval(0.1, 0.5)),
    H("gamma", _FLOAT, "0", NON_NEGATIVE, aliases=("min_split_loss",), tunable_range=UP_TO_5),
    H("max_depth", _INT, "6", NON_NEGATIVE, tunable_range=Interval(0, 10)),
    H("min_child_weight", _FLOAT, "1", NON_NEGATIVE, tunable_range=Interval(0, 120)),
    H("max_delta_step", _FLOAT, "0", NON_NEGATIVE, tunable_range=Interval(0, 10)),
    H("subsample", _FLOAT, "1", FRACTION, tunable_range=Interval(0.5, 1)),
    H("colsample_bytree", _FLOAT, "1", FRACTION, tunable_range=Interval(0.5, 1)),
    H("colsample_bylevel", _FLOAT, "1", FRACTION, tunable_range=Interval(0.1, 1)),
    H("colsample_bynode", _FLOAT, "1", FRACTION, tunable_range=Interval(0.1, 1)),
    H("lambda", _FLOAT, "1", NON_NEGATIVE, aliases=("reg_lambda",), tunable_range=UP_TO_1000),
    H("alpha", _FLOAT, "0", NON_NEGATIVE, aliases=("reg_alpha",), tunable_range=UP_TO_1000),
    H("tree_method", _CHOICE, "auto", options=("auto", "exact", "approx", "hist", "gpu_hist")),
    H("grow_policy", _CHOICE, "depthwise", options=("depthwise", "lossguide")),
    H("max_leaves", _INT, "0", NON_NEGATIVE),
    H("max_bin", _INT, "256", Interval(2)),
    H("scale_pos_weight", _FLOAT, "1", POSITIVE),
    H("base_score", _FLOAT, "0.5", NON_NEGATIVE),
    H("eval_metric", Kind.METRICS),
    H("early_stopping_rounds", _INT, None, Interval(1), native=False),
    H("csv_weights", _INT, "0", FLAG, native=False),
    H("seed", _INT, "0", Interval(-(2**31), 2**31 - 1, low_open=True, high_open=True)),
    H("nthread", _INT, None, Interval(1)),
    H("verbosity", _INT, "1", Interval(0, 3)),
    H("num_parallel_tree", _INT, "1", Interval(1)),
    H("monotone_constraints", Kind.TUPLE),
    H("interaction_constraints", Kind.NESTED_LIST),
    H("updater", Kind.LIST, options=UPDATERS),
    H("refresh_leaf", _INT, "1", FLAG),
    H("process_type", _CHOICE, "default", options=("default", "update")),
    H("sample_type", _CHOICE, "uniform", options=("uniform", "weighted")),
    H("normalize_type", _CHOICE, "tree", options=("tree", "forest")),
    H("rate_drop", _FLOAT, "0", UNIT),
    H("one_drop", _INT, "0", FLAG),
    H("skip_drop", _FLOAT, "0", UNIT),
    H("tweedie_variance_power", _FLOAT, "1.5", Interval(1, 2, low_open=True, high_open=True)),
    H("aft_loss_distribution", _CHOICE, "normal", options=("normal", "logistic", "extreme")),
    H("aft_loss_distribution_scale", _FLOAT, "1", NON_NEGATIVE),
    H("sampling_method", _CHOICE, "uniform", options=("uniform", "gradient_based")),
    # Accepted for compatibility with older images; xgboost 3 no longer has them.
    H("sketch_eps", _FLOAT, "0.03", Interval(0, 1, low_open=True, high_open=True), native=False),
    H("lambda_bias", _FLOAT, "0", UNIT, native=False),
    H("dsplit", _CHOICE, "row", options=("row", "col"), native=False),
    H("predictor", _CHOICE, "auto", options=PREDICTORS, native=False),
    H("single_precision_histogram", _BOOL, "false", native=False),
    H("deterministic_histogram", _BOOL, "true", native=False),
    # SageMaker-only switches.
    H("_kfold", _INT, None, Interval(2), native=False),
    H("_num_cv_round", _INT, "1", Interval(1), native=False),
    H("_tuning_objective_metric", Kind.TEXT, native=False),
    H("save_model_on_termination", _BOOL, "false", native=False),
    H("use_dask_gpu_training", _BOOL, "false", native=False),
    H("prob_buffer_row", _INT, None, Interval(1, low_open=True), native=False),
)
"""The table: name, type, default (as documented), range or options, required, aliases."""


def _check_metric_names(values: Mapping[str, Value]) -> None:
    listed = values.get("eval_metric")
    if isinstance(listed, tuple):
        for item in listed:
            problem = _metric_problem(item)
            if problem:
                raise HyperparameterError("eval_metric", problem, ",".join(listed))


def _metric_problem(item: str) -> str | None:
    """Why `item` is not an eval metric xgboost or the program can compute, else None."""
    name, at, threshold = item.partition("@")
    if not at:
        if name in metrics.METRIC_NAMES:
            return None
        known = ", ".join(sorted(metrics.METRIC_NAMES))
        return f"has '{clip(item, 40)}', which is not one of: {known}"
    if name not in metrics.THRESHOLD_METRICS:
        return f"has '{clip(item, 40)}', but only error, ndcg and map take a '@t' threshold"
    try:
        float(threshold)
    except ValueError:
        return f"has '{clip(item, 40)}', whose threshold after '@' is not a number"
    return None


def _check_num_class(values: Mapping[str, Value]) -> None:
    """`num_class` is needed exactly for the multiclass objectives."""
    objective = objective_of(values)
    if objective in MULTICLASS and "num_class" not in values:
        raise HyperparameterError(
            "objective",
            "needs hyperparameter 'num_class' (the number of classes, an integer >= 2)",
            objective,
        )
    if objective not in MULTICLASS and "num_class" in values:
        raise HyperparameterError(
            "num_class",
            f"is only valid with objective multi:softmax or multi:softprob, not '{objective}'",
        )


def _check_metrics(values: Mapping[str, Value]) -> None:
    """Each eval metric (and the tuning objective's) must suit the objective."""
    objective = objective_of(values)
    listed = values.get("eval_metric", ())
    for metric in listed if isinstance(listed, tuple) else ():
        problem = metric_objective_problem(metric, objective)
        if problem:
            raise HyperparameterError("eval_metric", problem, metric)
    tuning = values.get("_tuning_objective_metric")
    chosen = metrics.objective_metric(str(tuning)) if tuning is not None else None
    problem = metric_objective_problem(chosen, objective) if chosen else None
    if problem:
        raise HyperparameterError("_tuning_objective_metric", problem, str(tuning))


TABLE: Final = HyperparameterTable(
    "XGBoost algorithm",
    HYPERPARAMETERS,
    checks=(_check_metric_names, _check_num_class, _check_metrics),
)
BY_NAME: Final = TABLE.by_name
ALIASES: Final = TABLE.aliases


def validate(raw: Mapping[str, object]) -> dict[str, Value]:
    """Check a `hyperparameters.json` map; return typed values under canonical names.

    Aliases (`learning_rate`) become their canonical name (`eta`); `sagemaker_*` keys are
    dropped; anything else unknown is refused, as the container does.
    """
    return TABLE.validate(raw)


def objective_of(values: Mapping[str, Value]) -> str:
    """The objective in force: the given one or xgboost's default."""
    return str(values.get("objective", BY_NAME["objective"].default))


def metric_objective_problem(metric: str, objective: str) -> str | None:
    """Why `metric` cannot be computed for `objective`, else None (the container's rules)."""
    name = metrics.base_metric(metric)
    binary = objective.startswith("binary:") or objective == "reg:logistic"
    if name == "auc" and not objective.startswith(("binary:", "rank:")):
        return f"is only valid with binary: and rank: objectives, not '{objective}'"
    if name == "aft-nloglik" and objective != "survival:aft":
        return f"is only valid with objective survival:aft, not '{objective}'"
    if name in metrics.BINARY_ONLY_METRICS and not binary:
        return f"is only valid with binary objectives, not '{objective}'"
    if name in metrics.CLASSIFICATION_METRICS and not (binary or objective in MULTICLASS):
        return f"is only valid with binary: and multi: objectives, not '{objective}'"
    if name in ("mse", "r2") and objective == "multi:softprob":
        return "needs one prediction per row; objective multi:softprob gives one per class"
    return None
