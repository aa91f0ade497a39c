"""The Image Classification network (spec algorithms §16(f)): ResNet (He et al., 2016) of
`num_layers`, written in torch (torchvision is not a dependency), image preprocessing, the
training augmentations, and the model files.

ImageNet-style depths 18/34 use basic blocks and 50/101/152/200 bottleneck blocks over four
stages (64, 128, 256, 512 wide; x4 for bottlenecks); CIFAR-style depths 20/32/44/56/110 use
(depth - 2) / 6 basic blocks in each of three stages (16, 32, 64 wide). The stem is ImageNet's
7x7 stride-2 convolution and max pool for images larger than 32 pixels, else one 3x3
convolution (what MXNet's symbol does for small images, where the ImageNet stem would leave
nothing to pool). A global average pool and the `fc` layer give `num_classes` logits.

Model files (spec §16(e)): `image-classification-NNNN.params` (the torch state dict as numpy
arrays with the architecture, via `artifacts.save_model`; NNNN the epoch it comes from),
`image-classification-symbol.json` (the architecture, and which params file is the model) and
`model-shapes.json` (the input shape, as SageMaker's). They load without a GPU.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from opensage.algorithms.artifacts import load_model, save_model
from opensage.algorithms.gpu import constant
from opensage.algorithms.image_classification.spec import CIFAR_DEPTHS

SYMBOL: Final = "image-classification-symbol.json"
SHAPES: Final = "model-shapes.json"
FORMAT: Final = "opensage-torch-resnet"
IMAGENET_LAYOUT: Final = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
MEAN: Final = (123.68, 116.779, 103.939)
STD: Final = (58.393, 57.12, 57.375)
SMALL_IMAGE: Final = 32


def params_name(epoch: int) -> str:
    return f"image-classification-{epoch:04d}.params"


@dataclass(frozen=True)
class Architecture:
    num_layers: int
    image_shape: tuple[int, int, int]
    num_classes: int
    multi_label: bool = False

    def layout(self) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
        """(block kind, blocks per stage, stage widths) of this depth."""
        if self.num_layers in CIFAR_DEPTHS:
            n = (self.num_layers - 2) // 6
            return "basic", (n, n, n), (16, 32, 64)
        kind, counts = IMAGENET_LAYOUT[self.num_layers]
        return kind, counts, (64, 128, 256, 512)

    @property
    def small_stem(self) -> bool:
        return self.num_layers in CIFAR_DEPTHS or min(self.image_shape[1:]) <= SMALL_IMAGE

    def meta(self) -> dict[str, Any]:
        return {
            "num_layers": self.num_layers,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "multi_label": self.multi_label,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Architecture:
        c, h, w = (int(v) for v in meta["image_shape"])
        return cls(
            int(meta["num_layers"]), (c, h, w), int(meta["num_classes"]), bool(meta["multi_label"])
        )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inputs: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(inputs, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inputs: int, planes: int, stride: int) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inputs, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.shortcut = _shortcut(inputs, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


def _shortcut(inputs: int, outputs: int, stride: int) -> nn.Module:
    if stride == 1 and inputs == outputs:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))


class ResNet(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        kind, counts, widths = arch.layout()
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        channels = arch.image_shape[0]
        first = widths[0]
        if arch.small_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(channels, first, 3, 1, 1, bias=False),
                nn.BatchNorm2d(first),
                nn.ReLU(inplace=True),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(channels, first, 7, 2, 3, bias=False),
                nn.BatchNorm2d(first),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        stages: list[nn.Module] = []
        inputs = first
        for index, (count, planes) in enumerate(zip(counts, widths, strict=True)):
            blocks: list[nn.Module] = []
            for i in range(count):
                stride = 2 if i == 0 and index > 0 else 1
                blocks.append(block(inputs, planes, stride))
                inputs = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(inputs, arch.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(self.stem(x))
        logits: torch.Tensor = self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))
        return logits

    def stage_blocks(self) -> list[int]:
        """Blocks in each stage (what `num_layers` decides)."""
        return [len(stage) for stage in self.stages]  # type: ignore[arg-type]


# --- images -----------------------------------------------------------------------------------


def decode_image(data: bytes, channels: int) -> Any:
    """The image bytes (JPEG, PNG, anything Pillow reads) as a Pillow image in RGB or grey;
    ValueError with Pillow's reason when they are not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"not a readable image ({exc})") from None
    return image.convert("RGB" if channels == 3 else "L")


def fit_image(image: Any, shape: tuple[int, int, int], resize: int | None) -> npt.NDArray[Any]:
    """Training preprocessing: the shorter side scaled to `resize` (when given), then the
    centre `H x W` (scaled to it when smaller). Returns uint8 (C, H, W)."""
    from PIL import Image

    _, h, w = shape
    if resize is not None:
        width, height = image.size
        scale = resize / min(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.BILINEAR)
    width, height = image.size
    if width >= w and height >= h:
        left, top = (width - w) // 2, (height - h) // 2
        image = image.crop((left, top, left + w, top + h))
    else:
        image = image.resize((w, h), Image.Resampling.BILINEAR)
    return to_array(image)


def stretch_image(image: Any, shape: tuple[int, int, int]) -> npt.NDArray[Any]:
    """Inference preprocessing: resized to `H x W`, aspect not preserved (spec §16(d))."""
    from PIL import Image

    _, h, w = shape
    if image.size != (w, h):
        image = image.resize((w, h), Image.Resampling.BILINEAR)
    return to_array(image)


