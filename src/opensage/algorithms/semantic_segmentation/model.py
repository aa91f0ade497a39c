"""The segmentation networks (spec algorithms §18(f)) and `model_algo-1`.

Encoder: a ResNet-50 or -101 (bottleneck blocks, 3-4-6-3 or 3-4-23-3) whose last stages trade
their stride for dilation (Yu & Koltun; DeepLab), so features keep 1/8 of the input's side
(`output_stride` 8, GluonCV's choice; 16 dilates the last stage only). It is written here
because Image Classification's ResNet has no dilated stages. Decoders, on the last stage's
features, as GluonCV builds them:

* FCN (Long et al. 2015): 3x3 conv to 1/4 of the channels, BN, ReLU, dropout 0.1, 1x1 conv.
* PSP (Zhao et al. 2017): average pools to 1, 2, 3 and 6 cells, each a 1x1 conv to 1/4 of the
  channels, upsampled and concatenated with the features, then FCN's block.
* DeepLab v3 (Chen et al. 2017): ASPP, a 1x1 conv, three 3x3 convs dilated 12/24/36 (6/12/18
  at output stride 16) and image pooling, 256 channels each, fused by a 1x1 conv, then a 3x3
  conv block and the 1x1 classifier.

The class logits are upsampled bilinearly to the input's size. `width` (the first
stage's channels: 64 in the standard network, 64 x the opensage `width_multiplier`) scales every
channel count. Nothing is
pretrained or downloaded.

`model_algo-1` (spec §18(e) is unconfirmed) is an `.npz` via `artifacts.save_model`: the torch
state dict as numpy arrays and the architecture; it loads without a GPU.
"""

from __future__ import annotations

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
from opensage.algorithms.semantic_segmentation.spec import STANDARD_WIDTH

FORMAT: Final = "opensage-torch-segmentation"
LAYOUT: Final = {"resnet-50": (3, 4, 6, 3), "resnet-101": (3, 4, 23, 3)}
MEAN: Final = (0.485, 0.456, 0.406)
STD: Final = (0.229, 0.224, 0.225)
PSP_BINS: Final = (1, 2, 3, 6)


@dataclass(frozen=True)
class Architecture:
    backbone: str
    algorithm: str
    num_classes: int
    width: int = STANDARD_WIDTH
    output_stride: int = 8
    base_size: int = 520
    """The long side images are scaled to for inference (training scales around it)."""

    @property
    def features(self) -> int:
        """Channels of the last backbone stage (2048 for the standard network)."""
        return self.width * 8 * 4

    def scaled(self, channels: int) -> int:
        """A decoder width of the standard network, in proportion to `width`."""
        return max(8, channels * self.width // STANDARD_WIDTH)

    def meta(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "algorithm": self.algorithm,
            "num_classes": self.num_classes,
            "width": self.width,
            "output_stride": self.output_stride,
            "base_size": self.base_size,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Architecture:
        return cls(
            str(meta["backbone"]),
            str(meta["algorithm"]),
            int(meta["num_classes"]),
            int(meta["width"]),
            int(meta["output_stride"]),
            int(meta["base_size"]),
        )


def _conv_bn_relu(inputs: int, outputs: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inputs: int, planes: int, stride: int, dilation: int) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inputs, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, width, 1, stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class Backbone(nn.Module):
    """A dilated ResNet: the stem (7x7 stride 2 and a max pool) and four bottleneck stages."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        w = arch.width
        self.stem = nn.Sequential(
            nn.Conv2d(3, w, 7, 2, 3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        if arch.output_stride == 8:
            strides, dilations = (1, 2, 1, 1), (1, 1, 2, 4)
        else:
            strides, dilations = (1, 2, 2, 1), (1, 1, 1, 2)
        stages: list[nn.Module] = []
        inputs = w
        previous = 1
        for count, planes, stride, dilation in zip(
            LAYOUT[arch.backbone], (w, 2 * w, 4 * w, 8 * w), strides, dilations, strict=True
        ):
            blocks: list[nn.Module] = []
            for i in range(count):
                # the first block of a dilated stage keeps the previous dilation (torchvision)
                blocks.append(
                    Bottleneck(
                        inputs, planes, stride if i == 0 else 1, previous if i == 0 else dilation
                    )
                )
                inputs = planes * Bottleneck.expansion
            previous = dilation
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.stages(self.stem(x))
        return out


class FCNHead(nn.Module):
    def __init__(self, inputs: int, inner: int, classes: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            _conv_bn_relu(inputs, inner, 3), nn.Dropout(0.1), nn.Conv2d(inner, classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block(x)
        return out


class PSPHead(nn.Module):
    """Pyramid pooling, then FCN's block over the features and the pooled context."""

    def __init__(self, inputs: int, inner: int, classes: int) -> None:
        super().__init__()
        branch = inputs // 4
        self.pools = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(bins), _conv_bn_relu(inputs, branch, 1))
            for bins in PSP_BINS
        )
        self.head = FCNHead(inputs + branch * len(PSP_BINS), inner, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(pool(x), size=size, mode="bilinear", align_corners=False)
            for pool in self.pools
        ]
        out: torch.Tensor = self.head(torch.cat([x, *pooled], dim=1))
        return out


