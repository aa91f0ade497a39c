"""The DeepAR serving handler: `load(model_dir)` for `opensage.serving` (spec algorithms §15(d)).

Requests: `application/json` `{"instances": [{"start", "target", "cat"?, "dynamic_feat"?}],
"configuration": {"num_samples", "output_types", "quantiles"}}`, or `application/jsonlines`
(batch transform) with one instance a line and the configuration from the environment variable
`DEEPAR_INFERENCE_CONFIG`. Each instance answers `{"mean": [...], "quantiles": {"0.5": [...]},
"samples": [[...]]}` with only the requested output types, in the order requested; JSON under
`predictions`, JSON Lines one object a line. `cat` and `dynamic_feat` (target length plus
prediction_length values) are required iff the model was trained with them.

The sampler is seeded per request, so the same request always gets the same answer.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from opensage.algorithms.base import JSON, UserError
from opensage.algorithms.deepar.data import Layout, Series, check_record, parse_record
from opensage.algorithms.deepar.evaluation import quantiles
from opensage.algorithms.deepar.model import DeepARModel, configure_threads
from opensage.algorithms.deepar.spec import DEFAULT_QUANTILES, SPEC
from opensage.algorithms.inference import BuiltinHandler, encode
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result

CONFIG_VARIABLE: Final = "DEEPAR_INFERENCE_CONFIG"
OUTPUT_TYPES: Final = ("mean", "quantiles", "samples")
MAX_SAMPLES: Final = 10_000
DEFAULT_CONFIGURATION: Final = {
    "num_samples": 100,
    "output_types": ["mean", "quantiles"],
    "quantiles": [str(q) for q in DEFAULT_QUANTILES],
}
SEED: Final = 0


@dataclass(frozen=True)
class Configuration:
    num_samples: int
    output_types: tuple[str, ...]
    quantiles: tuple[str, ...]

    @property
    def levels(self) -> list[float]:
        return [float(q) for q in self.quantiles]


def read_configuration(raw: Any, source: str) -> Configuration:
    """A `configuration` object with defaults filled in; ValueError naming what is wrong."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{source} must be a JSON object")
    config = {**DEFAULT_CONFIGURATION, **raw}
    num = config["num_samples"]
    if isinstance(num, bool) or not isinstance(num, int | str) or not str(num).isdigit():
        raise ValueError(f"{source}: num_samples must be a positive integer")
    num_samples = int(num)
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise ValueError(f"{source}: num_samples must be in [1, {MAX_SAMPLES}]")
    types = config["output_types"]
    if not isinstance(types, list) or not types or not all(t in OUTPUT_TYPES for t in types):
        raise ValueError(f"{source}: output_types must be a list of: {', '.join(OUTPUT_TYPES)}")
    levels = config["quantiles"]
    if not isinstance(levels, list):
        raise ValueError(f'{source}: quantiles must be a list such as ["0.1", "0.9"]')
    names = []
    for level in levels:
        name = level if isinstance(level, str) else json.dumps(level)
        try:
            value = float(name)
        except ValueError:
            value = -1.0
        if isinstance(level, bool) or not 0 < value < 1:
            raise ValueError(f"{source}: quantile {level!r} is not a number in (0, 1)")
        names.append(name.strip())
    return Configuration(num_samples, tuple(dict.fromkeys(types)), tuple(dict.fromkeys(names)))


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> DeepARHandler:
    model = DeepARModel.load(model_dir)
    configure_threads(model.arch.work(100))
    variables = os.environ if environ is None else environ
    text = variables.get(CONFIG_VARIABLE, "").strip()
    try:
        configuration = read_configuration(json.loads(text) if text else None, CONFIG_VARIABLE)
    except ValueError as exc:
        raise ValueError(f"{CONFIG_VARIABLE} is not a valid configuration: {exc}") from None
    return DeepARHandler(model, configuration, environ)


class DeepARHandler(BuiltinHandler):
    """Forecasts per instance; the network is read-only and one request samples at a time
    (each request reseeds torch's generator)."""

    def __init__(
        self,
        model: DeepARModel,
        configuration: Configuration,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(SPEC, None, environ)
        self.model = model
        self.configuration = configuration
        arch = model.arch
        self.layout = Layout(arch.cardinality, arch.num_dynamic)
        self.lock = threading.Lock()

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        if not body.strip():
            return Result(b"", self.default_accept, 204)
        media = self._content_type(content_type or JSON)
        answer = self._accept(accept)
        instances, configuration = self._parse(body, media.essence)
        if not instances:
            return Result(b"", answer.essence, 204)
        series = [self._series(instance, row) for row, instance in enumerate(instances)]
        with self.lock:
            samples = self.model.forecast(series, configuration.num_samples, SEED)
        rows = [answer_row(paths, configuration) for paths in samples]
        return Result(encode(rows, answer.essence, self.envelope), answer.essence)

    def _parse(self, body: bytes, kind: str) -> tuple[list[Any], Configuration]:
        try:
            if kind == JSON:
                document = json.loads(body)
                if not isinstance(document, dict) or not isinstance(
                    document.get("instances"), list
                ):
                    raise InferenceError(
                        400,
                        'Expected {"instances": [{"start": ..., "target": [...]}], '
                        '"configuration": {...}}.',
                    )
                config = read_configuration(document.get("configuration"), "configuration")
                return document["instances"], config
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        except (ValueError, RecursionError) as exc:
            raise InferenceError(400, f"Unable to read the {kind} request: {exc}") from None
        return lines, self.configuration

    def _series(self, instance: Any, row: int) -> Series:
        where = f"Instance {row}"
        try:
            s = parse_record(instance, where)
        except ValueError as exc:
            raise InferenceError(400, f"{where}: {exc}.") from None
        if not self.layout.cardinality:
            s.cat = None
        if not self.layout.num_dynamic:
            s.dynamic = None
        try:
            check_record(s, self.layout, self.model.arch.prediction_length)
        except UserError as exc:
            raise InferenceError(400, str(exc)) from None
        return s


def answer_row(paths: Any, configuration: Configuration) -> dict[str, Any]:
    """One instance's answer from its sample paths (num_samples x prediction_length)."""
    row: dict[str, Any] = {}
    for kind in configuration.output_types:
        if kind == "mean":
            row["mean"] = paths.mean(axis=0).astype(np.float32).tolist()
        elif kind == "quantiles":
            found = quantiles(paths[None], configuration.levels)[:, 0].astype(np.float32)
            row["quantiles"] = {
                name: found[i].tolist() for i, name in enumerate(configuration.quantiles)
            }
        else:
            row["samples"] = paths.tolist()
    return row
