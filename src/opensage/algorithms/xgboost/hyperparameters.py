"""XGBoost hyperparameters: one declarative table and the one function that checks values.

SageMaker sends every hyperparameter as a string. The table (`HYPERPARAMETERS`) says, for each
name, its type, default, valid range or options and whether it is required, like the container's
`hyperparameter_validation.py`; `validate` turns the strings into typed values or raises one
`HyperparameterError` whose message always starts with `Hyperparameter '<name>'`. The table is
plain data and imports no ML library, so the API layer can reuse it (CreateTrainingJob checks,
`SupportedHyperParameters`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from opensage.algorithms.xgboost import metrics

Value = int | float | str | tuple[str, ...]
"""A validated value: numbers, a string, or the items of a list-valued hyperparameter."""


class Kind(StrEnum):
    """How a hyperparameter's string is read."""

    INT = "Integer"
    FLOAT = "Continuous"
    CHOICE = "Categorical"
    BOOL = "Boolean"
    LIST = "CommaSeparatedList"
    METRICS = "MetricList"
    TUPLE = "Tuple"
    NESTED_LIST = "NestedList"
    TEXT = "FreeText"

    @property
    def api_type(self) -> str:
        """The SageMaker `ParameterType`: Integer, Continuous, Categorical or FreeText."""
        if self in (Kind.INT, Kind.FLOAT):
            return self.value
        return "Categorical" if self in (Kind.CHOICE, Kind.BOOL) else "FreeText"


