"""Semantic Segmentation built-in benchmark: our training loop against the same network trained
by a plain torch loop (the floor: no augmentation, no schedule, no per-epoch validation), on
generated scenes with known masks.

Run from the repository root:

    .venv/bin/python benchmarks/bench_semantic_segmentation.py [--runs N] [--images N]
        [--size PX] [--epochs N] [--width W] [--algorithm fcn|psp|deeplab] [--batch N]
        [--device cpu|cuda] [--write]

Data (generated once, the same for both): `--images` (128) training and 64 held-out scenes of
`--size` (64) pixels square, 3 classes (background, circles, squares; `synthetic.scenes`).
Both train a `--algorithm` (FCN) head on a ResNet-50 `--width` (16) channels wide in its first
stage (width_multiplier 1/4), Adam at 0.003, mini-batches of `--batch` (16), `--epochs` (10)
epochs, float32, from the same initial weights:

1. opensage: `Trainer.epoch` (random scale base_size x U(0.5, 2), crops of the image size,
   flips, done per image on the device; poly learning rate), base_size = the image size.
2. floor: the whole training set as one tensor on the device, shuffled batches, the same
   network, loss and optimizer, constant learning rate; nothing else.

Figures: training images per second (images x epochs / seconds of the training epochs, median
of `--runs`, the contenders' runs interleaved); the held-out mIOU and pixel accuracy after the
last epoch, both predicted the same way (whole images, argmax). `--write` replaces the
`## Semantic segmentation (benchmarks/bench_semantic_segmentation.py)` section of RESULTS.md.
On a shared CPU, `OMP_NUM_THREADS=1` keeps busy cores from stalling torch's threads.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from opensage.algorithms.ntm.model import configure_threads
from opensage.algorithms.semantic_segmentation.data import Scenes
from opensage.algorithms.semantic_segmentation.metrics import Confusion
from opensage.algorithms.semantic_segmentation.model import (
    Architecture,
    SegmentationNet,
    Segmenter,
    normalize,
)
from opensage.algorithms.semantic_segmentation.synthetic import scenes
from opensage.algorithms.semantic_segmentation.train import Config, Trainer, work
from results import replace_section

TITLE = "## Semantic segmentation (benchmarks/bench_semantic_segmentation.py)"
CLASSES = 3
HELD_OUT = 64
LEARNING_RATE = 0.003
IGNORE = 255

Outcome = tuple[float, float, float]
"""Median training images/s, held-out mIOU, held-out pixel accuracy."""


def quality(net: SegmentationNet, held: Scenes, where: torch.device, batch: int) -> Confusion:
    segmenter = Segmenter(net, where)
    confusion = Confusion(CLASSES)
    images = np.stack(held.images)
    for start in range(0, len(held), batch):
        predicted = segmenter.batch_probabilities(images[start : start + batch]).argmax(dim=1)
        for mask, guess in zip(
            held.masks[start : start + batch], predicted.cpu().numpy(), strict=True
        ):
            confusion.add(mask, guess)
    return confusion


def sync(where: torch.device) -> None:
    if where.type == "cuda":
        torch.cuda.synchronize()


def ours(
    arch: Architecture, config: Config, train: Scenes, held: Scenes, where: torch.device
) -> Outcome:
    trainer = Trainer(arch, config, where, info=lambda _: None)
    torch.manual_seed(3)
    seconds = 0.0
    for epoch in range(config.epochs):
        sync(where)
        started = time.perf_counter()
        trainer.epoch(train, epoch)
        sync(where)
        seconds += time.perf_counter() - started
    confusion = quality(trainer.net, held, where, config.batch_size)
    return len(train) * config.epochs / seconds, confusion.miou, confusion.pixel_accuracy


def floor(
    arch: Architecture, config: Config, train: Scenes, held: Scenes, where: torch.device
) -> Outcome:
    torch.manual_seed(0)
    net = SegmentationNet(arch).to(where)
    torch.manual_seed(3)
    optimizer = torch.optim.Adam(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    x = torch.from_numpy(np.stack(train.images)).to(where).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack(train.masks)).to(where).long()
    order = torch.Generator().manual_seed(1)
    seconds = 0.0
    for _ in range(config.epochs):
        net.train()
        sync(where)
        started = time.perf_counter()
        for index in torch.randperm(len(train), generator=order).split(config.batch_size):
            if len(index) < 2:
                continue
            logits = net(normalize(x[index.to(where)]))
            loss = F.cross_entropy(logits, y[index.to(where)], ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()
        sync(where)
        seconds += time.perf_counter() - started
    confusion = quality(net, held, where, config.batch_size)
    return len(train) * config.epochs / seconds, confusion.miou, confusion.pixel_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--algorithm", default="fcn", choices=("fcn", "psp", "deeplab"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    where = torch.device(args.device)
    images, masks = scenes(args.images, args.size, CLASSES, seed=1)
    train = Scenes(list(images), list(masks), [""] * args.images)
    images, masks = scenes(HELD_OUT, args.size, CLASSES, seed=2)
    held = Scenes(list(images), list(masks), [""] * HELD_OUT)
    arch = Architecture("resnet-50", args.algorithm, CLASSES, args.width, base_size=args.size)
    config = Config(epochs=args.epochs, batch_size=args.batch, base_size=args.size,
                    crop_size=args.size, optimizer="adam", learning_rate=LEARNING_RATE)  # fmt: skip
    configure_threads(work(arch, config))
    contenders = {"opensage": ours, "plain torch loop (floor)": floor}
    runs: dict[str, list[Outcome]] = {name: [] for name in contenders}
    for _ in range(args.runs):  # interleaved, so a busy spell on a shared machine hits both
        for name, contender in contenders.items():
            runs[name].append(contender(arch, config, train, held, where))
    results: dict[str, Outcome] = {}
    for name, done in runs.items():
        speed = statistics.median(run[0] for run in done)
        results[name] = (speed, done[-1][1], done[-1][2])
        _, miou, accuracy = results[name]
        print(f"{name}: {speed:.1f} images/s, mIOU {miou:.3f}, pixel accuracy {accuracy:.3f}")
    table, verdict = render(results)
    print(table)
    print(verdict)
    if args.write:
        write_results(table, verdict, args)


def render(results: dict[str, Outcome]) -> tuple[str, str]:
    lines = [
        "| contender | images/s | held-out mIOU | pixel accuracy | speed vs floor |",
        "|---|---:|---:|---:|---:|",
    ]
    base = results["plain torch loop (floor)"][0]
    for name, (speed, miou, accuracy) in results.items():
        lines.append(f"| {name} | {speed:.1f} | {miou:.3f} | {accuracy:.3f} | {speed / base:.2f} |")
    ours_, floor_ = results["opensage"], results["plain torch loop (floor)"]
    verdict = (
        f"- Semantic segmentation: {ours_[0] / floor_[0]:.2f}x the plain loop's training "
        f"throughput ({ours_[0]:.1f} vs {floor_[0]:.1f} images/s); held-out mIOU "
        f"{ours_[1]:.3f} vs {floor_[1]:.3f} (target >= 0.8), pixel accuracy {ours_[2]:.3f} vs "
        f"{floor_[2]:.3f}."
    )
    return "\n".join(lines), verdict


def write_results(table: str, verdict: str, args: argparse.Namespace) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    threads = os.environ.get("OMP_NUM_THREADS")
    command = ("" if threads is None else f"OMP_NUM_THREADS={threads} ") + (
        ".venv/bin/python benchmarks/bench_semantic_segmentation.py "
        f"--runs {args.runs} --images {args.images} --size {args.size} --epochs {args.epochs} "
        f"--width {args.width} --algorithm {args.algorithm} --batch {args.batch} "
        f"--device {args.device} --write"
    )
    device: Any = args.device
    if args.device == "cuda":
        device = torch.cuda.get_device_name()
    section = f"""{TITLE}

```
cd /work/main && {command}
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  torch {torch.__version__} on {device} (torch threads {torch.get_num_threads()}). Load
  average at the end: {load} (shared machine: figures swing between runs).
- Data: {args.images} training and {HELD_OUT} held-out generated scenes of {args.size} x
  {args.size} pixels, 3 classes (background, circles, squares), masks known.
- Both: {args.algorithm.upper()} on a dilated ResNet-50 (output stride 8) of width {args.width}
  (width_multiplier {args.width / 64:g}), Adam at {LEARNING_RATE}, batches of {args.batch},
  {args.epochs} epochs, float32, the same initial weights. opensage: `Trainer.epoch` (random
  scale, crops, flips per image on the device; poly schedule). Floor: the training set as one
  tensor on the device, shuffled batches, constant rate, no augmentation. Images/s: median of
  {args.runs} runs (interleaved), training epochs only; quality: the last run, whole held-out
  images.

{table}

{verdict}
"""
    replace_section(TITLE, section)


if __name__ == "__main__":
    main()
