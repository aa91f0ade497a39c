"""The DeepAR built-in on the algorithm contract: its table, metrics, channels and content types
(spec algorithms §15). Plain data, no torch: the API server imports it to validate a
CreateTrainingJob before any process starts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from opensage.algorithms.base import (
    JSON,
    JSONLINES,
    Algorithm,
    ChannelSpec,
    Hyperparameter,
    HyperparameterError,
    HyperparameterTable,
    Interval,
    Kind,
    Value,
    quality_metric,
)

PARQUET: Final = "application/x-parquet"
LIKELIHOODS: Final = ("gaussian", "beta", "negative-binomial", "student-T", "deterministic-L1")
CELL_TYPES: Final = ("lstm", "gru")
AUTO: Final = "auto"
IGNORE: Final = "ignore"
DEFAULT_QUANTILES: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
UNITS: Final = ("M", "W", "D", "H", "min")
_FREQ: Final = re.compile(r"\s*(\d*)\s*(M|W|D|H|min)\s*")


@dataclass(frozen=True)
class Frequency:
    """`time_freq` read: `5min` is Frequency(5, "min")."""

    multiple: int
    unit: str

    def __str__(self) -> str:
        return f"{self.multiple}{self.unit}"


def parse_frequency(text: str) -> Frequency:
    """`<int?>` then one of M, W, D, H, min (`D`, `2H`, `15min`); ValueError otherwise."""
    match = _FREQ.fullmatch(text)
    if match is None or (match.group(1) and int(match.group(1)) < 1):
        raise ValueError(
            "is not a frequency: give an optional positive integer and one of M, W, D, H, min "
            "(for example D, 2H or 5min)"
        )
    return Frequency(int(match.group(1) or 1), match.group(2))


def parse_cardinality(text: str) -> str | tuple[int, ...]:
    """`auto`, `ignore` (also ""), or the categories of each `cat` field: `[2,3]` or `2,3`."""
    value = text.strip()
    if value.lower() in (AUTO, IGNORE, ""):
        return value.lower() or IGNORE
    inner = value.removeprefix("[").removesuffix("]")
    try:
        items = json.loads(f"[{inner}]")
    except ValueError:
        items = None
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in items)
    ):
        raise ValueError(
            'is not auto, ignore, "" or a list of positive integers such as [2,3] (the number '
            "of categories of each cat field)"
        )
    return tuple(items)


def parse_dynamic_feat(text: str) -> str | int:
    """`auto`, `ignore` (also ""), or how many `dynamic_feat` arrays each record has."""
    value = text.strip()
    if value.lower() in (AUTO, IGNORE, ""):
        return value.lower() or IGNORE
    if not value.isdigit():
        raise ValueError('is not auto, ignore, "" or a non-negative integer')
    return int(value)


def parse_quantiles(items: tuple[str, ...]) -> tuple[float, ...]:
    """Quantile levels, each strictly between 0 and 1."""
    found = []
    for item in items:
        try:
            level = float(item)
        except ValueError:
            raise ValueError(f"has '{item}', which is not a number") from None
        if not 0 < level < 1:
            raise ValueError(f"has {item}, which is not strictly between 0 and 1")
        found.append(level)
    return tuple(found)


def _free_text_rules(values: Mapping[str, Value]) -> None:
    """The rows the generic kinds cannot say: frequency, cardinality, dynamic features and
    quantiles have their own grammars."""
    readers = {
        "time_freq": parse_frequency,
        "cardinality": parse_cardinality,
        "num_dynamic_feat": parse_dynamic_feat,
    }
    for name, read in readers.items():
        if name in values:
            try:
                read(str(values[name]))
            except ValueError as exc:
                raise HyperparameterError(name, str(exc), str(values[name])) from None
    quantiles = values.get("test_quantiles")
    if isinstance(quantiles, tuple):
        try:
            parse_quantiles(quantiles)
        except ValueError as exc:
            raise HyperparameterError("test_quantiles", str(exc), ",".join(quantiles)) from None


TABLE: Final = HyperparameterTable(
    "DeepAR Forecasting algorithm",
    (
        Hyperparameter(
            "context_length",
            Kind.INT,
            interval=Interval(1, 1_000_000),
            required=True,
            tunable_range=Interval(1, 200),
        ),
        Hyperparameter(
            "epochs", Kind.INT, interval=Interval(1), required=True, tunable_range=Interval(1, 1000)
        ),
        Hyperparameter("prediction_length", Kind.INT, interval=Interval(1), required=True),
        Hyperparameter("time_freq", Kind.TEXT, required=True),
        Hyperparameter("cardinality", Kind.TEXT, AUTO),
        Hyperparameter("num_dynamic_feat", Kind.TEXT, AUTO),
        Hyperparameter("cell_type", Kind.CHOICE, "lstm", options=CELL_TYPES),
        Hyperparameter(
            "dropout_rate",
            Kind.FLOAT,
            "0.1",
            Interval(0, 1, high_open=True),
            tunable_range=Interval(0, 0.2),
        ),
        Hyperparameter("early_stopping_patience", Kind.INT, interval=Interval(1)),
        Hyperparameter(
            "embedding_dimension", Kind.INT, "10", Interval(1), tunable_range=Interval(1, 50)
        ),
        Hyperparameter(
            "learning_rate",
            Kind.FLOAT,
            "0.001",
            Interval(0, 1, low_open=True),
            tunable_range=Interval(1e-5, 1e-1),
        ),
        Hyperparameter("likelihood", Kind.CHOICE, "student-T", options=LIKELIHOODS),
        Hyperparameter(
            "mini_batch_size", Kind.INT, "128", Interval(1), tunable_range=Interval(32, 1028)
        ),
        Hyperparameter("num_cells", Kind.INT, "40", Interval(1), tunable_range=Interval(30, 200)),
        Hyperparameter("num_layers", Kind.INT, "2", Interval(1), tunable_range=Interval(1, 8)),
        Hyperparameter("num_eval_samples", Kind.INT, "100", Interval(1)),
        Hyperparameter(
            "test_quantiles", Kind.LIST, json.dumps(list(DEFAULT_QUANTILES)).replace(" ", "")
        ),
    ),
    checks=(_free_text_rules,),
)
"""`cell_type` (lstm, gru) is the issue's addition; SageMaker's DeepAR always uses an LSTM."""

_DATA: Final = (JSONLINES, JSON, PARQUET)

SPEC: Final = Algorithm(
    name="deepar",
    title="DeepAR Forecasting",
    repositories=("forecasting-deepar",),
    hyperparameters=TABLE,
    metrics=(
        quality_metric("test", "RMSE", "Minimize"),
        quality_metric("test", "mean_wQuantileLoss", "Minimize"),
        quality_metric("train", "final_loss", "Minimize"),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=_DATA, csv_label_size=0),
        ChannelSpec("test", content_types=_DATA, csv_label_size=0),
    ),
    default_content_type=JSONLINES,
    request_types=(JSON, JSONLINES),
    accept_types=(JSON, JSONLINES),
    default_accept=JSON,
    supports_pipe=False,
)
