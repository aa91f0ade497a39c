"""Image Classification built-in benchmark: our training (the loop, and the whole training job)
against the same ResNet trained by a plain torch loop, on generated shapes.

Run from the repository root:

    .venv/bin/python benchmarks/bench_image_classification.py [--images N] [--epochs N]
        [--runs N] [--device cpu|cuda] [--write]

Data (generated once, the same for every contender): `--images` (3,000) training and 600
validation 3x32x32 images of circles, squares and triangles (random size, position and colours,
pixel noise; `opensage.algorithms.image_classification.synthetic`). Network: ResNet-20
(CIFAR-style, our definition), SGD with momentum 0.9, weight decay 1e-4, learning rate 0.1 and
x0.1 at the last epoch, mini-batches of 64, no augmentation. Contenders:

1. opensage (loop): `Trainer.fit` over the decoded uint8 images in memory, validation each
   epoch (its accuracy is what the table shows), as the training program runs it.
2. opensage (training job): `python -m opensage.algorithms.image_classification train` on one
   `.rec` file of PNGs plus a validation `.rec`, from process start to exit (imports, decoding,
   epochs, model files); run once.
3. plain torch: the same network, optimizer and batches in a bare loop over pre-normalised float
   tensors (no validation inside the timing) - the floor our data path and loop overhead are
   measured against.

Figures: training images per second (images x epochs / seconds) and validation accuracy;
medians of `--runs` (the loops interleaved run by run). `--device cuda` runs the loops on a GPU
(the job picks the GPU itself).
`--write` replaces the `## Image classification (benchmarks/bench_image_classification.py)`
section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opensage.algorithms.image_classification.data import Images
from opensage.algorithms.image_classification.model import Architecture, ResNet, normalize
from opensage.algorithms.image_classification.synthetic import encode, shapes
from opensage.algorithms.image_classification.train import Config, Trainer, work
from opensage.algorithms.ntm.model import configure_threads
from opensage.contract import MLPaths
from opensage.formats.image_records import ImageRecord, encode_rec
from results import replace_section

TITLE = "## Image classification (benchmarks/bench_image_classification.py)"
SIZE = 32
VALIDATION = 600
BATCH = 64
LEARNING_RATE = 0.1
ARCH = Architecture(20, (3, SIZE, SIZE), 3)
Outcome = tuple[float, float]  # seconds, validation accuracy


def make_data(count: int) -> tuple[Images, Images, Any, Any]:
    images, labels = shapes(count + VALIDATION, SIZE, seed=11)
    pixels = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    train = Images(pixels[:count], labels[:count])
    validation = Images(pixels[count:], labels[count:])
    return train, validation, images, labels


def config(epochs: int) -> Config:
    return Config(epochs=epochs, batch_size=BATCH, learning_rate=LEARNING_RATE,
                  lr_steps=(max(1, epochs - 1),))  # fmt: skip


def ours_loop(train: Images, validation: Images, epochs: int, where: torch.device) -> Outcome:
    trainer = Trainer(ARCH, config(epochs), where, info=lambda _: None)
    started = time.perf_counter()
    trainer.fit(train, validation, None)
    seconds = time.perf_counter() - started
    return seconds, trainer.evaluate(validation)[0]


def plain_torch(train: Images, validation: Images, epochs: int, where: torch.device) -> Outcome:
    torch.manual_seed(0)
    net = ResNet(ARCH).to(where)
    x = normalize(torch.from_numpy(train.pixels)).to(where)
    y = torch.from_numpy(train.labels).to(where)
    optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE, momentum=0.9,
                                weight_decay=1e-4)  # fmt: skip
    generator = torch.Generator().manual_seed(1)
    started = time.perf_counter()
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = LEARNING_RATE * (0.1 if epoch >= max(1, epochs - 1) else 1.0)
        net.train()
        order = torch.randperm(len(y), generator=generator).to(where)
        for start in range(0, len(y), BATCH):
            index = order[start : start + BATCH]
            loss = torch.nn.functional.cross_entropy(net(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if where.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    net.eval()
    with torch.no_grad():
        vx = normalize(torch.from_numpy(validation.pixels)).to(where)
        predicted = torch.cat([net(vx[i : i + 256]).argmax(1) for i in range(0, len(vx), 256)])
    accuracy = float((predicted.cpu() == torch.from_numpy(validation.labels)).float().mean())
    return seconds, accuracy


def ours_job(folder: Path, images: Any, labels: Any, count: int, epochs: int) -> Outcome:
    def rec(rows: range) -> bytes:
        return encode_rec(ImageRecord((float(labels[i]),), encode(images[i]), id=i) for i in rows)

    paths = MLPaths(folder)
    for path in paths.directories():
        path.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", range(count)), ("validation", range(count, len(labels)))):
        paths.channel(name).mkdir(parents=True, exist_ok=True)
        (paths.channel(name) / f"{name}.rec").write_bytes(rec(rows))
    hps = {"num_classes": "3", "num_training_samples": str(count), "num_layers": "20",
           "image_shape": f"3,{SIZE},{SIZE}", "epochs": str(epochs),
           "mini_batch_size": str(BATCH), "learning_rate": str(LEARNING_RATE),
           "lr_scheduler_step": str(max(1, epochs - 1))}  # fmt: skip
    import json

    paths.hyperparameters_file.write_text(json.dumps(hps))
    paths.resource_config_file.write_text('{"current_host": "algo-1", "hosts": ["algo-1"]}')
    channel = {"ContentType": "application/x-recordio", "TrainingInputMode": "File"}
    paths.input_data_config_file.write_text(json.dumps({"train": channel, "validation": channel}))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(folder)}
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "opensage.algorithms.image_classification", "train"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"the training job failed:\n{proc.stderr[-3000:]}")
    found = re.findall(r"Validation-accuracy=([0-9.]+)", proc.stdout)
    return seconds, max(float(v) for v in found)  # the model is the best epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    where = torch.device(args.device)
    configure_threads(work(ARCH, BATCH))
    train, validation, images, labels = make_data(args.images)
    results: dict[str, Outcome] = {}

    def record(name: str, runs: list[Outcome]) -> None:
        results[name] = (statistics.median(r[0] for r in runs), runs[-1][1])
        seconds, accuracy = results[name]
        print(f"{name}: {seconds:.2f} s, {args.images * args.epochs / seconds:,.0f} images/s, "
              f"validation accuracy {accuracy:.4f}")  # fmt: skip

    for _ in range(1):  # warm up the kernels once (not timed)
        plain_torch(Images(train.pixels[:BATCH], train.labels[:BATCH]), validation, 1, where)
    plain: list[Outcome] = []
    ours: list[Outcome] = []
    for _ in range(args.runs):  # interleaved, so a change of load hits both alike
        plain.append(plain_torch(train, validation, args.epochs, where))
        ours.append(ours_loop(train, validation, args.epochs, where))
    record("plain torch loop", plain)
    record("opensage (loop)", ours)
    with tempfile.TemporaryDirectory() as tmp:
        results["opensage (training job, .rec)"] = ours_job(
            Path(tmp), images, labels, args.images, args.epochs
        )
        seconds, accuracy = results["opensage (training job, .rec)"]
        print(f"training job: {seconds:.2f} s, validation accuracy {accuracy:.4f}")
    table, verdict = render(results, args)
    print(table)
    print(verdict)
    if args.write:
        write_results(table, verdict, args)


def render(results: dict[str, Outcome], args: argparse.Namespace) -> tuple[str, str]:
    anchor = "plain torch loop"
    work_done = args.images * args.epochs
    lines = [
        "| contender | median s | training images/s | validation accuracy | speed vs plain torch |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (seconds, accuracy) in results.items():
        ratio = "" if name == anchor else f"{results[anchor][0] / seconds:.2f}x"
        lines.append(
            f"| {name} | {seconds:.2f} | {work_done / seconds:,.0f} | {accuracy:.4f} | {ratio} |"
        )
    ours, theirs = results["opensage (loop)"], results[anchor]
    verdict = (
        f"- Image classification loop: {theirs[0] / ours[0]:.2f}x the plain torch loop's speed "
        f"({work_done / ours[0]:,.0f} vs {work_done / theirs[0]:,.0f} training images/s on "
        f"{args.device}); validation accuracy {ours[1]:.4f} vs {theirs[1]:.4f}. "
        + ("No GPU on this machine: the `--device cuda` figures (issue 11's H200 target) are "
           "not measured here." if not torch.cuda.is_available() else "")
    )  # fmt: skip
    return "\n".join(lines), verdict


def write_results(table: str, verdict: str, args: argparse.Namespace) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    command = (
        f"benchmarks/bench_image_classification.py --images {args.images} --epochs "
        f"{args.epochs} --runs {args.runs} --device {args.device} --write"
    )
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    section = f"""{TITLE}

```
cd /work/main && {prefix}.venv/bin/python {command}
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  torch {torch.__version__} (torch threads {torch.get_num_threads()}), device {args.device}.
  Load average at the end: {load} (shared machine: figures swing between runs).
- Data: {args.images:,} training and {VALIDATION} validation generated 3x{SIZE}x{SIZE} shape
  images (circle, square, triangle). ResNet-20 (CIFAR-style), SGD momentum 0.9, weight decay
  1e-4, learning rate {LEARNING_RATE} (x0.1 for the last epoch), batches of {BATCH}, no
  augmentation, {args.epochs} epochs. Median of {args.runs} run(s), the two loops
  interleaved (the job: one run).
- opensage (loop): `Trainer.fit` on decoded uint8 images (per-batch normalisation, validation
  each epoch included in the time). Training job: the whole program from process start
  (imports, PNG decoding from `.rec`, epochs, model files). Plain torch: the same network in a
  bare loop over pre-normalised tensors, no validation inside the timing.

{table}

{verdict}
"""
    replace_section(TITLE, section)


if __name__ == "__main__":
    main()
