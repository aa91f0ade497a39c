"""The algorithm contract: what every built-in declares, as plain data the API can read.

A built-in is a package `opensage.algorithms.<name>` with:

* `spec.py`: an `Algorithm` (below): its hyperparameter table, metrics, channels and content
  types. Plain data that imports no ML library, so the API layer checks a CreateTrainingJob
  against it (a `ValidationException` naming the hyperparameter, before any process starts) and
  fills `MetricDefinitions` from it.
* `__main__.py`: `python -m opensage.algorithms.<name> train`, the training program
  (`opensage.algorithms.runner.main(SPEC, train)` for most; `train(env)` reads the channels and
  writes the model directory).
* `serve.py`: `load(model_dir)` -> a serving handler (`opensage.serving.handler.Handler`).

SageMaker sends every hyperparameter as a string. The table says, for each name, its type,
default, valid range or options and whether it is required; `HyperparameterTable.validate`
turns the strings into typed values or raises one `HyperparameterError` whose message always
starts with `Hyperparameter '<name>'`. Strings are read as SageMaker's clients write them:
booleans as `true`/`True`, lists as JSON (`'["msd", "ssd"]'`, what the SDK sends) or comma
lists, and `auto` where the documentation allows it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

Value = int | float | str | bool | tuple[str, ...]
"""A validated value: a number, a string (or `"auto"`), a bool, or the items of a list."""

AUTO: Final = "auto"
TUNING_OBJECTIVE: Final = "_tuning_objective_metric"
"""Set by a tuning job on every training job it starts, for every algorithm."""


class UserError(Exception):
    """A problem in the job's inputs (hyperparameters, channels, data) that the user can fix.

    It becomes `ClientError: <message>` in the failure file; anything else is a bug or an
    environment problem and becomes `AlgorithmError: ...`.
    """


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


POSITIVE: Final = Interval(0, low_open=True)
NON_NEGATIVE: Final = Interval(0)
UNIT: Final = Interval(0, 1)
OPEN_UNIT: Final = Interval(0, 1, low_open=True, high_open=True)
AT_LEAST_1: Final = Interval(1)


@dataclass(frozen=True)
class Hyperparameter:
    """One row of a table.

    `auto`: the string `auto` is also valid (and the documented default may be `auto`).
    `options` of a LIST kind restrict its items. `native=False` marks what the program uses
    itself rather than passing on to the library underneath (XGBoost's `num_round`).
    """

    name: str
    kind: Kind
    default: str | None = None
    interval: Interval | None = None
    options: tuple[str, ...] = ()
    required: bool = False
    aliases: tuple[str, ...] = ()
    tunable_range: Interval | None = None
    auto: bool = False
    native: bool = True


class HyperparameterError(ValueError):
    """A bad hyperparameter; the message names it, then says what is wrong."""

    def __init__(self, name: str, problem: str, value: str | None = None) -> None:
        self.name = name
        if value is None:
            super().__init__(f"Hyperparameter '{name}' {problem}")
        else:
            super().__init__(f"Hyperparameter '{name}': value '{clip(value)}' {problem}")


def clip(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


Check = Callable[[Mapping[str, Value]], None]
"""A rule across several hyperparameters; raises `HyperparameterError`."""


@dataclass(frozen=True)
class HyperparameterTable:
    """An algorithm's hyperparameters, and the rules that involve more than one of them.

    `validate` refuses unknown names, as SageMaker's algorithms do; `sagemaker_*` keys (added by
    SageMaker tooling) and `_tuning_objective_metric` are accepted.
    """

    algorithm: str
    rows: tuple[Hyperparameter, ...]
    checks: tuple[Check, ...] = ()
    by_name: Mapping[str, Hyperparameter] = field(init=False, repr=False)
    aliases: Mapping[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {hp.name: hp for hp in self.rows})
        aliases = {alias: hp.name for hp in self.rows for alias in hp.aliases}
        object.__setattr__(self, "aliases", aliases)

    def __iter__(self) -> Iterator[Hyperparameter]:
        return iter(self.rows)

    def __getitem__(self, name: str) -> Hyperparameter:
        return self.by_name[name]

    def validate(self, raw: Mapping[str, object]) -> dict[str, Value]:
        """Check a `hyperparameters.json` map; typed values under canonical names (aliases
        resolved), given values only: defaults are the program's business (`resolved`)."""
        values: dict[str, Value] = {}
        given_as: dict[str, str] = {}
        for key, raw_value in raw.items():
            if key.startswith(RESERVED_PREFIXES):
                continue
            text = raw_value if isinstance(raw_value, str) else str(raw_value)
            if key == TUNING_OBJECTIVE and key not in self.by_name:
                values[key] = text
                continue
            hp = self._lookup(key)
            if hp.name in given_as:
                raise HyperparameterError(
                    hp.name, f"is given twice, as '{given_as[hp.name]}' and '{key}'"
                )
            given_as[hp.name] = key
            values[hp.name] = parse_value(hp, text)
        for hp in self.rows:
            if hp.required and hp.name not in values:
                raise HyperparameterError(hp.name, "is required")
        for check in self.checks:
            check(values)
        return values

    def resolved(self, raw: Mapping[str, object]) -> dict[str, Value]:
        """`validate`, then every missing hyperparameter that has a default filled with it."""
        values = self.validate(raw)
        for hp in self.rows:
            if hp.name not in values and hp.default is not None:
                values[hp.name] = parse_value(hp, hp.default)
        return values

    def _lookup(self, key: str) -> Hyperparameter:
        name = self.aliases.get(key, key)
        if name not in self.by_name:
            raise HyperparameterError(key, f"is not a hyperparameter of the {self.algorithm}")
        return self.by_name[name]


