"""Vision built-ins on a GPU against plain torchvision training (issue 11's H200 target): training
images per second of our Image Classification, Semantic Segmentation and Object Detection
trainers, each as a ratio of the same-sized torchvision network trained in a bare loop.

Run from the repository root (torchvision is not an opensage dependency; any environment with
torch, torchvision, numpy and pillow will do - nothing else is imported):

    PYTHONPATH=src:benchmarks python benchmarks/bench_vision_gpu.py [--only resnet|deeplab|ssd]
        [--precision bf16|fp16|fp32] [--no-channels-last] [--warmup N] [--steps N]
        [--repeats N] [--device cuda|cpu] [--smoke] [--write]

`--smoke` shrinks everything (tiny images, batch 2, one step) to check the script on a CPU in a
couple of minutes; its figures mean nothing and `--write` refuses them.

Configurations (the reference figures on an H200, bf16, channels-last, synthetic data):

- resnet: `image_classification` ResNet-50 (1,000 classes, 224²) against `resnet50`, batch
  256; reference ≈ 4,700 img/s.
- deeplab: `semantic_segmentation` DeepLab v3 on ResNet-50 (21 classes, crops of 512² from 520²
  images) against `deeplabv3_resnet50` without the auxiliary head at 512², batch 32; ≈ 220 img/s.
- ssd: `object_detection` SSD on VGG-16 (90 classes, 300²) against `ssd300_vgg16`, batch 64;
  ≈ 430 img/s.

Contenders, interleaved repeat by repeat (same process, same cuDNN settings: autotuning on, as
`opensage.algorithms.gpu.configure` sets for a training job; deterministic algorithms off, as a
training job leaves them on a GPU):

1. ours: the real `Trainer` of each algorithm with our network, its data path and loop:
   `Trainer.epoch` over decoded uint8 images held in memory as the job holds them (staged on the
   device by the trainer), with the job's augmentation (classification `crop`; segmentation's
   random scale/flip/crop from 520² images; detection's flip/crop/zoom-out/colour with the boxes
   moved alike, default boxes matched per batch), its loss and optimizer (SGD, momentum 0.9, fused
   on a GPU), `Config.precision` set to the chosen precision. One epoch is exactly `--steps`
   batches; the time includes the epoch's single read of its losses.
2. torchvision: the torchvision network (weights=None, nothing downloaded) on one synthetic batch
   already on the device (channels-last with `--channels-last`), `torch.optim.SGD` (momentum 0.9,
   default kernels), autocast at the same precision (a GradScaler for fp16), the usual loss:
   cross entropy; for DeepLab on `out` with ignore index 255; for SSD the model's own loss dict on
   synthetic boxes (1-5 per image), its transform and matching included, as it always is.

Both: `--warmup` untimed steps, then `--repeats` timed runs of `--steps` steps between
`torch.cuda.synchronize()` calls; the figure is the median run's images per second. The table
shows both, the ratio ours / torchvision (target ≥ 0.90) and each network's parameter count, so a
difference in size shows (our SSD adds batch norm after every convolution - it trains from
scratch - and a seventh 2x2 feature map; torchvision's has an L2-normalised conv4_3 instead).
`--write` replaces the `## Vision built-ins on a GPU vs torchvision
(benchmarks/bench_vision_gpu.py)` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from opensage.algorithms import gpu

TITLE = "## Vision built-ins on a GPU vs torchvision (benchmarks/bench_vision_gpu.py)"
TARGET = 0.90
PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
CONFIGS = ("resnet", "deeplab", "ssd")
SSD_NOTE = (
    "ResNet-50 and DeepLab v3 are the same networks on both sides; our SSD is not torchvision's: "
    "batch norm after every convolution (it trains from scratch), a seventh 2x2 feature map "
    "(8,766 default boxes, not 8,732) and no L2-normalised conv4_3."
)


@dataclass(frozen=True)
class Sizes:
    """The shapes of one run: the real ones or `--smoke`'s."""

    batch: dict[str, int]
    classify_side: int
    segment_crop: int
    segment_base: int
    detect_side: int


FULL = Sizes({"resnet": 256, "deeplab": 32, "ssd": 64}, 224, 512, 520, 300)
SMOKE = Sizes({"resnet": 2, "deeplab": 2, "ssd": 2}, 64, 64, 72, 300)


