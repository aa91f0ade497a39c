"""Reading the segmentation channels (spec algorithms §18(b)) and the training augmentation.

`train` / `validation` hold JPEG images; `train_annotation` / `validation_annotation` one PNG
mask per image with the same name (sub-folders included) and a `.png` suffix: single channel
(8-bit grey `L` or palette `P`), each pixel a class id, 255 for pixels without a class (GluonCV's
ignore label). The optional `label_map` channel holds `train_label_map.json` and
`validation_label_map.json`: `{"scale": "3"}` divides pixel values by 3, `{"map": {"0": 5, ...}}`
says which pixel value encodes each class (values it does not name, other than 255, are an
error); without one a pixel value is its class. A missing mask, a mask of another size or a
class id of num_classes or more fails the job naming the file. Augmented manifests (Pipe mode)
are not supported yet: a ClientError says so.

Training crops (GluonCV's `_sync_transform`): a random flip; the long side scaled to
`base_size x U(0.5, 2)` (bilinear for the image, nearest for the mask); padding to `crop_size`
(image 0, mask ignored); a random `crop_size` square. Done per image on the device, sampling
only the crop's pixels.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as F

from opensage.algorithms.base import UserError
from opensage.algorithms.env import ChannelReader, TrainingEnv, data_files
from opensage.algorithms.gpu import to_device
from opensage.algorithms.semantic_segmentation.spec import IGNORE, RECORDIO_IMAGES

MASK_SUFFIX: Final = ".png"


@dataclass
class Scenes:
    """Decoded images (uint8 H x W x 3 each; sizes may differ) and their class masks (uint8
    H x W, 255 = ignore), with the files they came from."""

    images: list[npt.NDArray[np.uint8]]
    masks: list[npt.NDArray[np.uint8]]
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class LabelMap:
    """How mask pixel values become class ids: divided by `scale`, or looked up in `lookup`
    (pixel value -> class id)."""

    scale: int = 1
    lookup: tuple[tuple[int, int], ...] | None = None

    def apply(self, pixels: npt.NDArray[np.uint8], where: str) -> npt.NDArray[np.uint8]:
        ignore = pixels == IGNORE
        if self.lookup is None:
            out = pixels // self.scale if self.scale != 1 else pixels.copy()
        else:
            table = np.full(256, -1, dtype=np.int16)
            for value, label in self.lookup:
                table[value] = label
            mapped = table[pixels]
            unknown = (mapped < 0) & ~ignore
            if unknown.any():
                value = int(pixels[unknown][0])
                raise UserError(
                    f"{where}: pixel value {value} is not in the label map (give every encoded "
                    f"value a class in 'map', or 255 for pixels to ignore)."
                )
            out = np.where(mapped < 0, 0, mapped).astype(np.uint8)
        out[ignore] = IGNORE
        return out


def parse_label_map(text: str, where: str) -> LabelMap:
    """`{"scale": "3"}` or `{"map": {"0": 5, "1": 0}}` (class id -> encoded pixel value)."""
    try:
        document = json.loads(text)
    except ValueError:
        raise UserError(f"{where} is not JSON.") from None
    if isinstance(document, dict) and set(document) == {"scale"}:
        scale = document["scale"]
        if isinstance(scale, str) and scale.strip().isdigit():
            scale = int(scale)
        if isinstance(scale, int) and not isinstance(scale, bool) and 1 <= scale <= 255:
            return LabelMap(scale=scale)
        raise UserError(f"{where}: 'scale' must be a whole number from 1 to 255, not {scale!r}.")
    if (
        isinstance(document, dict)
        and set(document) == {"map"}
        and isinstance(document["map"], dict)
    ):
        pairs = []
        for label, value in document["map"].items():
            if not str(label).isdigit() or not isinstance(value, int) or not 0 <= value < 255:
                raise UserError(
                    f"{where}: 'map' entry {label!r}: {value!r} must map a class id to a pixel "
                    "value from 0 to 254."
                )
            pairs.append((value, int(label)))
        values = [value for value, _ in pairs]
        if len(set(values)) != len(values):
            raise UserError(f"{where}: 'map' gives one pixel value to several classes.")
        return LabelMap(lookup=tuple(sorted(pairs)))
    raise UserError(
        f'{where} must be {{"scale": "<n>"}} or {{"map": {{"<class>": <pixel value>, ...}}}}.'
    )


def label_map(env: TrainingEnv, split: str) -> LabelMap:
    """The `label_map` channel's `<split>_label_map.json`; scale 1 without one."""
    reader = env.channel("label_map")
    if reader is None:
        return LabelMap()
    require_file_mode(reader)
    name = f"{split}_label_map.json"
    found = sorted(reader.folder.rglob(name)) if reader.folder.is_dir() else []
    if not found:
        env.log.info(f"Channel 'label_map' has no {name}: {split} pixel values are class ids")
        return LabelMap()
    try:
        text = found[0].read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"Channel 'label_map': {name} is not utf-8 text.") from None
    return parse_label_map(text, f"Channel 'label_map': {name}")


def require_file_mode(reader: ChannelReader) -> None:
    if reader.pipe or reader.content_type == RECORDIO_IMAGES:
        raise UserError(
            f"Channel '{reader.name}': augmented manifests (Pipe mode, "
            f"{RECORDIO_IMAGES}) are not supported yet by the Semantic Segmentation algorithm; "
            "give JPEG images and PNG masks in File mode."
        )


