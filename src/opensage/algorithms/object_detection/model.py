"""The SSD network (Liu et al., ECCV 2016; spec algorithms §17(f)) in torch: a VGG-16 or
ResNet-50 base, extra feature layers down to 1x1, default boxes on every feature map, and the
convolutional class and box heads; box encoding and decoding, IoU, matching, the MultiBox loss
and detection with NMS.

VGG-16 is SSD's reduced VGG (pool5 3x3 stride 1, fc6 as a 3x3 convolution of dilation 6, fc7 as
a 1x1); its sources are conv4_3 (stride 8) and fc7 (stride 16). ResNet-50's are the ends of its
third and fourth stages (strides 16 and 32), as MXNet's SSD takes them. Every convolution is
followed by batch normalisation: nothing pretrained is downloaded, and from scratch the plain
VGG of the paper does not train reliably. `width` scales every layer's channels (1: the
published widths). Extra layers (a 1x1 then a 3x3 stride-2 convolution) follow until the map is
1x1, so SSD300 has maps 38, 19, 10, 5, 3, 2, 1 and smaller images have fewer.

Default boxes: scale 0.1 on the first map, then 0.2 to 0.9 evenly over the others, plus one box
of scale sqrt(s_k s_k+1) at aspect 1; aspect ratios 1, 2, 1/2 on the first and last two maps and
also 3, 1/3 on the others. Boxes are encoded as SSD's centre offsets and log sizes with the
variances 0.1 and 0.2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from opensage.algorithms.image_classification.model import Bottleneck

VARIANCES: Final = (0.1, 0.2)
NEGATIVE_RATIO: Final = 3
SCORE_FLOOR: Final = 0.01
CANDIDATES: Final = 400
KEEP: Final = 100
VGG_LAYOUT: Final = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
RESNET_BLOCKS: Final = (3, 4, 6, 3)


@dataclass(frozen=True)
class Architecture:
    base_network: str
    num_classes: int
    image_shape: int
    width: float = 1.0

    def channels(self, count: int) -> int:
        return max(2, round(count * self.width))

    def meta(self) -> dict[str, Any]:
        return {
            "base_network": self.base_network,
            "num_classes": self.num_classes,
            "image_shape": self.image_shape,
            "width_multiplier": self.width,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Architecture:
        return cls(
            str(meta["base_network"]),
            int(meta["num_classes"]),
            int(meta["image_shape"]),
            float(meta["width_multiplier"]),
        )


def conv(
    inputs: int, outputs: int, kernel: int = 3, stride: int = 1, dilation: int = 1
) -> nn.Module:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, stride, padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class VGGBase(nn.Module):
    """SSD's reduced VGG-16: returns conv4_3 and fc7."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        inputs = 3
        for item in VGG_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                width = arch.channels(int(item))
                layers.append(conv(inputs, width))
                inputs = width
        self.conv4 = nn.Sequential(*layers)
        wide = arch.channels(512)
        fc = arch.channels(1024)
        self.conv5 = nn.Sequential(
            nn.MaxPool2d(2, 2, ceil_mode=True),
            conv(inputs, wide),
            conv(wide, wide),
            conv(wide, wide),
            nn.MaxPool2d(3, 1, 1),
            conv(wide, fc, dilation=6),
            conv(fc, fc, kernel=1),
        )
        self.out_channels = (inputs, fc)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        first = self.conv4(x)
        return [first, self.conv5(first)]