RESERVED_PREFIXES: Final = ("sagemaker_",)
"""Keys SageMaker tooling adds (`sagemaker_program`, ...): accepted and ignored."""


def parse_value(hp: Hyperparameter, text: str) -> Value:
    """Read one string as `hp` says, or raise `HyperparameterError` naming `hp`."""
    if hp.auto and text.strip().lower() == AUTO:
        return AUTO
    value: Value
    if hp.kind in (Kind.INT, Kind.FLOAT):
        value = _parse_number(hp, text)
    elif hp.kind is Kind.BOOL:
        value = _parse_bool(hp, text)
    elif hp.kind is Kind.CHOICE:
        value = _parse_choice(hp, text)
    elif hp.kind in (Kind.LIST, Kind.METRICS):
        value = parse_list(hp, text)
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
        raise HyperparameterError(hp.name, f"is not {_a(hp)}", text) from None
    if not math.isfinite(number) or (hp.kind is Kind.INT and not number.is_integer()):
        raise HyperparameterError(hp.name, f"is not {_a(hp)}", text)
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


def _a(hp: Hyperparameter) -> str:
    what = "an integer" if hp.kind is Kind.INT else "a finite number"
    return f"{what} or 'auto'" if hp.auto else what


def _parse_bool(hp: Hyperparameter, text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise HyperparameterError(hp.name, "is not one of: true, false", text)
    return value == "true"


def _parse_choice(hp: Hyperparameter, text: str) -> str:
    value = text.strip()
    if value not in hp.options:
        options = (*hp.options, AUTO) if hp.auto else hp.options
        raise HyperparameterError(hp.name, f"is not one of: {', '.join(options)}", text)
    return value


ListCheck = Callable[[str], str | None]


def parse_list(hp: Hyperparameter, text: str, item_problem: ListCheck | None = None) -> Value:
    """A comma list (`auc,logloss`) or the JSON list the SDK sends for Python lists; each item
    one of `hp.options` (when it has options) and passing `item_problem`."""
    items = _json_list(text)
    if items is None:
        items = [item.strip() for item in text.strip().strip("[]").split(",")]
        items = [item.strip().strip("'\"") for item in items]
    if not items or any(not item for item in items):
        raise HyperparameterError(hp.name, "is not a comma-separated list of names", text)
    for item in items:
        problem = item_problem(item) if item_problem else _option_problem(hp, item)
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
    if not hp.options or item in hp.options:
        return None
    return f"has '{clip(item, 40)}', which is not one of: {', '.join(hp.options)}"


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


# --- metrics ----------------------------------------------------------------------------------

Direction = Literal["Minimize", "Maximize"]
NUMBER: Final = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


@dataclass(frozen=True)
class Metric:
    """One metric the training log reports: `<channel>:<name>`, the regex that scrapes it, and
    its direction when a tuning job may use it as the objective (None: logged only)."""

    name: str
    regex: str
    direction: Direction | None = None

    def definition(self) -> dict[str, str]:
        return {"Name": self.name, "Regex": self.regex}


def quality_metric(
    channel: str, name: str, direction: Direction | None, log_name: str | None = None
) -> Metric:
    """A 1P algorithm's metric, logged as `#quality_metric: host=algo-1, test msd <loss>=0.06`
    (`<loss>` for a minimised metric, `<score>` for a maximised one; spec algorithms 1.6)."""
    polarity = "score" if direction == "Maximize" else "loss"
    regex = rf"#quality_metric: host=\S+, {channel} {log_name or name} <{polarity}>={NUMBER}"
    return Metric(f"{channel}:{name}", regex, direction)


def score_metric(channel: str, name: str, direction: Direction | None) -> Metric:
    """A metric logged as `#test_score (algo-1) : ('accuracy', 0.98)` (KNN)."""
    regex = rf"#{channel}_score \(\S+\) : \('{name}', {NUMBER}\)"
    return Metric(f"{channel}:{name}", regex, direction)


# --- channels and the algorithm -----------------------------------------------------------------

RECORDIO: Final = "application/x-recordio-protobuf"
CSV: Final = "text/csv"
JSON: Final = "application/json"
JSONLINES: Final = "application/jsonlines"


@dataclass(frozen=True)
class ChannelSpec:
    """A channel the algorithm reads, the training content types it takes there, and how many
    leading CSV columns are labels when the content type does not say (`label_size`)."""

    name: str
    required: bool = False
    content_types: tuple[str, ...] = (RECORDIO, CSV)
    csv_label_size: int = 1


@dataclass(frozen=True)
class Algorithm:
    """Everything the platform needs to know about a built-in without running it.

    `name` is the package (`opensage.algorithms.<name>`) and the serving handler's name;
    `repositories` are the image repository names that mean it (any region, account, tag).
    """

    name: str
    title: str
    repositories: tuple[str, ...]
    hyperparameters: HyperparameterTable
    metrics: tuple[Metric, ...]
    channels: tuple[ChannelSpec, ...]
    default_content_type: str = RECORDIO
    request_types: tuple[str, ...] = (CSV, JSON, JSONLINES, RECORDIO)
    accept_types: tuple[str, ...] = (JSON, JSONLINES, RECORDIO)
    default_accept: str = JSON
    supports_pipe: bool = True
    max_instances: int | None = 1

    def metric_definitions(self) -> list[dict[str, str]]:
        return [metric.definition() for metric in self.metrics]

    def tunable_objectives(self) -> dict[str, Direction]:
        """`<channel>:<metric>` -> `Maximize` / `Minimize`, for a tuning job's objective."""
        return {m.name: m.direction for m in self.metrics if m.direction is not None}

    def channel(self, name: str) -> ChannelSpec | None:
        return next((c for c in self.channels if c.name == name), None)

    @property
    def training_command(self) -> list[str]:
        return ["-m", f"opensage.algorithms.{self.name}", "train"]
