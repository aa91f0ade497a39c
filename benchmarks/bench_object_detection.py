"""Object Detection built-in benchmark: our SSD training loop against the same SSD trained by a
plain torch loop (the floor: no augmentation, nothing but forward, MultiBox loss and step), on
generated scenes with known boxes.

Run from the repository root:

    .venv/bin/python benchmarks/bench_object_detection.py [--scenes N] [--epochs N]
        [--size S] [--width W] [--base vgg-16|resnet-50] [--device cpu|cuda] [--write]

Data (generated once, the same for both): `--scenes` training and 400 validation scenes of
`--size` pixels, coloured rectangles (class 0) and ellipses (class 1), one or two per scene,
on blotchy noise (`opensage.algorithms.object_detection.synthetic`). The network: SSD on
`--base` with `width_multiplier` `--width`, built at `--size` (the training job's
`image_shape` must be >= 300; on a CPU the loop is run directly at a smaller size, the same
code the job runs). Both train `--epochs` epochs, batches of `--batch`, Adam at 0.003 divided by
10 for the last third of the epochs, seeded.

1. Ours: `Trainer.fit` (flip / rescale / colour-jitter augmentation, per-epoch validation mAP,
   best epoch kept).
2. Floor: a plain loop over the same batches without augmentation, evaluated once at the end.

Figures: training images per second (scenes x epochs / training seconds, evaluation excluded)
and validation mAP (VOC all-point AP at IoU 0.5; ours: the best epoch's, floor: the last),
with the speed ratio ours / floor. The target for the issue is a validation mAP >= 0.8.
`--write` replaces the `## Object detection (benchmarks/bench_object_detection.py)` section
of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from opensage.algorithms.image_classification.model import normalize
from opensage.algorithms.ntm.model import configure_threads
from opensage.algorithms.object_detection.data import Scenes
from opensage.algorithms.object_detection.evaluation import mean_average_precision
from opensage.algorithms.object_detection.model import SSD, Architecture, match, multibox_loss
from opensage.algorithms.object_detection.synthetic import scenes
from opensage.algorithms.object_detection.train import Config, Trainer, predict
from results import replace_section

TITLE = "## Object detection (benchmarks/bench_object_detection.py)"
VALIDATION = 400
LEARNING_RATE = 0.003
TARGET = 0.8


def make_data(count: int, size: int) -> tuple[Scenes, Scenes]:
    images, objects = scenes(count + VALIDATION, size, seed=7)
    pixels = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return Scenes(pixels[:count], objects[:count]), Scenes(pixels[count:], objects[count:])


def config(args: argparse.Namespace) -> Config:
    late = max(1, (2 * args.epochs) // 3)
    return Config(epochs=args.epochs, batch_size=args.batch, optimizer="adam",
                  learning_rate=LEARNING_RATE, weight_decay=0.0, lr_steps=(late,),
                  lr_factor=0.1)  # fmt: skip


def ours(args: argparse.Namespace, train: Scenes, validation: Scenes) -> tuple[float, float]:
    arch = Architecture(args.base, 2, args.size, args.width)
    trainer = Trainer(arch, config(args), torch.device(args.device), info=print)
    trainer.fit(train, validation)
    seconds = sum(result.seconds for result in trainer.history)
    return len(train) * len(trainer.history) / seconds, max(trainer.scores)


def floor(args: argparse.Namespace, train: Scenes, validation: Scenes) -> tuple[float, float]:
    """The same SSD, loss and optimizer in the plainest loop."""
    where = torch.device(args.device)
    torch.manual_seed(0)
    arch = Architecture(args.base, 2, args.size, args.width)
    net = SSD(arch).to(where)
    settings = config(args)
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    pixels = torch.from_numpy(train.pixels).to(where)
    rng = np.random.default_rng(1)
    seconds = 0.0
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:
            passed = sum(1 for step in settings.lr_steps if epoch >= step)
            group["lr"] = LEARNING_RATE * settings.lr_factor**passed
        started = time.perf_counter()
        net.train()
        order = rng.permutation(len(train))
        for start in range(0, len(train), args.batch):
            index = order[start : start + args.batch]
            x = normalize(pixels[torch.from_numpy(index).to(where)])
            targets = [
                match(torch.from_numpy(train.objects[i]).to(where), net.priors, 0.5) for i in index
            ]
            labels = torch.stack([t[0] for t in targets])
            boxes = torch.stack([t[1] for t in targets])
            logits, offsets = net(x)
            confidence, box = multibox_loss(logits, offsets, labels, boxes)
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward([confidence + box])
            optimizer.step()
        if where.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - started
        print(f"floor epoch {epoch}: {time.perf_counter() - started:.1f} s")
    found = predict(net, validation.pixels, where, 0.45)
    score = mean_average_precision(found, validation.objects, 2, 0.5)
    return len(train) * args.epochs / seconds, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=None, help="64 on a CPU, 300 on a GPU")
    parser.add_argument("--width", type=float, default=None, help="1/8 on a CPU, 1 on a GPU")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--base", default="vgg-16", choices=("vgg-16", "resnet-50"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    gpu = args.device == "cuda"
    args.size = args.size or (300 if gpu else 64)
    args.width = args.width or (1.0 if gpu else 0.125)
    if not gpu:
        configure_threads(1 << 40)
    train, validation = make_data(args.scenes, args.size)
    results: dict[str, tuple[float, float]] = {
        "opensage SSD (Trainer.fit)": ours(args, train, validation)
    }
    if not args.skip_floor:
        results["plain torch loop (floor)"] = floor(args, train, validation)
    table, verdict = render(results)
    print(table)
    print(verdict)
    if args.write:
        write_results(table, verdict, args)


def render(results: dict[str, tuple[float, float]]) -> tuple[str, str]:
    lines = ["| contender | images/s | validation mAP | speed vs floor |", "|---|---:|---:|---:|"]
    base = results.get("plain torch loop (floor)")
    for name, (speed, score) in results.items():
        ratio = "" if base is None or name.startswith("plain") else f"{speed / base[0]:.2f}x"
        lines.append(f"| {name} | {speed:,.1f} | {score:.3f} | {ratio} |")
    speed, score = results["opensage SSD (Trainer.fit)"]
    reached = "meets" if score >= TARGET else "does not meet"
    verdict = f"- Ours: validation mAP {score:.3f}, which {reached} the target of {TARGET}"
    if base is not None:
        verdict += (
            f"; {speed / base[0]:.2f}x the floor's training speed (ours augments every batch) "
            f"with mAP {score:.3f} vs the floor's {base[1]:.3f}"
        )
    return "\n".join(lines), verdict + "."


def write_results(table: str, verdict: str, args: argparse.Namespace) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    command = (
        f"benchmarks/bench_object_detection.py --scenes {args.scenes} --epochs {args.epochs} "
        f"--size {args.size} --width {args.width:g} --batch {args.batch} --base {args.base} "
        f"--device {args.device}{' --skip-floor' if args.skip_floor else ''} --write"
    )
    hardware: Any = (
        torch.cuda.get_device_name(0)
        if args.device == "cuda"
        else f"CPU, torch threads {torch.get_num_threads()}"
    )
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    section = f"""{TITLE}

```
cd /work/main && {prefix}.venv/bin/python {command}
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  torch {torch.__version__} ({hardware}). Load average at the end: {load} (shared machine:
  figures swing between runs).
- Data: {args.scenes:,} training and {VALIDATION} validation generated scenes of
  {args.size}x{args.size} (rectangles and ellipses, two classes, one or two per scene).
- Network: SSD on {args.base}, width multiplier {args.width:g}, built at {args.size}x{args.size};
  {args.epochs} epochs, batches of {args.batch}, Adam at {LEARNING_RATE} (x0.1 for the last
  third). Ours: `Trainer.fit` with augmentation, the best epoch's validation mAP. Floor: the
  same network, loss and optimizer in a plain loop without augmentation, the last epoch's mAP.
- One run each (training images/s excludes evaluation).

{table}

{verdict}
"""
    replace_section(TITLE, section)


if __name__ == "__main__":
    main()