def load_split(env: TrainingEnv, split: str, num_classes: int) -> Scenes:
    """The images of channel `split` (train or validation) and their masks."""
    images = env.channel(split)
    masks = env.channel(f"{split}_annotation")
    assert images is not None  # the spec makes both required
    assert masks is not None
    require_file_mode(images)
    require_file_mode(masks)
    return read_scenes(images.folder, masks.folder, split, num_classes, label_map(env, split))


def read_scenes(
    image_folder: Path, mask_folder: Path, split: str, num_classes: int, mapping: LabelMap
) -> Scenes:
    """Pairs image files with their masks (same relative name, `.png`), decoded and checked."""
    annotation = f"{split}_annotation"
    mask_files = {
        str(path.relative_to(mask_folder).with_suffix("")): path
        for path in (data_files(mask_folder) if mask_folder.is_dir() else [])
    }
    scenes = Scenes([], [], [])
    for path in data_files(image_folder) if image_folder.is_dir() else []:
        name = str(path.relative_to(image_folder))
        key = str(Path(name).with_suffix(""))
        mask_path = mask_files.get(key)
        if mask_path is None:
            raise UserError(
                f"Channel '{split}': image '{name}' has no mask '{key}{MASK_SUFFIX}' in channel "
                f"'{annotation}'; every image needs a PNG mask with the same base name."
            )
        image = decode_image(path.read_bytes(), f"Channel '{split}': image '{name}'")
        where = f"Channel '{annotation}': mask '{mask_path.relative_to(mask_folder)}'"
        mask = mapping.apply(decode_mask(mask_path.read_bytes(), where), where)
        if mask.shape != image.shape[:2]:
            raise UserError(
                f"{where} is {mask.shape[1]}x{mask.shape[0]} but its image '{name}' is "
                f"{image.shape[1]}x{image.shape[0]}; a mask must have its image's size."
            )
        bad = (mask >= num_classes) & (mask != IGNORE)
        if bad.any():
            raise UserError(
                f"{where} has class {int(mask[bad].max())}, but num_classes is {num_classes}: "
                f"classes are 0 to {num_classes - 1} (255 marks pixels to ignore)."
            )
        scenes.images.append(image)
        scenes.masks.append(mask)
        scenes.names.append(name)
    if not scenes.images:
        raise UserError(f"No data in channel '{split}': it holds no images.")
    return scenes


def decode_image(data: bytes, where: str) -> npt.NDArray[np.uint8]:
    """JPEG (or any image Pillow reads) bytes as RGB (H, W, 3) uint8."""
    image = _open(data, where)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def decode_mask(data: bytes, where: str) -> npt.NDArray[np.uint8]:
    """A single-channel PNG (grey `L` or palette `P`: the indices) as (H, W) uint8."""
    image = _open(data, where)
    if image.mode not in ("L", "P"):
        raise UserError(
            f"{where} is a {image.mode} image; a mask is a single-channel PNG (8-bit grey or "
            "palette) whose pixel values are class ids."
        )
    return np.array(image, dtype=np.uint8)


def _open(data: bytes, where: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{where} cannot be decoded: not a readable image ({exc}).") from None
    return image


# --- augmentation -----------------------------------------------------------------------------


def training_crop(
    image: npt.NDArray[np.uint8] | torch.Tensor,
    mask: npt.NDArray[np.uint8] | torch.Tensor,
    base_size: int,
    crop: int,
    rng: np.random.Generator,
    where: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented (3, crop, crop) float image and (crop, crop) int64 mask on `where`.

    The crop is sampled straight from the source image (one `grid_sample` of crop x crop
    points, bilinear for the image, nearest for the mask) rather than by resizing the whole
    image first: the same pixels, at a cost that does not grow with the random scale. The
    image and mask may be tensors already staged on `where` (see `gpu.stage_each`)."""
    height, width = mask.shape
    flip = rng.random() < 0.5
    long_side = int(rng.integers(int(base_size * 0.5), int(base_size * 2.0) + 1))
    scale = long_side / max(height, width)
    scaled = (max(1, round(height * scale)), max(1, round(width * scale)))
    top = int(rng.integers(0, max(scaled[0], crop) - crop + 1))
    left = int(rng.integers(0, max(scaled[1], crop) - crop + 1))
    rows = torch.arange(top, top + crop, device=where, dtype=torch.float32)
    cols = torch.arange(left, left + crop, device=where, dtype=torch.float32)
    # a scaled pixel's centre in the source, as grid_sample's [-1, 1] (align_corners=False)
    y = (rows + 0.5) / scaled[0] * 2 - 1
    x = (cols + 0.5) / scaled[1] * 2 - 1
    if flip:
        x = -x
    grid = torch.stack(torch.meshgrid(y, x, indexing="ij")[::-1], dim=-1)[None]
    source = to_device(image, where).permute(2, 0, 1).float()
    labels = to_device(mask, where).float()[None, None]
    pixels = F.grid_sample(
        source[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )[0]
    classes = F.grid_sample(
        labels, grid, mode="nearest", padding_mode="border", align_corners=False
    )[0, 0]
    padding = (rows[:, None] >= scaled[0]) | (cols[None, :] >= scaled[1])
    pixels = pixels.masked_fill(padding[None], 0.0)
    classes = classes.masked_fill(padding, float(IGNORE))
    return pixels, classes.long()
