"""Image Classification training: a ResNet over the decoded `train` images for up to `epochs`
epochs, the accuracy metrics per epoch, optional early stopping, and the model files.

Per epoch the training images are shuffled and cut into `mini_batch_size` batches, augmented on
the device (`augmentation_type`), normalised and stepped with the chosen optimizer; the learning
rate is multiplied by `lr_scheduler_factor` at each epoch of `lr_scheduler_step`. The log has
MXNet's `Epoch[N] Train-accuracy=...` / `Epoch[N] Validation-accuracy=...` lines and the
contract's `#quality_metric: host=algo-1, epoch=N, validation accuracy <score>=...`.

The model is the epoch with the best validation accuracy (the last epoch without validation);
`checkpoint_frequency` also keeps every k-th epoch's params. A `model` channel holding a
previous job's model continues from its weights (incremental training; num_layers, image_shape
and num_classes must match), or with `use_pretrained_model=1` starts from them with a new `fc`
layer (transfer learning). Everything random is seeded, so a CPU run is reproducible.

On a GPU (see `opensage.algorithms.gpu`) the decoded images are staged on the device, the network
runs channels-last, `precision_dtype=float16` trains in mixed precision with a gradient scaler,
and the step never waits for the host: losses and accuracies are read once per epoch. The
`Config.precision` "bfloat16" (bfloat16 autocast, no scaler) is not a hyperparameter - SageMaker's
`precision_dtype` offers float32 and float16 - but what a caller such as the GPU benchmark picks.
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
from torch import nn

from opensage.algorithms import gpu
from opensage.algorithms.artifacts import model_channel_folder
from opensage.algorithms.base import UserError
from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.image_classification.data import Images, Settings, load_channel
from opensage.algorithms.image_classification.model import (
    SYMBOL,
    Architecture,
    ResNet,
    augment,
    normalize,
    read_model,
    save,
    state_arrays,
)
from opensage.algorithms.image_classification.spec import image_shape, scheduler_steps
from opensage.algorithms.ntm.model import configure_threads, device

SEED: Final = 0


@dataclass(frozen=True)
class Config:
    """The training hyperparameters the loop uses."""

    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0001
    beta_1: float = 0.9
    beta_2: float = 0.999
    eps: float = 1e-8
    gamma: float = 0.9
    lr_steps: tuple[int, ...] = ()
    lr_factor: float = 0.1
    augmentation: str | None = None
    top_k: int | None = None
    weighted_loss: bool = False
    precision: str = "float32"
    """float32, float16 (`precision_dtype`) or bfloat16 (callers only): see `gpu.PRECISIONS`."""
    checkpoint_frequency: int | None = None
    early_stopping: bool = False
    min_epochs: int = 10
    patience: int = 5
    tolerance: float = 0.0

    @classmethod
    def from_env(cls, env: TrainingEnv) -> Config:
        return cls(
            epochs=env["epochs"],
            batch_size=env["mini_batch_size"],
            optimizer=env["optimizer"],
            learning_rate=env["learning_rate"],
            momentum=env["momentum"],
            weight_decay=env["weight_decay"],
            beta_1=env["beta_1"],
            beta_2=env["beta_2"],
            eps=env["eps"],
            gamma=env["gamma"],
            lr_steps=tuple(scheduler_steps(env.get("lr_scheduler_step"))),
            lr_factor=env["lr_scheduler_factor"],
            augmentation=env.get("augmentation_type"),
            top_k=env.get("top_k"),
            weighted_loss=env["use_weighted_loss"] == 1,
            precision=env["precision_dtype"],
            checkpoint_frequency=env.get("checkpoint_frequency"),
            early_stopping=env["early_stopping"],
            min_epochs=env["early_stopping_min_epochs"],
            patience=env["early_stopping_patience"],
            tolerance=env["early_stopping_tolerance"],
        )


def architecture(env: TrainingEnv) -> Architecture:
    return Architecture(
        num_layers=int(env["num_layers"]),
        image_shape=image_shape(env["image_shape"]),
        num_classes=env["num_classes"],
        multi_label=env["multi_label"] == 1,
    )


def train(env: TrainingEnv) -> None:
    arch = architecture(env)
    config = Config.from_env(env)
    where = device()
    configure_threads(work(arch, config.batch_size))
    gpu.configure(where)
    log = env.log.info
    if env.get("kv_store") is not None:
        log(f"kv_store={env['kv_store']}: single-instance training, nothing to synchronise")
    if config.precision == "float16" and where.type != "cuda":
        log("precision_dtype=float16 needs a GPU; training in float32 on the CPU")
    if config.weighted_loss and not arch.multi_label:
        log("use_weighted_loss applies to multi_label=1 only; ignored")
    weights = initial_weights(env, arch)
    settings = Settings(arch.image_shape, arch.num_classes, arch.multi_label, env.get("resize"))
    train_images = load_channel(env, "train", settings, "train_lst")
    assert train_images is not None  # the spec makes `train` required
    validation = load_channel(env, "validation", settings, "validation_lst")
    log(
        f"ResNet-{arch.num_layers} on {len(train_images)} training images "
        f"{'x'.join(map(str, arch.image_shape))}"
        + (f", {len(validation)} validation images" if validation is not None else "")
        + f", {arch.num_classes} classes, on {where.type}"
    )
    trainer = Trainer(arch, config, where, weights, log)
    trainer.fit(train_images, validation, env)
    trainer.save(env.model_dir)


def work(arch: Architecture, batch: int) -> int:
    """Multiply-adds of one training step (forward and backward), to size the CPU threads."""
    _, counts, widths = arch.layout()
    side = arch.image_shape[1] * arch.image_shape[2]
    if not arch.small_stem:
        side //= 16
    total = 0
    for stage, (count, width) in enumerate(zip(counts, widths, strict=True)):
        total += count * 2 * 9 * width * width * side // (4**stage)
    return 3 * batch * total


def initial_weights(env: TrainingEnv, arch: Architecture) -> dict[str, npt.NDArray[Any]] | None:
    """Weights from the `model` channel (None without one), checked against `arch`."""
    pretrained = env["use_pretrained_model"] == 1
    reader = env.channel("model")
    if reader is None:
        if pretrained:
            raise UserError(
                "use_pretrained_model=1 needs a 'model' channel (application/x-sagemaker-model) "
                "holding a previous job's model.tar.gz: pretrained weights are never downloaded."
            )
        return None
    if reader.pipe:
        raise UserError("Channel 'model' is in Pipe mode: it is read in File mode only.")
    with tempfile.TemporaryDirectory() as scratch:
        folder = model_folder(reader.folder, Path(scratch))
        try:
            previous, arrays = read_model(folder)
        except ValueError as exc:
            raise UserError(f"Channel 'model' holds no usable model: {exc}") from None
    check_compatible(previous, arch, pretrained)
    if pretrained:
        arrays = {name: value for name, value in arrays.items() if not name.startswith("fc.")}
        env.log.info(f"Transfer learning from the model channel's ResNet-{arch.num_layers}")
    else:
        env.log.info("Incremental training: continuing from the model channel's weights")
    return arrays


def model_folder(folder: Path, scratch: Path) -> Path:
    """Where the model files are: the channel itself, or its model.tar.gz unpacked."""
    try:
        return model_channel_folder(folder, scratch, SYMBOL, "Image Classification")
    except ValueError as exc:
        raise UserError(f"Channel 'model' {exc}") from None


def check_compatible(previous: Architecture, arch: Architecture, pretrained: bool) -> None:
    """The model channel's network must be this job's (num_classes may differ when only its
    features are reused)."""
    names = ["num_layers", "image_shape"] + ([] if pretrained else ["num_classes"])
    for name in names:
        theirs, ours = getattr(previous, name), getattr(arch, name)
        if theirs != ours:
            shown = ",".join(map(str, theirs)) if isinstance(theirs, tuple) else theirs
            mine = ",".join(map(str, ours)) if isinstance(ours, tuple) else ours
            raise UserError(
                f"The model channel's model has {name}={shown} but this job has {name}={mine}; "
                f"they must match to {'transfer' if pretrained else 'continue'} training."
            )


def build_optimizer(net: nn.Module, config: Config, fused: bool = False) -> torch.optim.Optimizer:
    """sgd and nag (Nesterov) with momentum, adam with beta_1/beta_2/eps, rmsprop with gamma as
    the squared-gradient decay and eps; weight_decay for all. `fused` (on a GPU) picks the
    fused kernels where torch has them (sgd, nag, adam)."""
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
        return torch.optim.Adam(
            params,
            lr=lr,
            betas=(config.beta_1, config.beta_2),
            eps=config.eps,
            weight_decay=wd,
            fused=fastest,
        )
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=lr, alpha=config.gamma, eps=config.eps, weight_decay=wd
        )
    raise ValueError(f"unknown optimizer {config.optimizer}")


def learning_rate(config: Config, epoch: int) -> float:
    """The rate of 0-based `epoch`: `learning_rate` times `lr_scheduler_factor` per step
    passed."""
    passed = sum(1 for step in config.lr_steps if epoch >= step)
    return config.learning_rate * config.lr_factor**passed


class EarlyStopping:
    """SageMaker's rule: after `min_epochs`, stop once the validation accuracy has not beaten
    the best so far by more than `tolerance` (relative) for `patience` epochs."""

    def __init__(self, min_epochs: int, patience: int, tolerance: float) -> None:
        self.min_epochs = min_epochs
        self.patience = patience
        self.tolerance = tolerance
        self.best = -math.inf
        self.stale = 0

    def stop(self, epoch: int, accuracy: float) -> bool:
        """After 0-based `epoch` with this validation accuracy."""
        if accuracy > self.best * (1 + self.tolerance) or self.best == -math.inf:
            self.best = accuracy
            self.stale = 0
        else:
            self.stale += 1
        return epoch + 1 >= self.min_epochs and self.stale >= self.patience


@dataclass
class EpochResult:
    loss: float
    accuracy: float


class Trainer:
    """One network, its optimizer, and its random streams."""

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
        net = ResNet(arch)
        if weights is not None:
            load_weights(net, weights)
        self.net = gpu.place(net, where)
        self.optimizer = build_optimizer(self.net, config, gpu.fused(where))
        self.shuffle = torch.Generator().manual_seed(SEED + 1)
        self.noise = torch.Generator(device=where).manual_seed(SEED + 2)
        self.info = info
        self.autocast = gpu.autocast_dtype(config.precision, where)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast == torch.float16)
        self.best: tuple[int, dict[str, npt.NDArray[Any]]] | None = None
        self.history: list[EpochResult] = []
        self.pos_weight: torch.Tensor | None = None

    def fit(self, train: Images, validation: Images | None, env: TrainingEnv | None) -> None:
        config = self.config
        if self.arch.multi_label and config.weighted_loss:
            positives = train.labels.sum(axis=0)
            weight = (len(train) - positives) / np.maximum(positives, 1.0)
            self.pos_weight = torch.from_numpy(weight.astype(np.float32)).to(self.device)
        stopper = EarlyStopping(config.min_epochs, config.patience, config.tolerance)
        best_accuracy = -math.inf
        staged = self.stage(train)
        for epoch in range(config.epochs):
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(config, epoch)
            started = time.perf_counter()
            result = self.epoch(staged)
            self.history.append(result)
            self.info(f"Epoch[{epoch}] Train-accuracy={result.accuracy:f}")
            self.info(f"Epoch[{epoch}] Train-loss={result.loss:f}")
            self.info(f"Epoch[{epoch}] Time cost={time.perf_counter() - started:.3f}")
            if env is not None:
                _quality(env, epoch, "train", "accuracy", result.accuracy)
            if validation is None:
                self.best = (epoch, state_arrays(self.net))
            else:
                accuracy, top = self.evaluate(validation)
                self.info(f"Epoch[{epoch}] Validation-accuracy={accuracy:f}")
                if top is not None:
                    self.info(f"Epoch[{epoch}] Validation-top_k_accuracy_{top[0]}={top[1]:f}")
                if env is not None:
                    _quality(env, epoch, "validation", "accuracy", accuracy)
                if accuracy > best_accuracy:
                    best_accuracy = accuracy
                    self.best = (epoch, state_arrays(self.net))
            frequency = config.checkpoint_frequency
            if env is not None and frequency and (epoch + 1) % frequency == 0:
                arrays = state_arrays(self.net)
                save(env.model_dir, arrays, self.arch, epoch + 1, config.batch_size, final=False)
            if env is not None:
                env.log.progress(epoch + 1, config.epochs)
            if config.early_stopping and validation is not None and stopper.stop(epoch, accuracy):
                self.info(
                    f"Early stopping after epoch {epoch}: the validation accuracy has not "
                    f"improved by more than {config.tolerance} for {config.patience} epochs"
                )
                break
        if config.early_stopping and validation is None:
            self.info("early_stopping needs a validation channel; it was not applied")

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.arch.multi_label:
            return nn.functional.binary_cross_entropy_with_logits(
                logits, labels, pos_weight=self.pos_weight
            )
        return nn.functional.cross_entropy(logits, labels)

    def stage(self, data: Images) -> tuple[gpu.Staged, gpu.Staged]:
        """The images and labels where batches are taken from (on a GPU: its memory)."""
        return gpu.Staged(data.pixels, self.device), gpu.Staged(data.labels, self.device)

    def epoch(self, data: Images | tuple[gpu.Staged, gpu.Staged]) -> EpochResult:
        """One pass of updates over shuffled batches: mean loss and accuracy on them (summed
        on the device and read once, so the steps never wait for the host)."""
        pixels, labels = self.stage(data) if isinstance(data, Images) else data
        self.net.train()
        n = len(pixels)
        order = torch.randperm(n, generator=self.shuffle)
        rows, label_rows = pixels.index(order), labels.index(order)
        size = self.config.batch_size
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        for start in range(0, n, size):
            index = rows[start : start + size]
            if len(index) < 2 and seen:  # BatchNorm cannot train on a batch of one
                continue
            x = pixels.take(index).float()
            y = labels.take(label_rows[start : start + size])
            loss, logits = self.step(x, y)
            count = len(index)
            total_loss += loss.double() * count
            correct += self._correct(logits.float(), y)
            seen += count
        return EpochResult(float(total_loss) / max(seen, 1), float(correct) / max(seen, 1))

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One update on a batch of uint8-valued float pixels: the (detached) loss and logits."""
        x = gpu.as_input(normalize(augment(x, self.config.augmentation, self.noise)))
        with gpu.autocast(self.autocast):
            logits = self.net(x)
            loss = self.loss(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(self.scaler.scale(loss))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach()

    def _batch(self, data: Images, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = index.numpy()
        x = gpu.to_device(data.pixels[rows], self.device).float()
        y = gpu.to_device(data.labels[rows], self.device)
        return x, y

    def _correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Correct predictions (a tensor on the device): exact classes, or for multi-label the
        share of right per-class decisions (sigmoid > 0.5), summed over the batch's images."""
        if self.arch.multi_label:
            right = ((logits > 0).float() == y).float().mean(dim=1)
            return right.sum().double()
        return (logits.argmax(dim=1) == y).sum().double()

    def evaluate(self, data: Images) -> tuple[float, tuple[int, float] | None]:
        """Accuracy on `data` (eval mode), and top-k accuracy when `top_k` is set."""
        self.net.eval()
        size = max(self.config.batch_size, 64)
        correct = 0.0
        top_hits = 0.0
        k = min(self.config.top_k or 0, self.arch.num_classes)
        with torch.no_grad():
            for start in range(0, len(data), size):
                index = torch.arange(start, min(start + size, len(data)))
                x, y = self._batch(data, index)
                with gpu.autocast(self.autocast):
                    logits = self.net(gpu.as_input(normalize(x))).float()
                correct += float(self._correct(logits, y))
                if k and not self.arch.multi_label:
                    top = logits.topk(k, dim=1).indices
                    top_hits += float((top == y[:, None]).any(dim=1).sum())
        accuracy = correct / len(data)
        if not k or self.arch.multi_label:
            return accuracy, None
        return accuracy, (k, top_hits / len(data))

    def save(self, model_dir: Path) -> Path:
        """The best epoch's weights as the model."""
        assert self.best is not None, "no epoch trained"
        epoch, arrays = self.best
        return save(model_dir, arrays, self.arch, epoch + 1, self.config.batch_size)


def load_weights(net: ResNet, weights: dict[str, npt.NDArray[Any]]) -> None:
    """Load a previous model's weights; only `fc` may be missing (transfer learning)."""
    state = {name: torch.from_numpy(np.array(value)) for name, value in weights.items()}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise UserError(f"The model channel's weights do not fit this network: {exc}") from None
    if unexpected or any(not name.startswith("fc.") for name in missing):
        raise UserError(
            "The model channel's weights do not fit this network "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})."
        )


def _quality(env: TrainingEnv, epoch: int, channel: str, name: str, value: float) -> None:
    from opensage.algorithms.logs import number

    env.log.info(
        f"#quality_metric: host={env.log.host}, epoch={epoch}, {channel} {name} "
        f"<score>={number(value)}"
    )
