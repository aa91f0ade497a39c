"""DeepAR's conformance cases: 20 tiny daily series of 60 points (weekly season, trend, noise,
two missing values each), context 7, prediction 5, one layer of 8 cells, 2 epochs, with a test
channel so every metric is logged; one case plain (student-T), one with `cat` and
`dynamic_feat` (gaussian, gzip-compressed JSON Lines). Requests in JSON with each output type
and in JSON Lines (the batch transform form)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import numpy as np

from tests.algorithms.conformance import JSON, JSONLINES, DocumentCase, Request

PREDICTION = 5
LENGTH = 60
START = "2020-01-01 00:00:00"


def panel(
    n: int, length: int, seed: int = 0, cat: bool = False, dynamic: int = 0, gaps: bool = True
) -> list[dict[str, Any]]:
    """Series with a weekly season, a trend, noise and a level set by the category (i % 3);
    `dynamic` extra steps of `dynamic_feat` (prediction_length for requests)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length + dynamic)
    records = []
    for i in range(n):
        group = i % 3
        feat = rng.normal(size=length + dynamic)
        y = (
            10
            + 5 * group
            + 0.05 * t
            + 3 * np.sin(2 * np.pi * t / 7 + i)
            + rng.normal(0, 0.5, len(t))
        )
        if dynamic or cat:
            y = y + 2 * feat
        target: list[Any] = [round(float(v), 3) for v in y[:length]]
        if gaps:
            target[5], target[9] = "NaN", None
        record: dict[str, Any] = {"start": START, "target": target}
        if cat:
            record["cat"] = [group]
            record["dynamic_feat"] = [[round(float(v), 3) for v in feat]]
        records.append(record)
    return records


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def _channels(features: bool) -> dict[str, tuple[str, dict[str, bytes]]]:
    train = jsonl(panel(20, LENGTH - PREDICTION, 0, features))
    test = jsonl(panel(20, LENGTH, 0, features))
    if features:
        return {
            "train": (
                JSONLINES,
                {"train.json.gz": gzip.compress(train, mtime=0), "_SUCCESS": b"x"},
            ),
            "test": (JSONLINES, {"test.json": test}),
        }
    return {"train": (JSONLINES, {"train.json": train}), "test": (JSONLINES, {"test.json": test})}


def _requests(features: bool) -> list[Request]:
    instances = [
        {
            key: value
            for key, value in record.items()
            if features or key == "start" or key == "target"
        }
        for record in panel(3, 30, 9, cat=True, dynamic=PREDICTION if features else 0)
    ]
    if not features:
        for record in instances:
            record.pop("dynamic_feat", None)
    for record in instances:
        if "dynamic_feat" in record and features:
            assert len(record["dynamic_feat"][0]) == len(record["target"]) + PREDICTION

    def body(config: dict[str, Any]) -> bytes:
        return json.dumps({"instances": instances, "configuration": config}).encode()

    everything = {
        "num_samples": 4,
        "output_types": ["mean", "quantiles", "samples"],
        "quantiles": ["0.1", "0.5", "0.9"],
    }
    return [
        Request(JSON, JSON, body(everything), 3, ("mean", "quantiles", "samples")),
        Request(JSON, JSON, body({"num_samples": 5, "output_types": ["mean"]}), 3, ("mean",)),
        Request(
            JSON,
            JSONLINES,
            body({"output_types": ["quantiles"], "quantiles": ["0.5"]}),
            3,
            ("quantiles",),
        ),
        Request(JSON, JSON, body({"num_samples": 3, "output_types": ["samples"]}), 3, ("samples",)),
        Request(JSONLINES, JSONLINES, jsonl(instances), 3, ("mean", "quantiles")),
    ]


def _case(name: str, features: bool, **changes: str) -> DocumentCase:
    hyperparameters = {
        "time_freq": "D",
        "context_length": "7",
        "prediction_length": str(PREDICTION),
        "epochs": "2",
        "num_cells": "8",
        "num_layers": "1",
        "mini_batch_size": "16",
        "learning_rate": "0.01",
        "num_eval_samples": "20",
        "test_quantiles": "[0.1, 0.5, 0.9]",
        **changes,
    }
    return DocumentCase(
        name=f"deepar-{name}",
        algorithm="deepar",
        hyperparameters=hyperparameters,
        files=lambda: _channels(features),
        requests=lambda: _requests(features),
        metrics=("train:final_loss", "test:RMSE", "test:mean_wQuantileLoss"),
        refused_content_types=("text/csv",),
    )


CASES = [
    _case("student-t", False),
    _case(
        "cat-dynamic-gaussian",
        True,
        likelihood="gaussian",
        cardinality="[3]",
        num_dynamic_feat="auto",
        embedding_dimension="2",
    ),
]
