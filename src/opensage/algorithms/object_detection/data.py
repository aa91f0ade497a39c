"""Reading the detection channels (spec algorithms §17(b)) into square pixel arrays and boxes.

Three inputs:

* RecordIO (`application/x-recordio`): `train` / `validation` hold `.rec` files (MXNet image
  RecordIO, `.idx` and `.lst` beside them skipped), File or Pipe mode. Each record's labels are
  the float array after its IRHeader (`flag` > 0), MXNet's detection layout:
  `[header_width A, object_width B, (extra header values), cls, xmin, ymin, xmax, ymax, ...]`,
  objects B values apart from index A, corners normalised to [0, 1]; rows of class -1 are
  MXNet's padding and are skipped. The whole array may not be longer than `label_width`.
* Image files (`image/jpeg`, `image/png`, `application/x-image`): `train` / `validation` hold
  the images and `train_annotation` / `validation_annotation` one JSON per image
  (`file`, `image_size`, `annotations` of `class_id`, `left`, `top`, `width`, `height` in
  pixels from the top-left corner); File mode.
* Augmented manifest (Pipe mode with `RecordWrapperType=RecordIO`, AttributeNames [image
  `source-ref`, bounding-box attribute]): records alternate the image bytes and the JSON of its
  `image_size` and `annotations`.

Every image is stretched to `image_shape` x `image_shape` (as SageMaker rescales to a square);
boxes are kept normalised, so they do not change. A bad record, annotation or image fails the
job naming the channel, file and record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from opensage.algorithms.base import UserError
from opensage.algorithms.env import ChannelReader, TrainingEnv, data_files, describe_record_error
from opensage.algorithms.image_classification.model import decode_image, stretch_image
from opensage.algorithms.object_detection.spec import LABEL_HEADER, OBJECT_WIDTH, RECORDIO_IMAGES

SKIPPED_SUFFIXES = (".idx", ".lst")


@dataclass
class Scenes:
    """Images (uint8, N x 3 x S x S) and each one's objects (n, 5): class, normalised
    corners."""

    pixels: npt.NDArray[np.uint8]
    objects: list[npt.NDArray[np.float32]]

    def __len__(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True)
class Item:
    """One raw example: where it came from (for messages), its image bytes, and a function of
    the decoded image's (width, height) giving its objects."""

    where: str
    image: bytes
    objects: Any


def record_objects(
    labels: tuple[float, ...] | list[float], num_classes: int, label_width: int
) -> npt.NDArray[np.float32]:
    """The objects (n, 5) of a RecordIO record's label array; ValueError saying what is wrong."""
    values = [float(v) for v in labels]
    if len(values) < LABEL_HEADER:
        raise ValueError(
            "has no detection label header: a record needs the float labels "
            "[header_width, object_width, cls, xmin, ymin, xmax, ymax, ...] after its IRHeader"
        )
    if len(values) > label_width:
        raise ValueError(
            f"has {len(values)} label values, more than label_width={label_width}; raise "
            "label_width to at least the longest label (5 per object plus the header)"
        )
    header, width = values[0], values[1]
    if not header.is_integer() or header < LABEL_HEADER or header > len(values):
        raise ValueError(f"has header_width {header:g}: it must be an integer >= 2")
    if not width.is_integer() or width < OBJECT_WIDTH:
        raise ValueError(f"has object_width {width:g}: it must be an integer >= 5")
    body = values[int(header) :]
    if len(body) % int(width):
        raise ValueError(
            f"has {len(body)} object values, not a multiple of object_width {int(width)}"
        )
    rows = np.asarray(body, dtype=np.float32).reshape(-1, int(width))[:, :OBJECT_WIDTH]
    rows = rows[rows[:, 0] != -1]
    return check_objects(rows, num_classes)


def check_objects(rows: npt.NDArray[Any], num_classes: int) -> npt.NDArray[np.float32]:
    """Objects with integer classes below num_classes and corners ordered inside [0, 1]."""
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, OBJECT_WIDTH)
    for cls, x0, y0, x1, y1 in rows.tolist():
        if not float(cls).is_integer() or not 0 <= cls < num_classes:
            raise ValueError(
                f"has class {cls:g}: class ids are integers from 0 to num_classes - 1 = "
                f"{num_classes - 1}"
            )
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(
                f"has box [{x0:g}, {y0:g}, {x1:g}, {y1:g}]: corners are xmin < xmax and "
                "ymin < ymax normalised to [0, 1] by the image width and height"
            )
    return rows


