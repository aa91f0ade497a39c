"""The NTM network (spec algorithms §12(f)): an NVDM / ProdLDA-style variational autoencoder
over bags of words, its loss, and `model_algo-1`.

Encoder: an MLP over the word counts (`encoder_layers`, each Linear, optional BatchNorm, the
activation) to `mu` and `log sigma^2` of a Gaussian over `num_topics`. Training samples
`z = mu + sigma * eps`; the topic weights are `theta = softmax(z)`; the decoder `W` (vocab x
topics, each column a topic) and a bias give word log-probabilities `log_softmax(W theta + b)`.
The loss per document is the reconstruction `-sum_w x_w log p_w` plus the KL divergence of the
Gaussian from N(0, I). Evaluation and inference use `eps = 0` (`theta = softmax(mu)`), so
reported losses and served topic weights are deterministic.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from opensage.algorithms.artifacts import load_model, save_model

PROJECTION: Final = "projection_weight"
"""The decoder W (vocab x topics) under SageMaker's `arg:projection_weight` name, sans `arg:`."""
_ACTIVATIONS: Final = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


def device() -> torch.device:
    """A GPU when one is present; the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


WORK_PER_THREAD: Final = 1 << 23
"""Multiply-adds per step worth another CPU thread: below it, threads only add synchronisation
(a tiny network runs 50 times slower on two busy cores than on one)."""


def configure_threads(work: int = 0) -> None:
    """Deterministic CPU maths on threads sized to `work` (multiply-adds of one step), at most
    the cores and 8; an explicit OMP_NUM_THREADS wins. Deterministic on the CPU only: on a GPU
    it rules out the fastest kernels (cuDNN's convolution backward, atomic `index_add_`), and
    GPU training is not promised to repeat bit for bit."""
    if not os.environ.get("OMP_NUM_THREADS"):
        wanted = 1 + work // WORK_PER_THREAD
        torch.set_num_threads(max(1, min(8, os.cpu_count() or 1, wanted)))
    torch.use_deterministic_algorithms(device().type == "cpu", warn_only=True)


@dataclass(frozen=True)
class Architecture:
    feature_dim: int
    num_topics: int
    encoder_layers: tuple[int, ...]
    activation: str = "sigmoid"
    batch_norm: bool = False

    def work(self, rows: int) -> int:
        """Multiply-adds of one training step over `rows` documents (forward and backward)."""
        widths = [self.feature_dim, *self.encoder_layers]
        encoder = sum(a * b for a, b in itertools.pairwise(widths))
        per_row = encoder + 2 * widths[-1] * self.num_topics + self.num_topics * self.feature_dim
        return 3 * rows * per_row

    def meta(self) -> dict[str, Any]:
        return {
            "feature_dim": self.feature_dim,
            "num_topics": self.num_topics,
            "encoder_layers": list(self.encoder_layers),
            "activation": self.activation,
            "batch_norm": self.batch_norm,
        }


@dataclass
class Loss:
    """Per-document terms of one batch: `total = reconstruction + kl`."""

    reconstruction: torch.Tensor
    kl: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.reconstruction + self.kl


class NTMNet(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        layers: list[nn.Module] = []
        width = arch.feature_dim
        for hidden in arch.encoder_layers:
            layers.append(nn.Linear(width, hidden))
            if arch.batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(_ACTIVATIONS[arch.activation]())
            width = hidden
        self.encoder = nn.Sequential(*layers)
        self.mu = nn.Linear(width, arch.num_topics)
        self.log_sigma2 = nn.Linear(width, arch.num_topics)
        self.decoder = nn.Linear(arch.num_topics, arch.feature_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.log_sigma2(h)

    def loss(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> Loss:
        """The loss terms of the documents `x`; `eps` None evaluates at the mean (z = mu)."""
        mu, log_sigma2 = self.encode(x)
        z = mu if eps is None else mu + torch.exp(0.5 * log_sigma2) * eps
        theta = torch.softmax(z, dim=1)
        log_p = torch.log_softmax(self.decoder(theta), dim=1)
        reconstruction = -(x * log_p).sum(dim=1)
        kl = -0.5 * (1 + log_sigma2 - mu.square() - log_sigma2.exp()).sum(dim=1)
        return Loss(reconstruction, kl)

    def topic_weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.encode(x)[0], dim=1)


class NTMModel:
    """A trained network for inference (eval mode, no gradients), on `device()`."""

    def __init__(self, net: NTMNet) -> None:
        self.net = net.eval()
        self.device = next(net.parameters()).device

    @property
    def arch(self) -> Architecture:
        return self.net.arch

    @property
    def feature_dim(self) -> int:
        return self.arch.feature_dim

    @property
    def projection(self) -> npt.NDArray[np.float32]:
        """The decoder W, vocab x topics: column k is topic k's word weights."""
        return np.asarray(self.net.decoder.weight.detach().cpu().numpy(), dtype=np.float32)

    def topic_weights(self, dense_rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(dense_rows, dtype=np.float32))
            theta = self.net.topic_weights(x.to(self.device))
        return np.asarray(theta.cpu().numpy(), dtype=np.float32)

    def save(self, model_dir: Path) -> Path:
        arrays = {
            name: value.detach().cpu().numpy() for name, value in self.net.state_dict().items()
        }
        arrays[PROJECTION] = self.projection
        return save_model(model_dir, arrays, {"algorithm": "ntm", **self.arch.meta()})

    @classmethod
    def load(cls, model_dir: Path) -> NTMModel:
        arrays, meta = load_model(model_dir)
        arch = Architecture(
            feature_dim=int(meta["feature_dim"]),
            num_topics=int(meta["num_topics"]),
            encoder_layers=tuple(int(w) for w in meta["encoder_layers"]),
            activation=str(meta["activation"]),
            batch_norm=bool(meta["batch_norm"]),
        )
        net = NTMNet(arch)
        state = {name: torch.from_numpy(arrays[name]) for name in net.state_dict()}
        net.load_state_dict(state)
        return cls(net.to(device()))