class ResNetBase(nn.Module):
    """ResNet-50 (bottleneck blocks 3, 4, 6, 3): returns the ends of stages 3 and 4."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        first = arch.channels(64)
        self.stem = nn.Sequential(
            nn.Conv2d(3, first, 7, 2, 3, bias=False),
            nn.BatchNorm2d(first),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        inputs = first
        outs: list[int] = []
        for index, (count, planes) in enumerate(
            zip(RESNET_BLOCKS, (64, 128, 256, 512), strict=True)
        ):
            width = arch.channels(planes)
            blocks: list[nn.Module] = []
            for i in range(count):
                blocks.append(Bottleneck(inputs, width, 2 if i == 0 and index > 0 else 1))
                inputs = width * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
            outs.append(inputs)
        self.stages = nn.ModuleList(stages)
        self.out_channels = (outs[2], outs[3])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        found = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index >= 2:
                found.append(x)
        return found


def box_counts(maps: int) -> list[int]:
    """Default boxes per location of each map: 4 on the first and last two, 6 elsewhere."""
    return [4 if k == 0 or k >= maps - 2 else 6 for k in range(maps)]


class SSD(nn.Module):
    """Base, extra layers and heads; `forward` gives class logits (N, P, C+1) and box offsets
    (N, P, 4) for the P default boxes of `priors`."""

    priors: torch.Tensor

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.base: nn.Module = VGGBase(arch) if arch.base_network == "vgg-16" else ResNetBase(arch)
        with torch.no_grad():
            probe = self.base.eval()(torch.zeros(1, 3, arch.image_shape, arch.image_shape))
        self.base.train()
        sizes = [int(t.shape[-1]) for t in probe]
        channels = list(self.base.out_channels)
        extras: list[nn.Module] = []
        widths = [(256, 512), (128, 256), (128, 256), (128, 256)]
        while sizes[-1] > 1:
            middle, out = widths[min(len(extras), len(widths) - 1)]
            inputs = channels[-1]
            extras.append(
                nn.Sequential(
                    conv(inputs, arch.channels(middle), kernel=1),
                    conv(arch.channels(middle), arch.channels(out), stride=2),
                )
            )
            channels.append(arch.channels(out))
            sizes.append((sizes[-1] + 1) // 2)
        self.extras = nn.ModuleList(extras)
        self.sizes = tuple(sizes)
        counts = box_counts(len(sizes))
        classes = arch.num_classes + 1
        self.classify = nn.ModuleList(
            nn.Conv2d(c, n * classes, 3, 1, 1) for c, n in zip(channels, counts, strict=True)
        )
        self.locate = nn.ModuleList(
            nn.Conv2d(c, n * 4, 3, 1, 1) for c, n in zip(channels, counts, strict=True)
        )
        self.register_buffer("priors", default_boxes(self.sizes), persistent=False)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for head in (*self.classify, *self.locate):
            assert isinstance(head, nn.Conv2d)
            nn.init.normal_(head.weight, std=0.01)
            assert head.bias is not None
            nn.init.zeros_(head.bias)
        for head in self.classify:
            assert isinstance(head, nn.Conv2d)
            assert head.bias is not None
            # Background starts at ~99 %, as most default boxes are: the early loss is then
            # about the objects rather than about unlearning a uniform guess.
            head.bias.data.view(-1, classes)[:, 0] = math.log(99 * arch.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = list(self.base(x))
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        n = x.shape[0]
        logits = [
            head(m).permute(0, 2, 3, 1).reshape(n, -1, self.arch.num_classes + 1)
            for head, m in zip(self.classify, maps, strict=True)
        ]
        boxes = [
            head(m).permute(0, 2, 3, 1).reshape(n, -1, 4)
            for head, m in zip(self.locate, maps, strict=True)
        ]
        return torch.cat(logits, 1), torch.cat(boxes, 1)


def scales(maps: int) -> list[float]:
    """SSD's default box scale of each map, and 1.0 after the last."""
    if maps == 1:
        return [0.2, 1.0]
    rest = np.linspace(0.2, 0.9, maps - 1).tolist()
    return [0.1, *rest, 1.0]


def default_boxes(sizes: Sequence[int]) -> torch.Tensor:
    """Every map's default boxes (P, 4) as centre x, centre y, width, height in [0, 1], in the
    heads' order: map, row, column, box."""
    s = scales(len(sizes))
    counts = box_counts(len(sizes))
    out: list[list[float]] = []
    for k, size in enumerate(sizes):
        shapes = [(s[k], s[k]), (math.sqrt(s[k] * s[k + 1]),) * 2]
        ratios = (2.0, 3.0) if counts[k] == 6 else (2.0,)
        for ratio in ratios:
            r = math.sqrt(ratio)
            shapes += [(s[k] * r, s[k] / r), (s[k] / r, s[k] * r)]
        for i in range(size):
            for j in range(size):
                cx, cy = (j + 0.5) / size, (i + 0.5) / size
                out.extend([cx, cy, w, h] for w, h in shapes)
    return torch.tensor(out, dtype=torch.float32)


# --- boxes --------------------------------------------------------------------------------------