class ASPP(nn.Module):
    def __init__(self, inputs: int, channels: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn_relu(inputs, channels, 1)]
            + [_conv_bn_relu(inputs, channels, 3, rate) for rate in rates]
        )
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv_bn_relu(inputs, channels, 1))
        self.project = nn.Sequential(
            _conv_bn_relu(channels * (len(rates) + 2), channels, 1), nn.Dropout(0.5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [branch(x) for branch in self.branches]
        outs.append(
            F.interpolate(self.image_pool(x), size=size, mode="bilinear", align_corners=False)
        )
        out: torch.Tensor = self.project(torch.cat(outs, dim=1))
        return out


class DeepLabHead(nn.Module):
    def __init__(self, inputs: int, channels: int, classes: int, output_stride: int) -> None:
        super().__init__()
        rates = (12, 24, 36) if output_stride == 8 else (6, 12, 18)
        self.block = nn.Sequential(
            ASPP(inputs, channels, rates),
            _conv_bn_relu(channels, channels, 3),
            nn.Dropout(0.1),
            nn.Conv2d(channels, classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block(x)
        return out


class SegmentationNet(nn.Module):
    """Backbone and decoder: (N, 3, H, W) normalised images to (N, classes, H, W) logits."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = Backbone(arch)
        features, classes = arch.features, arch.num_classes
        self.head: nn.Module
        if arch.algorithm == "fcn":
            self.head = FCNHead(features, features // 4, classes)
        elif arch.algorithm == "psp":
            self.head = PSPHead(features, features // 4, classes)
        elif arch.algorithm == "deeplab":
            self.head = DeepLabHead(features, arch.scaled(256), classes, arch.output_stride)
        else:
            raise ValueError(f"unknown algorithm {arch.algorithm}")
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if isinstance(module, Bottleneck):
                # each residual branch starts as the identity (Goyal et al. 2017): a deep
                # network trained from scratch then starts as a shallow one
                nn.init.zeros_(module.bn3.weight)
        classifier = [m for m in self.head.modules() if isinstance(m, nn.Conv2d)][-1]
        nn.init.normal_(classifier.weight, std=0.01)
        assert classifier.bias is not None
        nn.init.zeros_(classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.backbone(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8-valued (N, 3, H, W) to the network's input: ImageNet mean and scale."""
    mean = constant(MEAN, pixels.device).view(1, 3, 1, 1)
    std = constant(STD, pixels.device).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


# --- model files ------------------------------------------------------------------------------


def state_arrays(net: nn.Module) -> dict[str, npt.NDArray[Any]]:
    """Copies (on the CPU `numpy()` shares memory with the live parameters)."""
    return {name: value.detach().cpu().numpy().copy() for name, value in net.state_dict().items()}


def save(model_dir: Path, arch: Architecture, arrays: dict[str, npt.NDArray[Any]]) -> Path:
    meta = {"algorithm_name": "semantic_segmentation", "format": FORMAT, **arch.meta()}
    return save_model(model_dir, arrays, meta)


def read_model(model_dir: Path) -> tuple[Architecture, dict[str, npt.NDArray[Any]]]:
    """The architecture and weights in a model folder; ValueError saying what is wrong."""
    arrays, meta = load_model(model_dir)
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"model_algo-1 is not an opensage Semantic Segmentation model ({meta.get('format')!r})"
        )
    try:
        return Architecture.from_meta(meta), arrays
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"model_algo-1 has broken settings ({exc})") from None


def load_weights(net: nn.Module, arrays: dict[str, npt.NDArray[Any]]) -> None:
    """Every weight of `net` from `arrays`; ValueError naming what does not fit."""
    state = {name: torch.from_numpy(np.array(value)) for name, value in arrays.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(" ".join(str(exc).split())[:300]) from None


def build(arch: Architecture, arrays: dict[str, npt.NDArray[Any]] | None = None) -> SegmentationNet:
    net = SegmentationNet(arch)
    if arrays is not None:
        load_weights(net, arrays)
    return net


class Segmenter:
    """A trained network for inference (eval mode, no gradients), on `where`."""

    def __init__(self, net: SegmentationNet, where: torch.device) -> None:
        self.net = net.to(where).eval()
        self.device = where

    @property
    def arch(self) -> Architecture:
        return self.net.arch

    def probabilities(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Per-class probabilities (classes, H, W) of one RGB image (H, W, 3): the image is
        scaled so its long side is `base_size` (what training scales around), and the
        probabilities back to its own H x W."""
        with torch.no_grad():
            return np.asarray(self.batch_probabilities(image[None])[0].cpu().numpy())

    def batch_probabilities(self, images: npt.NDArray[np.uint8]) -> torch.Tensor:
        """`probabilities` of same-sized images (N, H, W, 3), as a tensor on the device."""
        height, width = images.shape[1:3]
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        x = x.permute(0, 3, 1, 2).float()
        size = inference_size(height, width, self.arch.base_size)
        if size != (height, width):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            logits = self.net(normalize(x)).float()
            if size != (height, width):
                logits = F.interpolate(
                    logits, size=(height, width), mode="bilinear", align_corners=False
                )
            return torch.softmax(logits, dim=1)


def inference_size(height: int, width: int, base_size: int) -> tuple[int, int]:
    """The (H, W) an image is scaled to: long side `base_size`, aspect kept."""
    scale = base_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))
