"""Semantic Segmentation training: a dilated ResNet with an FCN, PSP or DeepLab v3 decoder over
augmented crops of the `train` images, mIOU and pixel accuracy on `validation` each epoch,
optional early stopping, and `model_algo-1`.

Per epoch the images are shuffled and cut into `mini_batch_size` batches of random crops (see
`data.training_crop`); the loss is pixel-wise cross entropy ignoring label 255. The learning
rate follows `lr_scheduler` per iteration (poly: `(1 - t/T)^0.9`; cosine) or per epoch (step:
times `lr_scheduler_factor` at each epoch of `lr_scheduler_step`). Validation runs each whole
image as the endpoint does (long side scaled to `base_size`, probabilities back to the image's
size) and logs `#quality_metric: host=algo-1, validation mIOU <score>=...` and
`... validation pixel_accuracy <score>=...`. The model is the epoch with the best mIOU.

A `model` channel holding a previous job's model continues from its weights (incremental
training: backbone, algorithm, num_classes and width_multiplier must match). Nothing is
downloaded: `use_pretrained_model=true` (SageMaker's default) without a model channel trains the
backbone from scratch and says so. `syncbn` is accepted; training uses one device, so there is
nothing to synchronise. Everything random is seeded, so a CPU run is reproducible.

On a GPU (see `opensage.algorithms.gpu`) the decoded images and masks are staged on the device
once, the network runs channels-last with fused optimizer steps, and the losses are summed on the
device and read once per epoch. SageMaker has no precision hyperparameter for this algorithm, so
jobs train in float32; `Config.precision` (float16 or bfloat16 autocast) is for callers such as
the GPU benchmark.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as F

from opensage.algorithms import gpu
from opensage.algorithms.artifacts import MODEL_FILE, model_channel_folder
from opensage.algorithms.base import UserError
from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.ntm.model import configure_threads, device
from opensage.algorithms.semantic_segmentation.data import Scenes, load_split, training_crop
from opensage.algorithms.semantic_segmentation.metrics import Confusion
from opensage.algorithms.semantic_segmentation.model import (
    LAYOUT,
    Architecture,
    SegmentationNet,
    Segmenter,
    load_weights,
    normalize,
    read_model,
    save,
    state_arrays,
)
from opensage.algorithms.semantic_segmentation.spec import (
    IGNORE,
    base_width,
    crop_size,
    scheduler_steps,
)

SEED: Final = 0
RESNET_MACS: Final = {"resnet-50": 4.1e9, "resnet-101": 7.8e9}
"""Multiply-adds of one 224x224 image through the undilated standard network."""
POLY_POWER: Final = 0.9


@dataclass(frozen=True)
class Config:
    """The training hyperparameters the loop uses."""

    epochs: int = 10
    batch_size: int = 16
    validation_batch_size: int = 16
    base_size: int = 520
    crop_size: int = 240
    optimizer: str = "sgd"
    learning_rate: float = 0.001
    lr_scheduler: str = "poly"
    lr_steps: tuple[int, ...] = ()
    lr_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0001
    gamma1: float = 0.9
    early_stopping: bool = False
    min_epochs: int = 5
    patience: int = 4
    tolerance: float = 0.0
    precision: str = "float32"
    """Not a hyperparameter: float16 or bfloat16 autocast on a GPU for callers that ask."""

    @classmethod
    def from_env(cls, env: TrainingEnv) -> Config:
        return cls(
            epochs=env["epochs"],
            batch_size=env["mini_batch_size"],
            validation_batch_size=env["validation_mini_batch_size"],
            base_size=env["base_size"],
            crop_size=crop_size(env["crop_size"]),
            optimizer=env["optimizer"],
            learning_rate=env["learning_rate"],
            lr_scheduler=env["lr_scheduler"],
            lr_steps=tuple(scheduler_steps(env.get("lr_scheduler_step"))),
            lr_factor=env["lr_scheduler_factor"],
            momentum=env["momentum"],
            weight_decay=env["weight_decay"],
            gamma1=env["gamma1"],
            early_stopping=env["early_stopping"],
            min_epochs=env["early_stopping_min_epochs"],
            patience=env["early_stopping_patience"],
            tolerance=env["early_stopping_tolerance"],
        )


def architecture(env: TrainingEnv) -> Architecture:
    return Architecture(
        backbone=env["backbone"],
        algorithm=env["algorithm"],
        num_classes=env["num_classes"],
        width=base_width(env["width_multiplier"]),
        base_size=env["base_size"],
    )


def train(env: TrainingEnv) -> None:
    arch = architecture(env)
    config = Config.from_env(env)
    where = device()
    configure_threads(work(arch, config))
    gpu.configure(where)
    log = env.log.info
    if env["syncbn"]:
        log("syncbn=true: training runs on one device, so batch norm has nothing to synchronise")
    weights = initial_weights(env, arch)
    if weights is None and env["use_pretrained_model"]:
        log(
            "use_pretrained_model=true but no 'model' channel: pretrained weights are never "
            f"downloaded, so the {arch.backbone} backbone is trained from scratch (not pretrained)"
        )
    train_scenes = load_split(env, "train", arch.num_classes)
    validation = load_split(env, "validation", arch.num_classes)
    if env["num_training_samples"] != len(train_scenes):
        log(
            f"num_training_samples is {env['num_training_samples']} but the train channel holds "
            f"{len(train_scenes)} images; training on the images"
        )
    log(
        f"{arch.algorithm.upper()} on {arch.backbone} (width {arch.width}): "
        f"{len(train_scenes)} training and {len(validation)} validation images, "
        f"{arch.num_classes} classes, crops of {config.crop_size}, on {where.type}"
    )
    trainer = Trainer(arch, config, where, weights, log)
    trainer.fit(train_scenes, validation, env)
    trainer.save(env.model_dir)


def work(arch: Architecture, config: Config) -> int:
    """Multiply-adds of one convolution of a training step (forward and backward), to size the
    CPU threads: threads pay off per operation, and a step is some fifty convolutions on small
    maps (a tiny network runs many times slower on two busy cores than on one)."""
    per_image = RESNET_MACS[arch.backbone] * (arch.width / 64) ** 2 * (config.crop_size / 224) ** 2
    dilated = 4.5 if arch.output_stride == 8 else 2.0
    step = 3 * config.batch_size * per_image * dilated
    return int(step / (3 * sum(LAYOUT[arch.backbone]) + 2))


def initial_weights(env: TrainingEnv, arch: Architecture) -> dict[str, npt.NDArray[Any]] | None:
    """Weights from the `model` channel (None without one), checked against `arch`."""
    reader = env.channel("model")
    if reader is None:
        return None
    if reader.pipe:
        raise UserError("Channel 'model' is in Pipe mode: it is read in File mode only.")
    with tempfile.TemporaryDirectory() as scratch:
        folder = model_folder(reader.folder, Path(scratch))
        try:
            previous, arrays = read_model(folder)
        except ValueError as exc:
            raise UserError(f"Channel 'model' holds no usable model: {exc}") from None
    check_compatible(previous, arch)
    env.log.info("Incremental training: continuing from the model channel's weights")
    return arrays


def model_folder(folder: Path, scratch: Path) -> Path:
    """Where `model_algo-1` is: the channel itself, or its model.tar.gz unpacked."""
    try:
        return model_channel_folder(folder, scratch, MODEL_FILE, "Semantic Segmentation")
    except ValueError as exc:
        raise UserError(f"Channel 'model' {exc}") from None


def check_compatible(previous: Architecture, arch: Architecture) -> None:
    """The model channel's network must be this job's."""
    for name in ("backbone", "algorithm", "num_classes", "width"):
        theirs, ours = getattr(previous, name), getattr(arch, name)
        if theirs != ours:
            if name == "width":
                name, theirs, ours = "width_multiplier", f"{theirs / 64:g}", f"{ours / 64:g}"
            raise UserError(
                f"The model channel's model has {name}={theirs} but this job has "
                f"{name}={ours}; they must match to continue training."
            )


def build_optimizer(
    net: torch.nn.Module, config: Config, fused: bool = False
) -> torch.optim.Optimizer:
    """sgd and nag (Nesterov) with momentum; adam; adagrad; rmsprop with gamma1 as the
    squared-gradient decay (MXNet's non-centred RMSProp, where gamma2 has no role); adadelta at
    step 1.0 (it takes no learning rate in MXNet); weight_decay for all. `fused` (on a GPU)
    picks the fused kernels where torch has them (sgd, nag, adam)."""
    params = net.parameters()
    lr, wd = config.learning_rate, config.weight_decay
    fastest = fused or None  # None: torch picks its default (foreach) kernels
    if config.optimizer in ("sgd", "nag"):
        nesterov = config.optimizer == "nag" and config.momentum > 0
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=config.momentum,
            weight_decay=wd,
            nesterov=nesterov,
            fused=fastest,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=fastest)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=config.gamma1, weight_decay=wd)
    if config.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=1.0, weight_decay=wd)
    raise ValueError(f"unknown optimizer {config.optimizer}")


def learning_rate(config: Config, epoch: int, progress: float) -> float:
    """The rate at 0-based `epoch`, `progress` (0..1) through all iterations."""
    base = config.learning_rate
    if config.lr_scheduler == "poly":
        return float(base * (1 - min(progress, 1.0)) ** POLY_POWER)
    if config.lr_scheduler == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    passed = sum(1 for step in config.lr_steps if epoch >= step)
    return float(base * config.lr_factor**passed)


class EarlyStopping:
    """SageMaker's rule: after `min_epochs`, stop once the validation mIOU has not beaten the
    best so far by more than `tolerance` (relative) for `patience` epochs."""

    def __init__(self, min_epochs: int, patience: int, tolerance: float) -> None:
        self.min_epochs = min_epochs
        self.patience = patience
        self.tolerance = tolerance
        self.best = -math.inf
        self.stale = 0

    def stop(self, epoch: int, score: float) -> bool:
        if self.best == -math.inf or score > self.best * (1 + self.tolerance):
            self.best = score
            self.stale = 0
        else:
            self.stale += 1
        return epoch + 1 >= self.min_epochs and self.stale >= self.patience


@dataclass
class Staged:
    """Training images and masks as tensors where the crops are sampled (see `gpu.stage_each`)."""

    images: list[torch.Tensor]
    masks: list[torch.Tensor]


@dataclass
class Quality:
    miou: float
    pixel_accuracy: float


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
        net = SegmentationNet(arch)
        if weights is not None:
            try:
                load_weights(net, weights)
            except ValueError as exc:
                raise UserError(
                    f"The model channel's weights do not fit this network: {exc}"
                ) from None
        self.net = gpu.place(net, where)
        self.optimizer = build_optimizer(self.net, config, gpu.fused(where))
        self.autocast = gpu.autocast_dtype(config.precision, where)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast == torch.float16)
        self.shuffle = torch.Generator().manual_seed(SEED + 1)
        self.rng = np.random.default_rng(SEED + 2)
        self.info = info
        self.losses: list[float] = []
        self.best: tuple[int, float, dict[str, npt.NDArray[Any]]] | None = None

    def fit(self, train: Scenes, validation: Scenes | None, env: TrainingEnv | None = None) -> None:
        config = self.config
        if len(train) < 2:
            raise UserError(
                "The train channel needs at least 2 images: batch norm cannot train on one."
            )
        torch.manual_seed(SEED + 3)  # dropout draws from the global generator
        stopper = EarlyStopping(config.min_epochs, config.patience, config.tolerance)
        staged = self.stage(train)
        for epoch in range(config.epochs):
            started = time.perf_counter()
            loss = self.epoch(staged, epoch)
            self.losses.append(loss)
            self.info(
                f"Epoch[{epoch}] Train-loss={loss:f} Time cost={time.perf_counter() - started:.3f}"
            )
            if env is not None:
                env.log.quality("train", "loss", loss, "Minimize")
            if validation is None:
                self.best = (epoch, math.nan, state_arrays(self.net))
                continue
            quality = self.evaluate(validation)
            if env is not None:
                env.log.quality("validation", "mIOU", quality.miou, "Maximize")
                env.log.quality("validation", "pixel_accuracy", quality.pixel_accuracy, "Maximize")
                env.log.progress(epoch + 1, config.epochs)
            if self.best is None or quality.miou > self.best[1]:
                self.best = (epoch, quality.miou, state_arrays(self.net))
            if config.early_stopping and stopper.stop(epoch, quality.miou):
                self.info(
                    f"Early stopping after epoch {epoch}: the validation mIOU has not improved "
                    f"by more than {config.tolerance} for {config.patience} epochs"
                )
                break

    def stage(self, data: Scenes) -> Staged:
        """The images and masks where the crops are sampled from (on a GPU: its memory)."""
        return Staged(
            gpu.stage_each(data.images, self.device), gpu.stage_each(data.masks, self.device)
        )

    def epoch(self, data: Scenes | Staged, epoch: int) -> float:
        """One pass of updates over shuffled batches of crops: the mean loss per labelled pixel
        (summed on the device and read once, so the steps never wait for the host)."""
        if isinstance(data, Scenes):
            data = self.stage(data)
        self.net.train()
        config = self.config
        n = len(data.images)
        order = torch.randperm(n, generator=self.shuffle).tolist()
        steps = math.ceil(n / config.batch_size)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        pixels = torch.zeros((), dtype=torch.int64, device=self.device)
        for step, start in enumerate(range(0, n, config.batch_size)):
            index = order[start : start + config.batch_size]
            if len(index) < 2:  # batch norm cannot train on one crop; it rejoins next epoch
                continue
            progress = (epoch * steps + step) / max(1, config.epochs * steps)
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(config, epoch, progress)
            crops = [
                training_crop(
                    data.images[i],
                    data.masks[i],
                    config.base_size,
                    config.crop_size,
                    self.rng,
                    self.device,
                )
                for i in index
            ]
            loss, labelled = self.step(
                torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops])
            )
            total += loss.double()
            pixels += labelled
        return float(total) / max(int(pixels), 1)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One update on crops (uint8-valued floats) and their masks: the summed loss
        (detached) and the labelled pixels' count, both on the device."""
        x = gpu.as_input(normalize(x))
        with gpu.autocast(self.autocast):
            logits = self.net(x)
        labelled = (y != IGNORE).sum()
        loss = F.cross_entropy(logits.float(), y, ignore_index=IGNORE, reduction="sum")
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(self.scaler.scale(loss / labelled.clamp(min=1)))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), labelled

    def evaluate(self, data: Scenes) -> Quality:
        """mIOU and pixel accuracy of whole images, predicted as the endpoint predicts them."""
        self.net.eval()
        segmenter = Segmenter(self.net, self.device)
        confusion = Confusion(self.arch.num_classes)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(data.images):
            groups.setdefault(image.shape, []).append(i)
        size = self.config.validation_batch_size
        for members in groups.values():
            for start in range(0, len(members), size):
                chosen = members[start : start + size]
                images = np.stack([data.images[i] for i in chosen])
                predicted = segmenter.batch_probabilities(images).argmax(dim=1).cpu().numpy()
                for i, mask in zip(chosen, predicted, strict=True):
                    confusion.add(data.masks[i], mask)
        return Quality(confusion.miou, confusion.pixel_accuracy)

    def save(self, model_dir: Path) -> Path:
        """The best epoch's weights as the model."""
        assert self.best is not None, "no epoch trained"
        return save(model_dir, self.arch, self.best[2])