@dataclass
class Contender:
    """One side of a config: `run(steps)` trains that many steps (a host sync at most at the
    end; ours: one epoch over a data set of exactly that many batches, built beforehand for
    the warm-up's 1 and the timed `--steps`), `images` per step, and its network's parameter
    count."""

    run: Callable[[int], None]
    images: int
    params: int


@dataclass
class Outcome:
    config: str
    ours: float  # images/s
    theirs: float
    ours_params: int
    theirs_params: int

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs


def say(message: str) -> None:
    print(message, flush=True)


def sync(where: torch.device) -> None:
    if where.type == "cuda":
        torch.cuda.synchronize(where)


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def pool(rng: np.random.Generator, shape: tuple[int, ...], total: int) -> np.ndarray:
    """`total` uint8 images of `shape`: a few random ones tiled (the contents do not matter to
    the speed, generating gigabytes of noise would)."""
    distinct = rng.integers(0, 256, (min(total, 64), *shape), dtype=np.uint8)
    return np.ascontiguousarray(np.resize(distinct, (total, *shape)))


# --- ours ---------------------------------------------------------------------------------------


def ours_resnet(sizes: Sizes, precision: str, where: torch.device, steps: int) -> Contender:
    from opensage.algorithms.image_classification.data import Images
    from opensage.algorithms.image_classification.model import Architecture
    from opensage.algorithms.image_classification.train import Config, Trainer

    batch, side = sizes.batch["resnet"], sizes.classify_side
    arch = Architecture(50, (3, side, side), 1000)
    config = Config(batch_size=batch, learning_rate=0.1, augmentation="crop", precision=precision)
    trainer = Trainer(arch, config, where, info=lambda _: None)
    rng = np.random.default_rng(0)

    def staged(n: int) -> Any:
        labels = rng.integers(0, 1000, n).astype(np.int64)
        return trainer.stage(Images(pool(rng, (3, side, side), n), labels))

    data = {n: staged(n * batch) for n in {1, steps}}
    return Contender(lambda n: trainer.epoch(data[n]), batch, count(trainer.net))


def ours_deeplab(sizes: Sizes, precision: str, where: torch.device, steps: int) -> Contender:
    from opensage.algorithms.semantic_segmentation.data import Scenes
    from opensage.algorithms.semantic_segmentation.model import Architecture
    from opensage.algorithms.semantic_segmentation.train import Config, Trainer

    batch, base = sizes.batch["deeplab"], sizes.segment_base
    arch = Architecture("resnet-50", "deeplab", 21, base_size=base)
    config = Config(batch_size=batch, base_size=base, crop_size=sizes.segment_crop,
                    learning_rate=0.01, precision=precision)  # fmt: skip
    trainer = Trainer(arch, config, where, info=lambda _: None)
    rng = np.random.default_rng(1)

    def staged(n: int) -> Any:
        images = pool(rng, (base, base, 3), n)
        masks = rng.integers(0, 21, (min(n, 64), base, base), dtype=np.uint8)
        scenes = Scenes(list(images), [masks[i % len(masks)] for i in range(n)], [""] * n)
        return trainer.stage(scenes)

    data = {n: staged(n * batch) for n in {1, steps}}
    return Contender(lambda n: trainer.epoch(data[n], 0), batch, count(trainer.net))


def ours_ssd(sizes: Sizes, precision: str, where: torch.device, steps: int) -> Contender:
    from opensage.algorithms.object_detection.model import Architecture
    from opensage.algorithms.object_detection.train import Config, Trainer

    batch, side = sizes.batch["ssd"], sizes.detect_side
    config = Config(batch_size=batch, optimizer="sgd", precision=precision)
    trainer = Trainer(Architecture("vgg-16", 90, side), config, where, info=lambda _: None)
    rng = np.random.default_rng(2)

    def staged(n: int) -> Any:
        boxes = [synthetic_boxes(rng, 90) for _ in range(n)]
        return gpu.Staged(pool(rng, (3, side, side), n), where), boxes

    data = {n: staged(n * batch) for n in {1, steps}}
    return Contender(lambda n: trainer.epoch(*data[n]), batch, count(trainer.net))