def corners(boxes: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (xmin, ymin, xmax, ymax)."""
    half = boxes[..., 2:] / 2
    return torch.cat([boxes[..., :2] - half, boxes[..., :2] + half], -1)


def centres(boxes: torch.Tensor) -> torch.Tensor:
    """(xmin, ymin, xmax, ymax) -> (cx, cy, w, h)."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every corner box of `a` (..., A, 4) with every one of `b` (..., B, 4):
    (..., A, B), the leading dimensions broadcast (a batch of images' objects against one set
    of default boxes, say)."""
    top_left = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    bottom_right = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return inter / union.clamp(min=1e-12)


def encode(boxes: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Corner boxes (P, 4) as offsets from their default boxes (P, 4, centre form)."""
    c = centres(boxes)
    xy = (c[:, :2] - priors[:, :2]) / priors[:, 2:] / VARIANCES[0]
    wh = torch.log(c[:, 2:].clamp(min=1e-6) / priors[:, 2:]) / VARIANCES[1]
    return torch.cat([xy, wh], 1)


def decode(offsets: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Offsets (..., P, 4) back to corner boxes."""
    xy = priors[:, :2] + offsets[..., :2] * VARIANCES[0] * priors[:, 2:]
    wh = priors[:, 2:] * torch.exp((offsets[..., 2:] * VARIANCES[1]).clamp(max=10.0))
    return corners(torch.cat([xy, wh], -1))


def match(
    objects: torch.Tensor, priors: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of one image: each default box's class (0 background, else class id + 1) and its
    encoded box. A default box takes the object it overlaps most when the IoU reaches
    `threshold`; each object also takes its best default box whatever the IoU (the later
    object when two share one)."""
    valid = torch.ones(1, objects.shape[0], dtype=torch.bool, device=objects.device)
    labels, boxes = match_batch(objects[None], valid, priors, threshold)
    return labels[0], boxes[0]


def match_batch(
    objects: torch.Tensor, valid: torch.Tensor, priors: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`match` of a batch at once - a few kernels rather than a few per image and object, and
    no host sync: `objects` (N, M, 5) padded to the most objects of an image, `valid` (N, M)
    marking the real rows. Gives labels (N, P) and encoded boxes (N, P, 4), zero for an image
    without objects."""
    n, m = valid.shape
    count = priors.shape[0]
    if m == 0:
        return (
            torch.zeros(n, count, dtype=torch.long, device=priors.device),
            torch.zeros(n, count, 4, device=priors.device),
        )
    iou = box_iou(corners(priors), objects[..., 1:5]).masked_fill(~valid[:, None, :], -1.0)
    overlap, which = iou.max(2)
    best = iou.argmax(1)
    # each object's best box goes to it; where objects share one, the last (as a loop would)
    rows = torch.arange(m, device=valid.device).expand(n, m)
    forced = torch.full((n, count), -1, dtype=torch.long, device=valid.device)
    forced.scatter_reduce_(1, best, torch.where(valid, rows, -1), reduce="amax")
    taken = forced >= 0
    which = torch.where(taken, forced, which)
    overlap = overlap.masked_fill(taken, 2.0)
    chosen = objects.gather(1, which[..., None].expand(n, count, objects.shape[-1]))
    labels = (chosen[..., 0].long() + 1).masked_fill(overlap < threshold, 0)
    boxes = encode(chosen[..., 1:5].reshape(-1, 4), priors.repeat(n, 1)).view(n, count, 4)
    return labels, boxes.masked_fill(~valid.any(1)[:, None, None], 0.0)


def multibox_loss(
    logits: torch.Tensor, offsets: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax confidence loss over the positives and the hardest negatives (3 per positive)
    and smooth-L1 box loss over the positives, each divided by the positives' count. Masked
    sums rather than boolean indexing, which would make the host wait for the device."""
    positive = labels > 0
    positives = positive.sum(1, keepdim=True)
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view_as(labels)
    hardness = ce.detach().masked_fill(positive, -1.0)
    rank = hardness.argsort(dim=1, descending=True, stable=True).argsort(dim=1, stable=True)
    negative = rank < (NEGATIVE_RATIO * positives).clamp(max=labels.shape[1] - 1)
    total = positives.sum().clamp(min=1).float()
    confidence = torch.where(positive | negative, ce, 0.0).sum() / total
    box_loss = F.smooth_l1_loss(offsets, targets, reduction="none").sum(-1)
    box = torch.where(positive, box_loss, 0.0).sum() / total
    return confidence, box


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, best first. A box is dropped
    when its IoU with a kept better one exceeds `threshold`; equal scores keep input order."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    over = (box_iou(boxes[order], boxes[order]) > threshold).cpu().numpy()
    keep = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1 :] &= ~over[i, i + 1 :]
    return order[torch.from_numpy(keep).to(order.device)]


def detect(
    logits: torch.Tensor, offsets: torch.Tensor, priors: torch.Tensor, threshold: float
) -> list[npt.NDArray[np.float32]]:
    """Each image's detections (k, 6): class id, score, xmin, ymin, xmax, ymax (normalised,
    clipped to the image), best first. Per class NMS at `threshold`; at most 400 candidates
    scoring above 0.01 per image and 100 detections."""
    probabilities = torch.softmax(logits.float(), -1)[..., 1:]
    boxes = decode(offsets.float(), priors).clamp(0, 1)
    found = []
    classes = probabilities.shape[-1]
    for p, b in zip(probabilities, boxes, strict=True):
        flat = p.flatten()
        chosen = torch.nonzero(flat > SCORE_FLOOR).squeeze(1)
        if chosen.numel() > CANDIDATES:
            top = flat[chosen].topk(CANDIDATES).indices
            chosen = chosen[top.sort().values]
        prior, cls = chosen // classes, chosen % classes
        scores = flat[chosen]
        candidates = b[prior]
        shifted = candidates + cls[:, None].float() * 2.0  # classes never suppress each other
        keep = nms(shifted, scores, threshold)[:KEEP]
        rows = torch.cat([cls[keep, None].float(), scores[keep, None], candidates[keep]], 1)
        found.append(np.asarray(rows.cpu().numpy(), dtype=np.float32))
    return found