def annotation_objects(
    document: Mapping[str, Any], num_classes: int, width: int, height: int
) -> npt.NDArray[np.float32]:
    """The objects of one annotation (pixel boxes from the top-left corner) normalised by the
    image's size (its `image_size` when given, else the decoded image's); ValueError."""
    size = document.get("image_size")
    if isinstance(size, list) and size and isinstance(size[0], Mapping):
        try:
            width, height = int(size[0]["width"]), int(size[0]["height"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("has an image_size without integer width and height") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"has image_size {width}x{height}")
    annotations = document.get("annotations")
    if not isinstance(annotations, list):
        raise ValueError("has no 'annotations' list")
    rows = []
    for number, box in enumerate(annotations):
        try:
            cls = float(box["class_id"])
            left, top = float(box["left"]), float(box["top"])
            w, h = float(box["width"]), float(box["height"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"annotation {number} needs numeric class_id, left, top, width and height"
            ) from None
        x0, y0 = max(left, 0.0) / width, max(top, 0.0) / height
        x1, y1 = min(left + w, width) / width, min(top + h, height) / height
        rows.append([cls, x0, y0, x1, y1])
    return check_objects(np.asarray(rows, dtype=np.float32), num_classes)


# --- channels -------------------------------------------------------------------------------------


def load_channel(
    env: TrainingEnv, name: str, annotations: str, size: int, label_width: int
) -> Scenes | None:
    """The channel `name` decoded, or None when the job has no such channel."""
    reader = env.channel(name)
    if reader is None:
        return None
    num_classes = int(env["num_classes"])
    config = env.paths.input_data_config().get(name, {})
    wrapped = str(config.get("RecordWrapperType", "None")) == "RecordIO"
    if reader.pipe and wrapped:
        items = _manifest_items(reader, num_classes)
    elif reader.content_type == RECORDIO_IMAGES:
        items = _rec_items(reader, num_classes, label_width)
    else:
        items = _annotated_items(env, reader, annotations, num_classes)
    return _decode(items, reader.name, size)


def _read_fifo(reader: ChannelReader) -> bytes:
    fifo = reader._wait_for_fifo(0)  # the platform's own wait for the epoch-0 FIFO
    with fifo.open("rb") as stream:
        return stream.read()


def _rec_items(reader: ChannelReader, num_classes: int, label_width: int) -> Iterator[Item]:
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
                where = f"record {index} (id {record.id}) of '{source}'"
                if not record.multi:
                    raise UserError(
                        f"Channel '{reader.name}': {where} has one label (IRHeader flag 0), "
                        "not a detection label array: write the records with "
                        "[2, 5, cls, xmin, ymin, xmax, ymax, ...] labels (im2rec --pack-label)."
                    )
                try:
                    objects = record_objects(record.labels, num_classes, label_width)
                except ValueError as exc:
                    raise UserError(f"Channel '{reader.name}': {where} {exc}.") from None
                yield Item(where, record.image, objects)
        except RecordError as exc:
            raise UserError(
                f"Could not read file '{source}' of channel '{reader.name}': "
                f"{describe_record_error(exc)}"
            ) from None


def _manifest_items(reader: ChannelReader, num_classes: int) -> Iterator[Item]:
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
            "up as image and annotation; set AttributeNames to [image attribute, bounding-box "
            "attribute]."
        )
    for i in range(0, len(payloads), 2):
        where = f"manifest line {i // 2}"
        try:
            document = json.loads(payloads[i + 1].decode("utf-8"))
            if not isinstance(document, dict):
                raise ValueError
        except (UnicodeDecodeError, ValueError):
            raise UserError(
                f"Channel '{reader.name}': {where}: the second attribute is not a bounding-box "
                "JSON object with image_size and annotations."
            ) from None
        yield Item(where, payloads[i], _later(document, num_classes))


def _later(document: Mapping[str, Any], num_classes: int) -> Any:
    def objects(width: int, height: int) -> npt.NDArray[np.float32]:
        return annotation_objects(document, num_classes, width, height)

    return objects


def _annotated_items(
    env: TrainingEnv, reader: ChannelReader, annotation_channel: str, num_classes: int
) -> Iterator[Item]:
    if reader.pipe:
        raise UserError(
            f"Channel '{reader.name}' holds image files in Pipe mode: image files with JSON "
            "annotations are read in File mode; in Pipe mode use RecordIO (.rec) or an "
            "augmented manifest with RecordWrapperType RecordIO."
        )
    annotations = env.channel(annotation_channel)
    if annotations is None:
        raise UserError(
            f"Channel '{reader.name}' holds image files ({reader.content_type}), so the channel "
            f"'{annotation_channel}' must hold one JSON annotation per image."
        )
    found = [p for p in data_files(annotations.folder) if p.suffix.lower() == ".json"] \
        if annotations.folder.is_dir() else []  # fmt: skip
    if not found:
        raise UserError(f"Channel '{annotation_channel}' holds no .json annotation files.")
    images = _image_index(reader.folder)
    for path in found:
        source = str(path.relative_to(annotations.folder))
        where = f"annotation '{source}' of channel '{annotation_channel}'"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(document, dict):
                raise ValueError
        except (UnicodeDecodeError, ValueError):
            raise UserError(f"{where} is not a JSON object.") from None
        file = document.get("file") or path.with_suffix("").name
        image = images.get(str(file)) or images.get(Path(str(file)).name)
        if image is None:
            image = next((p for k, p in images.items() if Path(k).stem == path.stem), None)
        if image is None:
            raise UserError(
                f"Channel '{reader.name}': {where} names the image '{file}', which the channel "
                "does not hold."
            )
        yield Item(where, image.read_bytes(), _later(document, num_classes))


def _image_index(root: Path) -> dict[str, Path]:
    files = data_files(root) if root.is_dir() else []
    index: dict[str, Path] = {}
    for path in files:
        index[str(path.relative_to(root))] = path
        index.setdefault(path.name, path)
    return index


def _decode(items: Iterator[Item], channel: str, size: int) -> Scenes:
    pixels: list[npt.NDArray[Any]] = []
    objects: list[npt.NDArray[np.float32]] = []
    for item in items:
        try:
            image = decode_image(item.image, 3)
        except ValueError as exc:
            raise UserError(
                f"Channel '{channel}': {item.where}: the image cannot be decoded: {exc}"
            ) from None
        found = item.objects
        if callable(found):
            try:
                found = found(*image.size)
            except ValueError as exc:
                raise UserError(f"Channel '{channel}': {item.where} {exc}.") from None
        objects.append(found)
        pixels.append(stretch_image(image, (3, size, size)))
    if not pixels:
        raise UserError(f"No data in channel '{channel}': it holds no images.")
    return Scenes(np.stack(pixels), objects)
