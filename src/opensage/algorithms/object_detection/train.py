"""Object Detection training: an SSD over the decoded `train` scenes for up to `epochs` epochs,
`validation:mAP` per epoch, optional early stopping on it, and the model files.

Per epoch the scenes are shuffled and cut into `mini_batch_size` batches; each image is
flipped, rescaled (a random crop of 50-100 % of the side, or a zoom-out onto a canvas up to
twice the side filled with the mean colour) and colour-jittered, all in one `grid_sample` on
the device with the boxes moved alike (a box whose centre leaves the crop is dropped); then
the MultiBox loss (softmax confidence with 3:1 hard negative mining plus smooth-L1 boxes,
default boxes matched at `overlap_threshold`) is stepped with the chosen optimizer. The rate
is multiplied by `lr_scheduler_factor` at each epoch of `lr_scheduler_step`. Parameters whose
names match `freeze_layer_pattern` (e.g. `^base\\.conv4\\.0`) are not trained.

The log has SageMaker's lines `#quality_metric: host=algo-1, epoch=N, validation mAP
<score>=(x)` and the epoch's mean `train cross_entropy` and `train smooth_l1`. The model is the
epoch with the best validation mAP. A `model` channel holding a previous job's model continues
from its weights (incremental training; base_network, num_classes, image_shape and
width_multiplier must match). Everything random is seeded, so a CPU run is reproducible.

On a GPU (see `opensage.algorithms.gpu`) the images are staged on the device, the network runs
channels-last with fused optimizer steps, default boxes are matched for the whole batch at once
(`match_batch`), and the losses are summed on the device and read once per epoch, so the steps
never wait for the host. SageMaker has no precision hyperparameter for this algorithm, so jobs
train in float32; `Config.precision` (float16 or bfloat16 autocast) is for callers such as the
GPU benchmark.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from opensage.algorithms import gpu
from opensage.algorithms.base import UserError
from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.image_classification.model import normalize
from opensage.algorithms.image_classification.train import EarlyStopping
from opensage.algorithms.ntm.model import configure_threads, device
from opensage.algorithms.object_detection.data import Scenes, load_channel
from opensage.algorithms.object_detection.evaluation import mean_average_precision
from opensage.algorithms.object_detection.files import model_folder, read_model, save
from opensage.algorithms.object_detection.model import (
    SSD,
    Architecture,
    detect,
    match_batch,
    multibox_loss,
)
from opensage.algorithms.object_detection.spec import scheduler_steps

SEED: Final = 0


@dataclass(frozen=True)
class Config:
    """The training hyperparameters the loop uses."""

    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "sgd"
    learning_rate: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0005
    lr_steps: tuple[int, ...] = ()
    lr_factor: float = 0.1
    nms_threshold: float = 0.45
    overlap_threshold: float = 0.5
    freeze: str | None = None
    early_stopping: bool = False
    min_epochs: int = 10
    patience: int = 5
    tolerance: float = 0.0
    augment: bool = True
    precision: str = "float32"
    """Not a hyperparameter: float16 or bfloat16 autocast on a GPU for callers that ask."""

    @classmethod
    def from_env(cls, env: TrainingEnv) -> Config:
        return cls(
            epochs=env["epochs"],
            batch_size=env["mini_batch_size"],
            optimizer=env["optimizer"],
            learning_rate=env["learning_rate"],
            momentum=env["momentum"],
            weight_decay=env["weight_decay"],
            lr_steps=tuple(scheduler_steps(env.get("lr_scheduler_step"))),
            lr_factor=env["lr_scheduler_factor"],
            nms_threshold=env["nms_threshold"],
            overlap_threshold=env["overlap_threshold"],
            freeze=env.get("freeze_layer_pattern"),
            early_stopping=env["early_stopping"],
            min_epochs=env["early_stopping_min_epochs"],
            patience=env["early_stopping_patience"],
            tolerance=env["early_stopping_tolerance"],
        )


def architecture(env: TrainingEnv) -> Architecture:
    return Architecture(
        env["base_network"], env["num_classes"], env["image_shape"], env["width_multiplier"]
    )


def train(env: TrainingEnv) -> None:
    arch = architecture(env)
    config = Config.from_env(env)
    log = env.log.info
    if env.get("kv_store") is not None:
        log(f"kv_store={env['kv_store']}: single-instance training, nothing to synchronise")
    weights = initial_weights(env, arch)
    size, width = arch.image_shape, env["label_width"]
    train_scenes = load_channel(env, "train", "train_annotation", size, width)
    validation = load_channel(env, "validation", "validation_annotation", size, width)
    assert train_scenes is not None
    assert validation is not None
    trainer = Trainer(arch, config, device(), weights, log)
    log(
        f"SSD ({arch.base_network}, width x{arch.width:g}) on {len(train_scenes)} training "
        f"and {len(validation)} validation images of {size}x{size}, {arch.num_classes} "
        f"classes, {trainer.priors.shape[0]} default boxes on maps "
        f"{', '.join(map(str, trainer.net.sizes))}, on {trainer.device.type}"
    )
    trainer.fit(train_scenes, validation, env)
    trainer.save(env.model_dir, env.hyperparameters)


def initial_weights(env: TrainingEnv, arch: Architecture) -> dict[str, npt.NDArray[Any]] | None:
    """Weights from the `model` channel (None without one), checked against `arch`."""
    reader = env.channel("model")
    if reader is None:
        if env["use_pretrained_model"] == 1:
            env.log.info(
                "use_pretrained_model=1 without a 'model' channel: nothing pretrained is "
                "downloaded, so the network trains from scratch (give a previous job's model "
                "in a 'model' channel to start from its weights)"
            )
        return None
    if reader.pipe:
        raise UserError("Channel 'model' is in Pipe mode: it is read in File mode only.")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            previous, arrays = read_model(model_folder(reader.folder, Path(scratch)))
        except ValueError as exc:
            raise UserError(f"Channel 'model' holds no usable model: {exc}.") from None
    for name, theirs, ours in (
        ("base_network", previous.base_network, arch.base_network),
        ("num_classes", previous.num_classes, arch.num_classes),
        ("image_shape", previous.image_shape, arch.image_shape),
        ("width_multiplier", previous.width, arch.width),
    ):
        if theirs != ours:
            raise UserError(
                f"The model channel's model has {name}={theirs} but this job has "
                f"{name}={ours}; they must match to continue training."
            )
    env.log.info("Incremental training: continuing from the model channel's weights")
    return arrays


def build_optimizer(params: Any, config: Config, fused: bool = False) -> torch.optim.Optimizer:
    """sgd and rmsprop with momentum, adam, adadelta; weight_decay for all. `fused` (on a GPU)
    picks the fused kernels where torch has them (sgd, adam)."""
    lr, wd = config.learning_rate, config.weight_decay
    fastest = fused or None  # None: torch picks its default (foreach) kernels
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, weight_decay=wd, fused=fastest
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=fastest)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if config.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {config.optimizer}")


def learning_rate(config: Config, epoch: int) -> float:
    passed = sum(1 for step in config.lr_steps if epoch >= step)
    return config.learning_rate * config.lr_factor**passed


# --- augmentation -------------------------------------------------------------------------------


def regions(
    objects: list[npt.NDArray[np.float32]], rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], list[npt.NDArray[np.float32]]]:
    """A random view of each image: (N, 2, 3) affine rows for `affine_grid` and the objects
    as seen in it. Flip half the time; then a crop (50-100 % of the side, aspect 3:4 to 4:3)
    or a zoom-out (canvas 1-2x the side) a third of the time each. A crop that would lose
    every object is not taken."""
    thetas = np.zeros((len(objects), 2, 3), dtype=np.float32)
    moved = []
    for n, rows in enumerate(objects):
        flip = rng.random() < 0.5
        kind = rng.integers(0, 3)
        x0, y0, w, h = 0.0, 0.0, 1.0, 1.0
        if kind == 1:
            side, aspect = rng.uniform(0.5, 1.0), math.sqrt(rng.uniform(0.75, 4 / 3))
            w, h = min(1.0, side * aspect), min(1.0, side / aspect)
            x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
        elif kind == 2:
            w = h = rng.uniform(1.0, 2.0)
            x0, y0 = rng.uniform(1 - w, 0), rng.uniform(1 - h, 0)
        seen = view(rows, x0, y0, w, h, flip)
        if kind == 1 and len(rows) and not len(seen):
            x0, y0, w, h = 0.0, 0.0, 1.0, 1.0
            seen = view(rows, x0, y0, w, h, flip)
        sign = -1.0 if flip else 1.0
        thetas[n] = [[sign * w, 0.0, 2 * x0 + w - 1], [0.0, h, 2 * y0 + h - 1]]
        moved.append(seen)
    return thetas, moved


def view(
    rows: npt.NDArray[np.float32], x0: float, y0: float, w: float, h: float, flip: bool
) -> npt.NDArray[np.float32]:
    """Objects as seen through the window (x0, y0, w, h) of the image, optionally mirrored:
    clipped to it, those whose centre falls outside dropped."""
    if not len(rows):
        return rows
    out = rows.copy()
    out[:, [1, 3]] = (rows[:, [1, 3]] - x0) / w
    out[:, [2, 4]] = (rows[:, [2, 4]] - y0) / h
    if flip:
        out[:, [1, 3]] = 1 - out[:, [3, 1]]
    cx, cy = (out[:, 1] + out[:, 3]) / 2, (out[:, 2] + out[:, 4]) / 2
    inside = (cx > 0) & (cx < 1) & (cy > 0) & (cy < 1)
    out[:, 1:] = np.clip(out[:, 1:], 0, 1)
    big = ((out[:, 3] - out[:, 1]) > 0.01) & ((out[:, 4] - out[:, 2]) > 0.01)
    return np.ascontiguousarray(out[inside & big])


def augment(
    x: torch.Tensor, objects: list[npt.NDArray[np.float32]], rng: np.random.Generator
) -> tuple[torch.Tensor, list[npt.NDArray[np.float32]]]:
    """Flip, rescale and jitter a normalised batch (the zero padding of a zoom-out is the mean
    colour), and its objects alike."""
    thetas, moved = regions(objects, rng)
    n = x.shape[0]
    gain = rng.uniform(0.7, 1.3, (n, 1)).astype(np.float32)
    shift = rng.uniform(-0.3, 0.3, (n, 3)).astype(np.float32)
    # one host-to-device copy for the batch's affine rows, gains and shifts
    packed = gpu.to_device(np.concatenate([thetas.reshape(n, 6), gain, shift], 1), x.device)
    theta = packed[:, :6].view(n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out * packed[:, 6].view(n, 1, 1, 1) + packed[:, 7:].view(n, 3, 1, 1), moved


# --- the loop -----------------------------------------------------------------------------------


@dataclass
class EpochResult:
    cross_entropy: float
    smooth_l1: float
    seconds: float
    images: int

    @property
    def loss(self) -> float:
        return self.cross_entropy + self.smooth_l1


class Trainer:
    """One network, its optimizer and its random streams."""

    def __init__(
        self,
        arch: Architecture,
        config: Config,
        where: torch.device,
        weights: dict[str, npt.NDArray[Any]] | None = None,
        info: Callable[[str], None] = print,
    ) -> None:
        torch.manual_seed(SEED)
        self.arch = arch
        self.config = config
        self.device = where
        net = SSD(arch)
        if weights is not None:
            load_weights(net, weights)
        configure_threads(work(net, arch, config.batch_size))
        gpu.configure(where)
        self.net = gpu.place(net, where)
        self.priors = self.net.priors
        params = self._trainable(info)
        self.optimizer = build_optimizer(params, config, gpu.fused(where))
        self.autocast = gpu.autocast_dtype(config.precision, where)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast == torch.float16)
        self.rng = np.random.default_rng(SEED + 1)
        self.info = info
        self.best: tuple[int, float, dict[str, npt.NDArray[Any]]] | None = None
        self.history: list[EpochResult] = []
        self.scores: list[float] = []

    def _trainable(self, info: Callable[[str], None]) -> list[nn.Parameter]:
        pattern = self.config.freeze
        if not pattern:
            return list(self.net.parameters())
        regex = re.compile(pattern)
        frozen = [name for name, p in self.net.named_parameters() if regex.search(name)]
        for name, p in self.net.named_parameters():
            if name in frozen:
                p.requires_grad_(False)
        info(
            f"freeze_layer_pattern {pattern!r} freezes {len(frozen)} parameters"
            + (f" ({', '.join(frozen[:4])}{', ...' if len(frozen) > 4 else ''})" if frozen else "")
        )
        trainable = [p for p in self.net.parameters() if p.requires_grad]
        if not trainable:
            raise UserError(
                f"freeze_layer_pattern {pattern!r} freezes every layer: nothing is left to train."
            )
        return trainable

    def fit(self, train: Scenes, validation: Scenes | None, env: TrainingEnv | None = None) -> None:
        config = self.config
        stopper = EarlyStopping(config.min_epochs, config.patience, config.tolerance)
        pixels = gpu.Staged(train.pixels, self.device)
        for epoch in range(config.epochs):
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(config, epoch)
            result = self.epoch(pixels, train.objects)
            self.history.append(result)
            self._metric(env, epoch, "train cross_entropy <loss>", result.cross_entropy)
            self._metric(env, epoch, "train smooth_l1 <loss>", result.smooth_l1)
            self.info(
                f"Epoch[{epoch}] Train-loss={result.loss:f} Time cost={result.seconds:.3f} "
                f"Speed={result.images / max(result.seconds, 1e-9):.1f} images/s"
            )
            score = self.evaluate(validation) if validation is not None else -result.loss
            if validation is not None:
                self.scores.append(score)
                self.info(f"Epoch[{epoch}] Validation-mAP={score:f}")
                self._metric(env, epoch, "validation mAP <score>", score)
            if self.best is None or score > self.best[1]:
                self.best = (epoch, score, self.state())
            if env is not None:
                env.log.progress(epoch + 1, config.epochs)
            if config.early_stopping and validation is not None and stopper.stop(epoch, score):
                self.info(
                    f"Early stopping after epoch {epoch}: the validation mAP has not improved "
                    f"by more than {config.tolerance} for {config.patience} epochs"
                )
                break

    def _metric(self, env: TrainingEnv | None, epoch: int, what: str, value: float) -> None:
        from opensage.algorithms.logs import number

        line = f"#quality_metric: host={env.log.host if env else 'algo-1'}, epoch={epoch}, "
        self.info(f"{line}{what}=({number(value)})")

    def epoch(
        self, pixels: gpu.Staged | npt.NDArray[np.uint8], objects: list[npt.NDArray[np.float32]]
    ) -> EpochResult:
        """One pass of updates over shuffled batches: the mean losses (summed on the device
        and read once, so the steps never wait for the host)."""
        if not isinstance(pixels, gpu.Staged):
            pixels = gpu.Staged(pixels, self.device)
        self.net.train()
        started = time.perf_counter()
        n = len(pixels)
        order = self.rng.permutation(n)
        rows = pixels.index(torch.from_numpy(order))
        size = self.config.batch_size
        totals = torch.zeros(2, dtype=torch.float64, device=self.device)
        seen = 0
        for start in range(0, n, size):
            index = order[start : start + size]
            if len(index) < 2 and seen:  # BatchNorm cannot train on a batch of one
                continue
            x = normalize(pixels.take(rows[start : start + size]))
            found = [objects[i] for i in index]
            if self.config.augment:
                x, found = augment(x, found, self.rng)
            confidence, box = self.step(x, found)
            totals += torch.stack([confidence, box]).double() * len(index)
            seen += len(index)
        means = (totals / max(seen, 1)).tolist()
        seconds = time.perf_counter() - started
        return EpochResult(float(means[0]), float(means[1]), seconds, seen)

    def targets(self, rows: list[npt.NDArray[np.float32]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image's default boxes' classes and encoded boxes, matched on the device for the
        whole batch (the objects go over padded, in one copy)."""
        most = max((len(objects) for objects in rows), default=0)
        padded = np.zeros((len(rows), most, 6), dtype=np.float32)  # 5 values and "is real"
        for i, objects in enumerate(rows):
            padded[i, : len(objects), :5] = np.asarray(objects, dtype=np.float32).reshape(-1, 5)
            padded[i, : len(objects), 5] = 1.0
        found = gpu.to_device(padded, self.device)
        threshold = self.config.overlap_threshold
        return match_batch(found[..., :5], found[..., 5] > 0, self.priors, threshold)

    def step(
        self, x: torch.Tensor, rows: list[npt.NDArray[np.float32]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One update on a normalised batch and its objects: the (detached) confidence and box
        losses, on the device."""
        labels, boxes = self.targets(rows)
        with gpu.autocast(self.autocast):
            logits, offsets = self.net(gpu.as_input(x))
        confidence, box = multibox_loss(logits.float(), offsets.float(), labels, boxes)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(self.scaler.scale(confidence + box))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return confidence.detach(), box.detach()

    def detections(self, pixels: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
        return predict(self.net, pixels, self.device, self.config.nms_threshold)

    def evaluate(self, data: Scenes) -> float:
        """mAP on `data` at `overlap_threshold` (eval mode)."""
        found = self.detections(data.pixels)
        return mean_average_precision(
            found, data.objects, self.arch.num_classes, self.config.overlap_threshold
        )

    def state(self) -> dict[str, npt.NDArray[Any]]:
        """A snapshot: copies, as on the CPU `numpy()` shares the live parameters' memory."""
        return {name: v.detach().cpu().numpy().copy() for name, v in self.net.state_dict().items()}

    def save(self, model_dir: Path, hyperparameters: dict[str, Any]) -> Path:
        """The best epoch's weights as the model."""
        assert self.best is not None, "no epoch trained"
        return save(model_dir, self.best[2], self.arch, hyperparameters)


def predict(
    net: SSD, pixels: npt.NDArray[np.uint8], where: torch.device, threshold: float, batch: int = 32
) -> list[npt.NDArray[np.float32]]:
    """Detections of uint8 images (N, 3, S, S) in eval mode, no gradients."""
    net.eval()
    found: list[npt.NDArray[np.float32]] = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch):
            x = torch.from_numpy(np.ascontiguousarray(pixels[start : start + batch]))
            logits, offsets = net(normalize(x.to(where)))
            found += detect(logits, offsets, net.priors, threshold)
    return found


def load_weights(net: SSD, weights: dict[str, npt.NDArray[Any]]) -> None:
    state = {name: torch.from_numpy(np.array(value)) for name, value in weights.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"The model channel's weights do not fit this network: {exc}") from None


def work(net: SSD, arch: Architecture, batch: int) -> int:
    """Multiply-adds of one training step (forward and backward), to size the CPU threads."""
    total = 0

    def count(module: nn.Module, _: Any, output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        per = module.weight[0].numel()
        total += per * output.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, arch.image_shape, arch.image_shape))
    finally:
        for hook in hooks:
            hook.remove()
        net.train()
    return 3 * batch * total
