"""The model files (spec algorithms §17(e)): `model_algo_1-0000.params` (the SSD's state dict as
numpy arrays with the architecture, via `artifacts.save_model`; an `.npz`, not MXNet's params
format), `model_algo_1-symbol.json` (the architecture, not an MXNet symbol) and
`hyperparams.json` (the job's hyperparameters, as SageMaker writes them). They load without a
GPU."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.artifacts import load_model, model_channel_folder, save_model
from opensage.algorithms.object_detection.model import Architecture

PARAMS: Final = "model_algo_1-0000.params"
SYMBOL: Final = "model_algo_1-symbol.json"
HYPERPARAMS: Final = "hyperparams.json"
FORMAT: Final = "opensage-torch-ssd"


def save(
    model_dir: Path,
    arrays: dict[str, npt.NDArray[Any]],
    arch: Architecture,
    hyperparameters: Mapping[str, Any],
) -> Path:
    meta = {"algorithm": "object_detection", "format": FORMAT, **arch.meta()}
    path = save_model(model_dir, arrays, meta, name=PARAMS)
    symbol = {**meta, "params": PARAMS}
    (model_dir / SYMBOL).write_text(json.dumps(symbol, indent=2, sort_keys=True))
    shown = {key: value if isinstance(value, str | int | float | bool) or value is None
             else ",".join(map(str, value)) for key, value in hyperparameters.items()}  # fmt: skip
    (model_dir / HYPERPARAMS).write_text(json.dumps(shown, indent=2, sort_keys=True))
    return path


def read_model(model_dir: Path) -> tuple[Architecture, dict[str, npt.NDArray[Any]]]:
    """The architecture and weights in a model folder; ValueError saying what is missing."""
    symbol_path = model_dir / SYMBOL
    if not symbol_path.is_file():
        raise ValueError(f"no {SYMBOL} (not an opensage Object Detection model)")
    try:
        symbol = json.loads(symbol_path.read_text())
        if symbol.get("format") != FORMAT:
            raise ValueError(f"{SYMBOL} is not an opensage model ({symbol.get('format')!r})")
        arrays, meta = load_model(model_dir, str(symbol["params"]))
        arch = Architecture.from_meta(meta)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{SYMBOL} is broken ({exc})") from None
    return arch, {name: np.asarray(value) for name, value in arrays.items()}


def model_folder(folder: Path, scratch: Path) -> Path:
    """Where a `model` channel's files are; ValueError saying what the channel lacks."""
    return model_channel_folder(folder, scratch, SYMBOL, "Object Detection")
