"""Reading the image channels (spec algorithms §16(b)) into decoded pixel arrays and labels.

Three inputs:

* RecordIO (`application/x-recordio`): the `train` / `validation` channel holds `.rec` files
  (MXNet image RecordIO; `.idx` and `.lst` files beside them are skipped). File mode, or Pipe
  mode (the FIFO of epoch 0 is read whole: the `.rec` stream).
* Image files (`application/x-image`, `image/jpeg`, `image/png`): the channel holds the images
  and `train_lst` / `validation_lst` a `.lst` file naming them (paths relative to the image
  channel); File mode; `resize` is required.
* Augmented manifest (Pipe mode with `RecordWrapperType=RecordIO`, AttributeNames
  [image `source-ref`, label]): records alternate image bytes and the label's text
  (`"2"`, `"[1,0,1]"` or `"[0,2]"`).

Labels: a class id, or for `multi_label=1` a multi-hot vector; the channel's content type
parameter `label-format` says how multi-label records hold theirs (`multi-hot`, the default, or
`class-id`). Images are decoded once, fitted to `image_shape` (see `model.fit_image`) and kept
as uint8. An undecodable image or a bad label fails the job naming the channel, file and record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from opensage.algorithms.base import UserError
from opensage.algorithms.env import ChannelReader, TrainingEnv, data_files, describe_record_error
from opensage.algorithms.image_classification.model import decode_image, fit_image
from opensage.algorithms.image_classification.spec import RECORDIO_IMAGES

SKIPPED_SUFFIXES = (".idx", ".lst")


@dataclass
class Images:
    """Decoded images (uint8, N x C x H x W) and their labels: int64 class ids (N,) or, for
    multi-label data, float32 multi-hot rows (N x num_classes)."""

    pixels: npt.NDArray[np.uint8]
    labels: npt.NDArray[Any]

    def __len__(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True)
class Settings:
    shape: tuple[int, int, int]
    num_classes: int
    multi_label: bool
    resize: int | None


@dataclass(frozen=True)
class Item:
    """One raw example and where it came from (for error messages)."""

    where: str
    image: bytes
    labels: tuple[float, ...]


def load_channel(
    env: TrainingEnv, name: str, settings: Settings, list_channel: str
) -> Images | None:
    """The channel `name` decoded, or None when the job has no such channel."""
    reader = env.channel(name)
    if reader is None:
        return None
    config = env.paths.input_data_config().get(name, {})
    label_format = _label_format(str(config.get("ContentType") or ""), name)
    wrapped = str(config.get("RecordWrapperType", "None")) == "RecordIO"
    if reader.pipe and wrapped:
        items = _manifest_items(reader)
    elif reader.content_type == RECORDIO_IMAGES:
        items = _rec_items(reader)
    else:
        items = _listed_items(env, reader, settings, list_channel)
    return _decode(items, reader.name, settings, label_format)


def _label_format(content_type: str, channel: str) -> str:
    from opensage.formats.content_types import parse_media_type

    try:
        params = parse_media_type(content_type).params if content_type else {}
    except ValueError:
        params = {}
    value = params.get("label-format", "multi-hot").strip().lower()
    if value not in ("multi-hot", "class-id"):
        raise UserError(
            f"Channel '{channel}': label-format '{value}' is not one of: multi-hot, class-id."
        )
    return value


def _read_fifo(reader: ChannelReader) -> bytes:
    fifo = reader._wait_for_fifo(0)  # the platform's own wait for the epoch-0 FIFO
    with fifo.open("rb") as stream:
        return stream.read()


def _rec_items(reader: ChannelReader) -> Iterator[Item]:
    from opensage.formats.errors import RecordError
    from opensage.formats.image_records import iter_rec

    if reader.pipe:
        sources: list[tuple[str, bytes]] = [(f"{reader.name}_0", _read_fifo(reader))]
    else:
        files = data_files(reader.folder) if reader.folder.is_dir() else []
        sources = [
            (str(path.relative_to(reader.folder)), path.read_bytes())
            for path in files
            if path.suffix.lower() not in SKIPPED_SUFFIXES
        ]
    for source, data in sources:
        try:
            for index, record in iter_rec(data, source=source):
                yield Item(f"record {index} (id {record.id}) of '{source}'", record.image,
                           record.labels)  # fmt: skip
        except RecordError as exc:
            raise UserError(
                f"Could not read file '{source}' of channel '{reader.name}': "
                f"{describe_record_error(exc)}"
            ) from None


def _manifest_items(reader: ChannelReader) -> Iterator[Item]:
    from opensage.formats.errors import RecordError
    from opensage.formats.recordio import split_frames

    source = f"{reader.name}_0"
    try:
        payloads = split_frames(_read_fifo(reader), source=source).payloads()
    except RecordError as exc:
        raise UserError(
            f"Channel '{reader.name}' (augmented manifest): {describe_record_error(exc)}"
        ) from None
    if len(payloads) % 2:
        raise UserError(
            f"Channel '{reader.name}' (augmented manifest): {len(payloads)} records do not pair "
            "up as image and label; set AttributeNames to [image attribute, label attribute]."
        )
    for i in range(0, len(payloads), 2):
        where = f"manifest line {i // 2}"
        yield Item(where, payloads[i], _label_text(payloads[i + 1], reader.name, where))


def _label_text(data: bytes, channel: str, where: str) -> tuple[float, ...]:
    try:
        value = json.loads(data.decode("utf-8"))
        values = value if isinstance(value, list) else [value]
        return tuple(float(v) for v in values)
    except (UnicodeDecodeError, ValueError, TypeError):
        raise UserError(
            f"Channel '{channel}': {where} has label {data[:40]!r}, which is not a number or a "
            "list of numbers; the second attribute must be the class."
        ) from None


def _listed_items(
    env: TrainingEnv, reader: ChannelReader, settings: Settings, list_channel: str
) -> Iterator[Item]:
    from opensage.formats.errors import RecordError
    from opensage.formats.image_records import read_lst_file

    if reader.pipe:
        raise UserError(
            f"Channel '{reader.name}' holds image files in Pipe mode: image files with .lst "
            "lists are read in File mode; in Pipe mode use RecordIO (.rec) or an augmented "
            "manifest with RecordWrapperType RecordIO."
        )
    if settings.resize is None:
        raise UserError(
            f"Hyperparameter 'resize' is required to train on image files ({reader.content_type} "
            f"in channel '{reader.name}'): set it to the shorter side to scale images to."
        )
    lists = env.channel(list_channel)
    if lists is None:
        raise UserError(
            f"Channel '{reader.name}' holds image files ({reader.content_type}), so the channel "
            f"'{list_channel}' must hold a .lst file listing them (index, label, path)."
        )
    found = data_files(lists.folder) if lists.folder.is_dir() else []
    if not found:
        raise UserError(f"Channel '{list_channel}' holds no .lst file.")
    for lst in found:
        source = str(lst.relative_to(lists.folder))
        try:
            with lst.open("rb") as stream:
                entries = read_lst_file(stream, source=source)
        except RecordError as exc:
            raise UserError(
                f"Could not read file '{source}' of channel '{list_channel}': "
                f"{describe_record_error(exc)}"
            ) from None
        for number, entry in enumerate(entries):
            where = f"line {number} of '{source}' (image '{entry.path}')"
            yield Item(where, _image_file(reader.folder, entry.path, reader.name, where),
                       entry.labels)  # fmt: skip


def _image_file(root: Path, relative: str, channel: str, where: str) -> bytes:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise UserError(f"Channel '{channel}': {where}: no such image in the channel.")
    return path.read_bytes()


def _decode(items: Iterator[Item], channel: str, settings: Settings, label_format: str) -> Images:
    pixels: list[npt.NDArray[Any]] = []
    labels: list[Any] = []
    for item in items:
        labels.append(_label(item, channel, settings, label_format))
        try:
            image = decode_image(item.image, settings.shape[0])
        except ValueError as exc:
            raise UserError(
                f"Channel '{channel}': {item.where}: the image cannot be decoded: {exc}"
            ) from None
        pixels.append(fit_image(image, settings.shape, settings.resize))
    if not pixels:
        raise UserError(f"No data in channel '{channel}': it holds no images.")
    dtype = np.float32 if settings.multi_label else np.int64
    return Images(np.stack(pixels), np.asarray(labels, dtype=dtype))


def _label(item: Item, channel: str, settings: Settings, label_format: str) -> Any:
    k = settings.num_classes
    values = item.labels

    def bad(problem: str) -> UserError:
        shown = ", ".join(f"{v:g}" for v in values)
        return UserError(f"Channel '{channel}': {item.where} has label [{shown}]: {problem}")

    def class_id(value: float) -> int:
        if not float(value).is_integer() or not 0 <= value < k:
            raise bad(f"class ids are integers from 0 to num_classes - 1 = {k - 1}.")
        return int(value)

    if not settings.multi_label:
        if len(values) != 1:
            raise bad("one class id per image is expected (set multi_label=1 for several).")
        return class_id(values[0])
    hot = np.zeros(k, dtype=np.float32)
    if label_format == "class-id":
        for value in values:
            hot[class_id(value)] = 1.0
        return hot
    if len(values) != k or any(v not in (0.0, 1.0) for v in values):
        raise bad(
            f"a multi-hot label has num_classes = {k} values of 0 or 1 (use the content type "
            "parameter label-format=class-id for lists of class ids)."
        )
    return np.asarray(values, dtype=np.float32)