def to_array(image: Any) -> npt.NDArray[Any]:
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8-valued (N, C, H, W) to the network's input: per-channel mean and scale."""
    channels = pixels.shape[1]
    mean = constant(MEAN if channels == 3 else (sum(MEAN) / 3,), pixels.device)
    std = constant(STD if channels == 3 else (sum(STD) / 3,), pixels.device)
    return (pixels.float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


# --- augmentation -----------------------------------------------------------------------------


def augment(x: torch.Tensor, kind: str | None, generator: torch.Generator) -> torch.Tensor:
    """`augmentation_type` on a float batch of pixel values (N, C, H, W), on its device.

    crop: a random crop (a shift of up to 1/8 of the side, edges reflected) and a horizontal
    flip; crop_color adds brightness, contrast and saturation jitter (+-40 %); and
    crop_color_transform a small affine (rotation +-10 degrees, scale 0.9-1.1, shear +-0.1).
    The geometry is one `grid_sample` per batch; the randomness comes from `generator`.
    """
    if kind is None:
        return x
    n = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        values = torch.rand(n, generator=generator, device=generator.device)
        return (low + (high - low) * values).to(x.device)

    flip = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
    shift_x, shift_y = uniform(-0.25, 0.25), uniform(-0.25, 0.25)  # 1/8 side = 0.25 in [-1, 1]
    angle = torch.zeros(n, device=x.device)
    scale = torch.ones(n, device=x.device)
    shear = torch.zeros(n, device=x.device)
    if kind == "crop_color_transform":
        angle = uniform(-math.pi / 18, math.pi / 18)
        scale = uniform(0.9, 1.1)
        shear = uniform(-0.1, 0.1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin + shear, shift_x], dim=1),
            torch.stack([sin * flip, cos, shift_y], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if kind in ("crop_color", "crop_color_transform"):
        out = _jitter_colour(out, uniform)
    return out.clamp(0, 255)


def _jitter_colour(x: torch.Tensor, uniform: Any) -> torch.Tensor:
    view = (-1, 1, 1, 1)
    x = x * uniform(0.6, 1.4).view(view)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(0.6, 1.4).view(view) + mean
    if x.shape[1] == 3:
        grey = (x * constant((0.299, 0.587, 0.114), x.device).view(1, 3, 1, 1)).sum(
            dim=1, keepdim=True
        )
        x = (x - grey) * uniform(0.6, 1.4).view(view) + grey
    return x


# --- model files ------------------------------------------------------------------------------


def state_arrays(net: ResNet) -> dict[str, npt.NDArray[Any]]:
    """A snapshot of the weights: copied, since on the CPU `.numpy()` shares the live tensors'
    memory and the "best epoch" would silently become the last one."""
    return {name: value.detach().cpu().numpy().copy() for name, value in net.state_dict().items()}


def save(
    model_dir: Path,
    arrays: dict[str, npt.NDArray[Any]],
    arch: Architecture,
    epoch: int,
    batch_size: int,
    *,
    final: bool = True,
) -> Path:
    """Write the params of `epoch`; `final` also makes them the model (symbol and shapes)."""
    meta = {"algorithm": "image_classification", "format": FORMAT, **arch.meta()}
    path = save_model(model_dir, arrays, meta, name=params_name(epoch))
    if final:
        symbol = {**meta, "params": path.name, "epoch": epoch}
        (model_dir / SYMBOL).write_text(json.dumps(symbol, indent=2, sort_keys=True))
        shapes = [{"name": "data", "shape": [batch_size, *arch.image_shape]}]
        (model_dir / SHAPES).write_text(json.dumps(shapes))
    return path


def read_model(model_dir: Path) -> tuple[Architecture, dict[str, npt.NDArray[Any]]]:
    """The architecture and weights in a model folder; ValueError saying what is missing."""
    symbol_path = model_dir / SYMBOL
    if not symbol_path.is_file():
        raise ValueError(f"no {SYMBOL} (not an opensage Image Classification model)")
    try:
        symbol = json.loads(symbol_path.read_text())
        if symbol.get("format") != FORMAT:
            raise ValueError(f"{SYMBOL} is not an opensage model ({symbol.get('format')!r})")
        arrays, meta = load_model(model_dir, str(symbol["params"]))
        arch = Architecture.from_meta(meta)
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{SYMBOL} is broken ({exc})") from None
    return arch, arrays


def build(arch: Architecture, arrays: dict[str, npt.NDArray[Any]] | None = None) -> ResNet:
    net = ResNet(arch)
    if arrays is not None:
        net.load_state_dict({name: torch.from_numpy(np.array(arrays[name])) for name in arrays})
    return net


class Classifier:
    """A trained network for inference (eval mode, no gradients), on `where`."""

    def __init__(self, net: ResNet, where: torch.device) -> None:
        self.net = net.to(where).eval()
        self.device = where

    @property
    def arch(self) -> Architecture:
        return self.net.arch

    def probabilities(self, pixels: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Class probabilities of uint8 images (N, C, H, W): softmax, or per-class sigmoids
        for a multi-label model."""
        with torch.no_grad():
            x = normalize(torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device))
            logits = self.net(x).float()
            out = torch.sigmoid(logits) if self.arch.multi_label else torch.softmax(logits, 1)
        return np.asarray(out.cpu().numpy(), dtype=np.float32)
