"""The BlazingText built-in on the algorithm contract: its table, metrics, channels and content
types (spec algorithms §10). Plain data, no torch: the API server imports it to validate a
CreateTrainingJob before any process starts."""

from __future__ import annotations

from collections.abc import Mapping
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

TEXT: Final = "text/plain"
CSV_TEXT: Final = "text/csv"
WORD2VEC_MODES: Final = ("cbow", "skipgram", "batch_skipgram")
SUPERVISED: Final = "supervised"
MODES: Final = (*WORD2VEC_MODES, SUPERVISED)


def _char_range(values: Mapping[str, Value]) -> None:
    low = values.get("min_char", 3)
    high = values.get("max_char", 6)
    assert isinstance(low, int)
    assert isinstance(high, int)
    if low > high:
        raise HyperparameterError(
            "min_char", f"({low}) is above max_char ({high}); character n-grams need min <= max"
        )


def _early_stopping_is_supervised(values: Mapping[str, Value]) -> None:
    if values.get("early_stopping") is True and values.get("mode") != SUPERVISED:
        raise HyperparameterError(
            "early_stopping",
            "applies to mode=supervised only (it watches validation accuracy); leave it out "
            f"for mode={values.get('mode')}",
        )


TABLE: Final = HyperparameterTable(
    "BlazingText algorithm",
    (
        Hyperparameter("mode", Kind.CHOICE, options=MODES, required=True),
        Hyperparameter(
            "vector_dim", Kind.INT, "100", Interval(1, 10_000), tunable_range=Interval(32, 300)
        ),
        Hyperparameter(
            "window_size", Kind.INT, "5", Interval(1, 1000), tunable_range=Interval(1, 10)
        ),
        Hyperparameter(
            "negative_samples", Kind.INT, "5", Interval(1, 1000), tunable_range=Interval(5, 25)
        ),
        Hyperparameter("min_count", Kind.INT, "5", Interval(0), tunable_range=Interval(0, 100)),
        Hyperparameter(
            "sampling_threshold",
            Kind.FLOAT,
            "0.0001",
            Interval(0, 1),
            tunable_range=Interval(1e-4, 1e-3),
        ),
        Hyperparameter(
            "learning_rate",
            Kind.FLOAT,
            "0.05",
            Interval(0, 10, low_open=True),
            tunable_range=Interval(0.005, 0.01),
        ),
        Hyperparameter(
            "epochs", Kind.INT, "5", Interval(1, 100_000), tunable_range=Interval(5, 15)
        ),
        Hyperparameter(
            "batch_size", Kind.INT, "11", Interval(1, 1000), tunable_range=Interval(8, 32)
        ),
        Hyperparameter("subwords", Kind.BOOL, "false"),
        Hyperparameter("min_char", Kind.INT, "3", Interval(1, 100)),
        Hyperparameter("max_char", Kind.INT, "6", Interval(1, 100)),
        Hyperparameter(
            "buckets",
            Kind.INT,
            "2000000",
            Interval(1, 100_000_000),
            tunable_range=Interval(1_000_000, 10_000_000),
        ),
        Hyperparameter("evaluation", Kind.BOOL, "true"),
        Hyperparameter("word_ngrams", Kind.INT, "2", Interval(1, 10), tunable_range=Interval(1, 3)),
        Hyperparameter("early_stopping", Kind.BOOL, "false"),
        Hyperparameter("patience", Kind.INT, "4", Interval(1)),
        Hyperparameter("min_epochs", Kind.INT, "5", Interval(1)),
    ),
    checks=(_char_range, _early_stopping_is_supervised),
)
"""One table for both families, as SageMaker's: word2vec modes ignore `word_ngrams`,
`patience` and `min_epochs`; supervised mode ignores `window_size`, `negative_samples`,
`sampling_threshold`, `batch_size`, `subwords`, `min_char`, `max_char` and `evaluation`."""

SPEC: Final = Algorithm(
    name="blazingtext",
    title="BlazingText",
    repositories=("blazingtext",),
    hyperparameters=TABLE,
    metrics=(
        quality_metric("train", "mean_rho", "Maximize"),
        quality_metric("validation", "accuracy", "Maximize"),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=(TEXT, JSONLINES), csv_label_size=0),
        ChannelSpec("validation", content_types=(TEXT, JSONLINES), csv_label_size=0),
        ChannelSpec("evaluation", content_types=(TEXT, CSV_TEXT), csv_label_size=0),
    ),
    default_content_type=TEXT,
    request_types=(JSON, JSONLINES),
    accept_types=(JSON, JSONLINES),
    default_accept=JSON,
)
