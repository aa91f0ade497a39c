"""A built-in's model file, `model_algo-1` in `model.tar.gz` (spec algorithms 1.8).

SageMaker's 1P algorithms store MXNet files there; without MXNet we store the same content as a
numpy `.npz` archive (a zip, as the linear learner's is) holding named arrays and one JSON
document of settings, read back with `allow_pickle=False` so a model file cannot run code.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

MODEL_FILE: Final = "model_algo-1"
_META: Final = "__meta__"


def save_model(
    model_dir: Path, arrays: dict[str, npt.NDArray[Any]], meta: dict[str, Any], name: str = ""
) -> Path:
    """Write `arrays` and `meta` (JSON-able) to `<model_dir>/model_algo-1` atomically."""
    model_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    members: dict[str, Any] = {**arrays, _META: np.array(json.dumps(meta, sort_keys=True))}
    np.savez(buffer, **members)
    target = model_dir / (name or MODEL_FILE)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(target)
    return target


def load_model(
    model_dir: Path, name: str = ""
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """The arrays and settings `save_model` wrote; ValueError if the file is not one."""
    path = model_dir / (name or MODEL_FILE)
    if not path.is_file():
        raise ValueError(f"no model file {path.name} in {model_dir}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files") or _META not in archive.files:
                raise ValueError("no settings")
            arrays = {key: archive[key] for key in archive.files if key != _META}
            meta = json.loads(str(archive[_META]))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not an opensage model file ({exc})") from None
    return arrays, meta


def model_channel_folder(folder: Path, scratch: Path, marker: str, title: str) -> Path:
    """Where a `model` channel's files are (incremental training, transfer learning): the
    channel itself when it holds `marker`, else its model.tar.gz (a previous job's
    ModelArtifacts) unpacked under `scratch`. ValueError saying what the channel lacks."""
    found = sorted(folder.rglob(marker)) if folder.is_dir() else []
    if found:
        return found[0].parent
    archives = sorted(
        p for p in (folder.rglob("*") if folder.is_dir() else [])
        if p.is_file() and not p.name.startswith(".")
        and p.name.endswith((".tar.gz", ".tgz", ".tar"))
    )  # fmt: skip
    if not archives:
        raise ValueError(
            f"holds neither {marker} nor a model.tar.gz: give the "
            f"ModelArtifacts.S3ModelArtifacts of a previous {title} job"
        )
    try:
        with tarfile.open(archives[0]) as tar:
            tar.extractall(scratch, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ValueError(f"{archives[0].name} is not a tar archive ({exc})") from None
    found = sorted(scratch.rglob(marker))
    if not found:
        raise ValueError(f"{archives[0].name} holds no {marker}; it is not a {title} model")
    return found[0].parent
