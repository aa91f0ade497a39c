"""The job's data channels: which exist, their content types, and the files in them.

Everything here is checked before any data is read or any ML library is imported, so a
misconfigured job fails in well under a second with a `ClientError` that says what to change.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from opensage.algorithms.env import data_files
from opensage.algorithms.xgboost.errors import UserError
from opensage.contract import MLPaths

CSV: Final = "csv"
LIBSVM: Final = "libsvm"
RECORDIO: Final = "recordio-protobuf"
TRAIN: Final = "train"
VALIDATION: Final = "validation"
PIPE_WAIT_SECONDS: Final = 60.0

_MEDIA_TYPES: Final = {
    "csv": CSV,
    "text/csv": CSV,
    "libsvm": LIBSVM,
    "text/libsvm": LIBSVM,
    "text/x-libsvm": LIBSVM,
    "recordio-protobuf": RECORDIO,
    "application/x-recordio-protobuf": RECORDIO,
}
_NOT_YET: Final = frozenset({"parquet", "application/x-parquet"})


@dataclass(frozen=True)
class Channel:
    """A channel ready to read: its folder, its data files and its format (`csv`, `libsvm`,
    `recordio-protobuf`)."""

    name: str
    path: Path
    files: tuple[Path, ...]
    format: str


def parse_content_type(value: str | None) -> str:
    """`text/csv; label_size=1` -> `csv`. No content type means libsvm, as in the container."""
    if value is None or not value.strip():
        return LIBSVM
    media, *params = (part.strip() for part in value.split(";"))
    media = media.lower()
    if media in _NOT_YET:
        raise UserError(
            f"Content type '{value}' is not supported yet by this XGBoost algorithm; "
            "convert the data to text/csv, text/libsvm or application/x-recordio-protobuf."
        )
    if media not in _MEDIA_TYPES:
        raise UserError(
            f"Content type '{value}' is not accepted by the XGBoost algorithm; use text/csv "
            "(label in the first column, no header), text/libsvm or "
            "application/x-recordio-protobuf."
        )
    label_size = _parameters(params).get("label_size", "1")
    if _MEDIA_TYPES[media] == CSV and label_size != "1":
        raise UserError(
            f"Content type '{value}' is not accepted: XGBoost needs exactly one label column, "
            "so label_size must be 1."
        )
    return _MEDIA_TYPES[media]


def _parameters(params: list[str]) -> dict[str, str]:
    """MIME-style `key=value` parameters, with whitespace and quotes tolerated."""
    pairs = (param.partition("=") for param in params if param)
    return {key.strip().lower(): value.strip().strip('"') for key, _, value in pairs}


def find_channels(paths: MLPaths) -> tuple[Channel, Channel | None]:
    """The train channel (required) and the validation channel (optional), checked."""
    config = paths.input_data_config()
    if TRAIN not in config and not paths.channel(TRAIN).is_dir():
        raise UserError(
            "Channel 'train' is required: the XGBoost algorithm trains on the 'train' channel "
            "and can watch an optional 'validation' channel."
        )
    train_type = config.get(TRAIN, {}).get("ContentType")
    train = _channel(paths, TRAIN, config.get(TRAIN, {}), train_type)
    has_validation = VALIDATION in config or paths.channel(VALIDATION).is_dir()
    validation_config = config.get(VALIDATION, {})
    validation = (
        _channel(paths, VALIDATION, validation_config, train_type) if has_validation else None
    )
    return train, validation


def _channel(
    paths: MLPaths, name: str, config: dict[str, str], default_type: str | None
) -> Channel:
    """One channel; a validation channel without a content type shares train's."""
    content_type = config.get("ContentType") or default_type
    data_format = parse_content_type(content_type)
    folder = paths.channel(name)
    if str(config.get("TrainingInputMode", "File")).lower() == "pipe":
        folder = _drain_pipe(paths, name)
    files = tuple(data_files(folder)) if folder.is_dir() else ()
    if not files:
        raise UserError(
            f"No data in channel '{name}' (folder {folder}): it needs at least one non-empty "
            f"{data_format} file whose name does not start with '.' or '_'."
        )
    return Channel(name=name, path=folder, files=files, format=data_format)


def _drain_pipe(paths: MLPaths, name: str, timeout: float = PIPE_WAIT_SECONDS) -> Path:
    """Pipe mode: read epoch 0 (`<channel>_0`) to its end into a private file, as the container
    does; XGBoost needs all the data in memory anyway, and the readers may read a file twice."""
    fifo = paths.data / f"{name}_0"
    deadline = time.monotonic() + timeout
    while not fifo.exists():
        if time.monotonic() > deadline:
            raise UserError(f"Channel '{name}' is in Pipe mode but {fifo} never appeared.")
        time.sleep(0.05)  # polling for the platform's FIFO, as SageMaker's readers do
    folder = Path(tempfile.mkdtemp(prefix=f"pipe-{name}-"))
    with fifo.open("rb") as source, (folder / name).open("wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
    return folder