@dataclass(frozen=True)
class Interval:
    """A range of numbers; `None` is unbounded. `str` renders `[0, 1]`, `(0, inf)`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, x: float) -> bool:
        above = self.low is None or (x > self.low if self.low_open else x >= self.low)
        below = self.high is None or (x < self.high if self.high_open else x <= self.high)
        return above and below

    def __str__(self) -> str:
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{_num(self.low, '-inf')}, {_num(self.high, 'inf')}{right}"


def _num(x: float | None, infinity: str) -> str:
    if x is None:
        return infinity
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Hyperparameter:
    """One row of the table. `xgboost=False`: the program uses or ignores it; xgb never sees it."""

    name: str
    kind: Kind
    default: str | None = None
    interval: Interval | None = None
    options: tuple[str, ...] = ()
    required: bool = False
    aliases: tuple[str, ...] = ()
    tunable_range: Interval | None = None
    xgboost: bool = True


class HyperparameterError(ValueError):
    """A bad hyperparameter; the message names it, then says what is wrong."""

    def __init__(self, name: str, problem: str, value: str | None = None) -> None:
        self.name = name
        if value is None:
            super().__init__(f"Hyperparameter '{name}' {problem}")
        else:
            super().__init__(f"Hyperparameter '{name}': value '{_clip(value)}' {problem}")


def _clip(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


POSITIVE: Final = Interval(0, low_open=True)
NON_NEGATIVE: Final = Interval(0)
UNIT: Final = Interval(0, 1)
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
    H("num_round", _INT, None, AT_LEAST_1, required=True, tunable_range=ROUNDS, xgboost=False),
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
    H("early_stopping_rounds", _INT, None, Interval(1), xgboost=False),
    H("csv_weights", _INT, "0", FLAG, xgboost=False),
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
    H("sketch_eps", _FLOAT, "0.03", Interval(0, 1, low_open=True, high_open=True), xgboost=False),
    H("lambda_bias", _FLOAT, "0", UNIT, xgboost=False),
    H("dsplit", _CHOICE, "row", options=("row", "col"), xgboost=False),
    H("predictor", _CHOICE, "auto", options=PREDICTORS, xgboost=False),
    H("single_precision_histogram", _BOOL, "false", xgboost=False),
    H("deterministic_histogram", _BOOL, "true", xgboost=False),
    # SageMaker-only switches.
    H("_kfold", _INT, None, Interval(2), xgboost=False),
    H("_num_cv_round", _INT, "1", Interval(1), xgboost=False),
    H("_tuning_objective_metric", Kind.TEXT, xgboost=False),
    H("save_model_on_termination", _BOOL, "false", xgboost=False),
    H("use_dask_gpu_training", _BOOL, "false", xgboost=False),
    H("prob_buffer_row", _INT, None, Interval(1, low_open=True), xgboost=False),
)
"""The table: name, type, default (as documented), range or options, required, aliases."""

BY_NAME: Final = {hp.name: hp for hp in HYPERPARAMETERS}
ALIASES: Final = {alias: hp.name for hp in HYPERPARAMETERS for alias in hp.aliases}
RESERVED_PREFIXES: Final = ("sagemaker_",)
"""Keys SageMaker tooling adds (`sagemaker_program`, ...): accepted and ignored."""


def validate(raw: Mapping[str, object]) -> dict[str, Value]:
    """Check a `hyperparameters.json` map; return typed values under canonical names.

    Aliases (`learning_rate`) become their canonical name (`eta`); `sagemaker_*` keys are
    dropped; anything else unknown is refused, as the container does.
    """
    values: dict[str, Value] = {}
    given_as: dict[str, str] = {}
    for key, raw_value in raw.items():
        if key.startswith(RESERVED_PREFIXES):
            continue
        hp = _lookup(key)
        if hp.name in given_as:
            raise HyperparameterError(
                hp.name, f"is given twice, as '{given_as[hp.name]}' and '{key}'"
            )
        given_as[hp.name] = key
        values[hp.name] = parse_value(
            hp, raw_value if isinstance(raw_value, str) else str(raw_value)
        )
    for hp in HYPERPARAMETERS:
        if hp.required and hp.name not in values:
            raise HyperparameterError(hp.name, "is required")
    _check_num_class(values)
    _check_metrics(values)
    return values


def _lookup(key: str) -> Hyperparameter:
    name = ALIASES.get(key, key)
    if name not in BY_NAME:
        raise HyperparameterError(key, "is not a hyperparameter of the XGBoost algorithm")
    return BY_NAME[name]


def parse_value(hp: Hyperparameter, text: str) -> Value:
    """Read one string as `hp` says, or raise `HyperparameterError` naming `hp`."""
    value: Value
    if hp.kind in (Kind.INT, Kind.FLOAT):
        value = _parse_number(hp, text)
    elif hp.kind in (Kind.CHOICE, Kind.BOOL):
        value = _parse_choice(hp, text)
    elif hp.kind in (Kind.LIST, Kind.METRICS):
        value = _parse_list(hp, text)
    elif hp.kind is Kind.TUPLE:
        value = _parse_tuple(hp, text)
    elif hp.kind is Kind.NESTED_LIST:
        value = _parse_nested_list(hp, text)
    else:
        value = text
    return value


def _parse_number(hp: Hyperparameter, text: str) -> int | float:
    try:
        number = float(text.strip())
    except ValueError:
        raise HyperparameterError(hp.name, f"is not {_a(hp.kind)}", text) from None
    if not math.isfinite(number) or (hp.kind is Kind.INT and not number.is_integer()):
        raise HyperparameterError(hp.name, f"is not {_a(hp.kind)}", text)
    value: int | float = _parse_int(text) if hp.kind is Kind.INT else number
    if hp.interval is not None and value not in hp.interval:
        raise HyperparameterError(hp.name, f"is not in {hp.interval}", text)
    return value


def _parse_int(text: str) -> int:
    """`"10"` and also `"10.0"` or `"1e3"` (what a float-typed client may send) as an int."""
    try:
        return int(text.strip())
    except ValueError:
        return int(float(text.strip()))


def _a(kind: Kind) -> str:
    return "an integer" if kind is Kind.INT else "a finite number"


def _parse_choice(hp: Hyperparameter, text: str) -> str:
    value = text.strip()
    if hp.kind is Kind.BOOL:
        value = value.lower()
        options: tuple[str, ...] = ("true", "false")
    else:
        options = hp.options
    if value not in options:
        raise HyperparameterError(hp.name, f"is not one of: {', '.join(options)}", text)
    return value


def _parse_list(hp: Hyperparameter, text: str) -> tuple[str, ...]:
    """A comma list (`auc,logloss`) or the JSON list the SDK sends for Python lists."""
    items = _json_list(text)
    if items is None:
        items = [item.strip() for item in text.split(",")]
    if not items or any(not item for item in items):
        raise HyperparameterError(hp.name, "is not a comma-separated list of names", text)
    for item in items:
        problem = _metric_problem(item) if hp.kind is Kind.METRICS else _option_problem(hp, item)
        if problem:
            raise HyperparameterError(hp.name, problem, text)
    return tuple(items)


def _json_list(text: str) -> list[str] | None:
    if not text.strip().startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        return None
    return [item.strip() for item in parsed]


def _option_problem(hp: Hyperparameter, item: str) -> str | None:
    if item in hp.options:
        return None
    return f"has '{_clip(item, 40)}', which is not one of: {', '.join(hp.options)}"


def _metric_problem(item: str) -> str | None:
    """Why `item` is not an eval metric xgboost or the program can compute, else None."""
    name, at, threshold = item.partition("@")
    if not at:
        if name in metrics.METRIC_NAMES:
            return None
        known = ", ".join(sorted(metrics.METRIC_NAMES))
        return f"has '{_clip(item, 40)}', which is not one of: {known}"
    if name not in metrics.THRESHOLD_METRICS:
        return f"has '{_clip(item, 40)}', but only error, ndcg and map take a '@t' threshold"
    try:
        float(threshold)
    except ValueError:
        return f"has '{_clip(item, 40)}', whose threshold after '@' is not a number"
    return None


def _parse_tuple(hp: Hyperparameter, text: str) -> str:
    """`(1,-1,0)`: one of -1, 0, 1 per feature; returned in the form xgboost reads."""
    inner = text.strip().removeprefix("(").removesuffix(")").removeprefix("[").removesuffix("]")
    items = [item.strip() for item in inner.split(",")]
    if any(item not in ("-1", "0", "1") for item in items):
        raise HyperparameterError(hp.name, "is not a tuple of -1, 0 and 1, like (1,-1,0)", text)
    return f"({','.join(items)})"


def _parse_nested_list(hp: Hyperparameter, text: str) -> str:
    """`[[0,1],[2,3]]`: lists of feature indices; returned as JSON text, as xgboost reads it."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    if not _is_index_lists(parsed):
        raise HyperparameterError(hp.name, "is not a list of lists of feature indices", text)
    return json.dumps(parsed)


def _is_index_lists(parsed: object) -> bool:
    if not isinstance(parsed, list) or not parsed:
        return False
    return all(
        isinstance(group, list)
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in group)
        for group in parsed
    )


def objective_of(values: Mapping[str, Value]) -> str:
    """The objective in force: the given one or xgboost's default."""
    return str(values.get("objective", BY_NAME["objective"].default))


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