def synthetic_boxes(rng: np.random.Generator, classes: int) -> np.ndarray:
    """1-5 objects (class, xmin, ymin, xmax, ymax normalised), each at least a tenth wide."""
    k = int(rng.integers(1, 6))
    low = rng.uniform(0.0, 0.7, (k, 2))
    high = np.minimum(low + rng.uniform(0.1, 0.5, (k, 2)), 1.0)
    labels = rng.integers(0, classes, (k, 1))
    return np.concatenate([labels, low, high], 1).astype(np.float32)


# --- torchvision --------------------------------------------------------------------------------


class Plain:
    """A bare torchvision training loop: one synthetic batch on the device, SGD, autocast."""

    def __init__(
        self, net: torch.nn.Module, loss: Callable[[], torch.Tensor], precision: str, lr: float
    ) -> None:
        self.net = net.train()
        self.loss = loss
        self.dtype = gpu.autocast_dtype(precision, next(net.parameters()).device)
        self.optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            with gpu.autocast(self.dtype):
                loss = self.loss()
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()


def layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def place(net: torch.nn.Module, where: torch.device, channels_last: bool) -> torch.nn.Module:
    net = net.to(where)
    return net.to(memory_format=torch.channels_last) if channels_last else net  # type: ignore[call-overload]


def theirs_resnet(sizes: Sizes, precision: str, where: torch.device, cl: bool) -> Contender:
    import torchvision

    batch, side = sizes.batch["resnet"], sizes.classify_side
    net = place(torchvision.models.resnet50(weights=None), where, cl)
    x = layout(torch.randn(batch, 3, side, side, device=where), cl)
    y = torch.randint(0, 1000, (batch,), device=where)
    plain = Plain(net, lambda: F.cross_entropy(net(x), y), precision, 0.1)
    return Contender(plain.run, batch, count(net))


def theirs_deeplab(sizes: Sizes, precision: str, where: torch.device, cl: bool) -> Contender:
    from torchvision.models.segmentation import deeplabv3_resnet50

    batch, side = sizes.batch["deeplab"], sizes.segment_crop
    model = deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=False)
    net = place(model, where, cl)
    x = layout(torch.randn(batch, 3, side, side, device=where), cl)
    y = torch.randint(0, 21, (batch, side, side), device=where)
    plain = Plain(net, lambda: F.cross_entropy(net(x)["out"], y, ignore_index=255), precision, 0.01)
    return Contender(plain.run, batch, count(net))


def theirs_ssd(sizes: Sizes, precision: str, where: torch.device, cl: bool) -> Contender:
    from torchvision.models.detection import ssd300_vgg16

    batch, side = sizes.batch["ssd"], sizes.detect_side
    net = place(ssd300_vgg16(weights=None, weights_backbone=None), where, cl)
    rng = np.random.default_rng(3)
    images = [torch.rand(3, side, side, device=where) for _ in range(batch)]
    targets = []
    for _ in range(batch):
        rows = torch.from_numpy(synthetic_boxes(rng, 90)).to(where)
        targets.append({"boxes": rows[:, 1:] * side, "labels": rows[:, 0].long() + 1})

    def loss() -> torch.Tensor:
        losses = net(images, targets)
        return torch.stack(list(losses.values())).sum()

    plain = Plain(net, loss, precision, 0.001)
    return Contender(plain.run, batch, count(net))


OURS = {"resnet": ours_resnet, "deeplab": ours_deeplab, "ssd": ours_ssd}
THEIRS = {"resnet": theirs_resnet, "deeplab": theirs_deeplab, "ssd": theirs_ssd}


# --- timing -------------------------------------------------------------------------------------


def timed(contender: Contender, steps: int, where: torch.device) -> float:
    """Images per second of `steps` steps, between device syncs."""
    sync(where)
    started = time.perf_counter()
    contender.run(steps)
    sync(where)
    return contender.images * steps / (time.perf_counter() - started)


def measure(name: str, args: argparse.Namespace, sizes: Sizes, where: torch.device) -> Outcome:
    precision = PRECISIONS[args.precision]
    say(f"[{name}] building ours and torchvision's (batch {sizes.batch[name]}, {args.precision})")
    ours = OURS[name](sizes, precision, where, args.steps)
    theirs = THEIRS[name](sizes, precision, where, args.channels_last)
    for label, contender in (("ours", ours), ("torchvision", theirs)):
        started = time.perf_counter()
        for _ in range(args.warmup):
            contender.run(1)
        sync(where)
        seconds = time.perf_counter() - started
        say(f"[{name}] {label}: {args.warmup} warm-up steps in {seconds:.1f} s")
    runs: dict[str, list[float]] = {"ours": [], "torchvision": []}
    for repeat in range(args.repeats):  # interleaved, so a change of clocks or load hits both
        runs["ours"].append(timed(ours, args.steps, where))
        runs["torchvision"].append(timed(theirs, args.steps, where))
        say(f"[{name}] repeat {repeat + 1}/{args.repeats}: ours {runs['ours'][-1]:,.1f} img/s, "
            f"torchvision {runs['torchvision'][-1]:,.1f} img/s")  # fmt: skip
    return Outcome(name, statistics.median(runs["ours"]), statistics.median(runs["torchvision"]),
                   ours.params, theirs.params)  # fmt: skip


def render(outcomes: list[Outcome], failures: dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        "| config | batch | ours img/s | torchvision img/s | ours / torchvision | ours params "
        "| torchvision params |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    sizes = SMOKE if args.smoke else FULL
    for o in outcomes:
        mark = "" if o.ratio >= TARGET else " (below 0.90)"
        size = f"{o.ours_params:,}" + (
            "" if o.ours_params == o.theirs_params
            else f" ({(o.ours_params / o.theirs_params - 1) * 100:+.1f} %)"
        )  # fmt: skip
        lines.append(
            f"| {o.config} | {sizes.batch[o.config]} | {o.ours:,.1f} | {o.theirs:,.1f} "
            f"| {o.ratio:.2f}{mark} | {size} | {o.theirs_params:,} |"
        )
    for name, reason in failures.items():
        lines.append(f"| {name} | {sizes.batch[name]} | failed: {reason} | | | | |")
    return "\n".join(lines)


def machine(where: torch.device) -> str:
    import torchvision

    device = torch.cuda.get_device_name(where) if where.type == "cuda" else "CPU"
    return (
        f"{device}; {os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}, torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}"
    )


def write_results(table: str, args: argparse.Namespace, where: torch.device) -> None:
    from results import replace_section

    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    command = (
        f"PYTHONPATH=src:benchmarks python benchmarks/bench_vision_gpu.py --precision "
        f"{args.precision}{'' if args.channels_last else ' --no-channels-last'} --warmup "
        f"{args.warmup} --steps {args.steps} --repeats {args.repeats} --write"
    )
    section = f"""{TITLE}

```
{command}
```

- Date: {now}
- Machine: {machine(where)}.
- Precision {args.precision}, torchvision channels-last {args.channels_last} (ours always is on a
  GPU), {args.warmup} warm-up steps, median of {args.repeats} interleaved runs of {args.steps}
  steps. Ours: the algorithm's `Trainer.epoch` on decoded uint8 images in memory with the job's
  augmentation, loss and (fused) SGD; torchvision: its network on one synthetic batch on the
  device, default SGD. Target: ours at least {TARGET:.0%} of torchvision's images/s.
- {SSD_NOTE}

{table}
"""
    replace_section(TITLE, section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=CONFIGS)
    parser.add_argument("--precision", default="bf16", choices=tuple(PRECISIONS))
    parser.add_argument("--channels-last", default=True, action=argparse.BooleanOptionalAction)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the script only")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.smoke:
        args.warmup, args.steps, args.repeats = 1, 1, 1
        if args.write:
            parser.error("--smoke figures are not results: drop --write")
        # tiny steps run fastest on one thread (on a small shared CPU, many times faster);
        # the environment variable keeps our trainers' own thread sizing from raising it
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    where = torch.device(args.device)
    sizes = SMOKE if args.smoke else FULL
    gpu.configure(where)
    say(f"{machine(where)}; precision {args.precision}")
    outcomes: list[Outcome] = []
    failures: dict[str, str] = {}
    for name in args.only or CONFIGS:
        try:
            outcomes.append(measure(name, args, sizes, where))
        except Exception as exc:  # one config's failure (out of memory, say) spares the others
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        gc.collect()  # the config's networks and staged data, before the next one's
        if where.type == "cuda":
            torch.cuda.empty_cache()
    table = render(outcomes, failures, args)
    say(table)
    say(SSD_NOTE)
    if args.write:
        write_results(table, args, where)


if __name__ == "__main__":
    main()
