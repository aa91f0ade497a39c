"""Object2Vec training: mini-batch training of the pair network on the `train` channel for up to
`epochs` epochs, early stopping on the validation loss, `model_algo-1` (the best epoch's
weights when there is a validation channel), and the metric lines `validation:accuracy` /
`validation:cross_entropy` (softmax) or `validation:mean_squared_error`, and the same on `test`.

The channels are read whole into padded id matrices (pairs of token ids are small). Everything
random (initial weights, shuffling, negative samples, dropout) comes from fixed seeds, so the
same job trains the same model on the CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.ntm.model import configure_threads, device
from opensage.algorithms.ntm.train import build_optimizer
from opensage.algorithms.object2vec.data import (
    Pairs,
    batch_order,
    negative_samples,
    read_pairs,
    read_pretrained,
)
from opensage.algorithms.object2vec.model import Architecture, Object2VecModel, Object2VecNet
from opensage.algorithms.object2vec.spec import ENC0, encoder_settings

SEED: Final = 0
EVAL_ROWS: Final = 4096


def architecture(values: Mapping[str, Any]) -> Architecture:
    comparators = values["comparator_list"]
    assert isinstance(comparators, tuple)
    return Architecture(
        encoders=(encoder_settings(values, 0), encoder_settings(values, 1)),
        shared_encoder=values["enc1_network"] == ENC0,
        tied_embedding=bool(values["tied_token_embedding_weight"]),
        enc_dim=int(values["enc_dim"]),
        comparators=comparators,
        mlp_layers=int(values["mlp_layers"]),
        mlp_dim=int(values["mlp_dim"]),
        mlp_activation=str(values["mlp_activation"]),
        dropout=float(values["dropout"]),
        output_layer=str(values["output_layer"]),
        num_classes=int(values["num_classes"]),
        sparse_embeddings=values["token_embedding_storage_type"] == "row_sparse",
    )


def train(env: TrainingEnv) -> None:
    torch.manual_seed(SEED)
    arch = architecture(env.hyperparameters)
    batch_size: int = env["mini_batch_size"]
    configure_threads(arch.work(batch_size))
    classes = None if arch.regression else arch.num_classes
    channels: dict[str, Pairs] = {}
    for name in ("train", "validation", "test"):
        reader = env.channel(name)
        if reader is not None:
            channels[name] = read_pairs(reader, arch.encoders, classes)
    net = Object2VecNet(arch).to(device())
    load_pretrained(env, net)
    trainer = Trainer(net, env.hyperparameters)
    source = channels["train"]
    validation = channels.get("validation")
    stopper = EarlyStopping(env["early_stopping_tolerance"], env["early_stopping_patience"])
    epochs: int = env["epochs"]
    best: dict[str, torch.Tensor] | None = None
    for epoch in range(epochs):
        started = time.perf_counter()
        loss, pairs = trainer.epoch(source, batch_size, env["bucket_width"])
        rate = pairs / max(time.perf_counter() - started, 1e-9)
        env.log.info(f"Epoch {epoch + 1}: train loss {loss!r} ({pairs} pairs, {rate:.0f} pairs/s)")
        if validation is not None:
            metrics = trainer.evaluate(validation)
            for name, value in metrics.items():
                env.log.quality("validation", name, value, DIRECTIONS[name])
            watched = metrics["mean_squared_error" if arch.regression else "cross_entropy"]
            if stopper.improved(watched):
                best = {k: v.detach().clone() for k, v in net.state_dict().items()}
        env.log.progress(epoch + 1, epochs)
        if validation is not None and stopper.stop():
            env.log.info(
                f"Early stopping after epoch {epoch + 1}: the validation loss did not improve "
                f"by {stopper.tolerance} for {stopper.patience} epochs; keeping the best epoch"
            )
            break
    if best is not None:
        net.load_state_dict(best)
    Object2VecModel.from_net(net).save(env.model_dir)
    if "test" in channels:
        for name, value in trainer.evaluate(channels["test"]).items():
            env.log.quality("test", name, value, DIRECTIONS[name])


DIRECTIONS: Final[dict[str, Any]] = {
    "accuracy": "Maximize",
    "cross_entropy": "Minimize",
    "mean_squared_error": "Minimize",
}


def load_pretrained(env: TrainingEnv, net: Object2VecNet) -> None:
    """Set encoder rows from the `auxiliary` channel's files; freeze them when asked."""
    for i in (0, 1):
        if i == 1 and net.arch.shared_encoder:
            break
        embedding_file = str(env.get(f"enc{i}_pretrained_embedding_file", ""))
        if not embedding_file:
            continue
        settings = net.arch.encoders[i]
        ids, vectors = read_pretrained(
            env.channel("auxiliary"), embedding_file, str(env[f"enc{i}_vocab_file"]), settings
        )
        weight = net.encoders.encoder(i).embedding.weight
        with torch.no_grad():
            weight[torch.from_numpy(ids).to(weight.device)] = torch.from_numpy(vectors).to(
                weight.device
            )
        if env[f"enc{i}_freeze_pretrained_embedding"]:
            weight.requires_grad_(False)
        env.log.info(f"Encoder {i}: {len(ids)} token embeddings from {embedding_file}")


def sparse_optimizer(name: str, params: list[torch.Tensor], rate: float) -> torch.optim.Optimizer:
    """The sparse-gradient form of `name` for row_sparse token embeddings: only the rows a
    mini-batch holds are updated (MXNet's lazy update); weight_decay applies to the dense
    parameters only."""
    if name == "adam":
        return torch.optim.SparseAdam(params, lr=rate)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=rate)
    if name == "sgd":
        return torch.optim.SGD(params, lr=rate)
    raise ValueError(f"optimizer {name} takes no sparse gradients")


class Trainer:
    """One network, its optimizer and its random streams."""

    def __init__(self, net: Object2VecNet, config: Mapping[str, Any]) -> None:
        self.net = net
        self.device = next(net.parameters()).device
        sparse: dict[int, torch.Tensor] = {
            id(module.weight): module.weight
            for module in net.modules()
            if isinstance(module, nn.Embedding) and module.sparse and module.weight.requires_grad
        }
        dense = [p for p in net.parameters() if p.requires_grad and id(p) not in sparse]
        name, rate = config["optimizer"], config["learning_rate"]
        self.optimizers = [build_optimizer(name, dense, rate, config["weight_decay"])]
        if sparse:
            # torch's own sparse gradients hold the invariants; say so rather than be warned
            torch.sparse.check_sparse_tensor_invariants.disable()  # type: ignore[no-untyped-call]
            self.optimizers.append(sparse_optimizer(name, list(sparse.values()), rate))
        self.negative_rate = int(config["negative_sampling_rate"])
        self.rows = np.random.default_rng(SEED + 1)
        self.negatives = np.random.default_rng(SEED + 2)

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.net.arch.regression:
            return nn.functional.mse_loss(output, labels)
        return nn.functional.cross_entropy(output, labels.long())

    def forward(self, data: Pairs, rows0: Any, rows1: Any) -> torch.Tensor:
        t0, l0 = data.side(0, rows0)
        t1, l1 = data.side(1, rows1)
        where = self.device
        return self.net(  # type: ignore[no-any-return]
            torch.from_numpy(t0).to(where),
            torch.from_numpy(l0).to(where),
            torch.from_numpy(t1).to(where),
            torch.from_numpy(l1).to(where),
        )

    def epoch(self, data: Pairs, size: int, bucket_width: int) -> tuple[float, int]:
        """One pass of updates: the mean training loss per pair and the pairs trained on."""
        self.net.train()
        total = 0.0
        count = 0
        for rows in batch_order(data.lengths, size, bucket_width, self.rows):
            labels = data.labels[rows]
            rows0, rows1 = rows, rows
            first, second = negative_samples(labels, self.negative_rate, self.negatives)
            if len(first):
                rows0 = np.concatenate([rows, rows[first]])
                rows1 = np.concatenate([rows, rows[second]])
                labels = np.concatenate([labels, np.zeros(len(first), np.float32)])
            target = torch.from_numpy(labels).to(self.device)
            loss = self.loss(self.forward(data, rows0, rows1), target)
            for optimizer in self.optimizers:
                optimizer.zero_grad()
            torch.autograd.backward(loss)
            for optimizer in self.optimizers:
                optimizer.step()
            total += float(loss.detach()) * len(labels)
            count += len(labels)
        return total / max(count, 1), count

    def evaluate(self, data: Pairs) -> dict[str, float]:
        """accuracy and cross_entropy (softmax), or mean_squared_error, over a channel."""
        self.net.eval()
        squared = 0.0
        log_loss = 0.0
        correct = 0
        with torch.no_grad():
            for start in range(0, data.n, EVAL_ROWS):
                rows = np.arange(start, min(start + EVAL_ROWS, data.n))
                output = self.forward(data, rows, rows)
                labels = torch.from_numpy(data.labels[rows]).to(self.device)
                if self.net.arch.regression:
                    squared += float(((output - labels) ** 2).sum())
                else:
                    log_loss += float(
                        nn.functional.cross_entropy(output, labels.long(), reduction="sum")
                    )
                    correct += int((output.argmax(dim=1) == labels.long()).sum())
        if self.net.arch.regression:
            return {"mean_squared_error": squared / data.n}
        return {"accuracy": correct / data.n, "cross_entropy": log_loss / data.n}


class EarlyStopping:
    """Stop once the watched loss has not improved on its best by `tolerance` for `patience`
    consecutive epochs (SageMaker: "the reduction in the loss ... to avoid early stopping")."""

    def __init__(self, tolerance: float, patience: int) -> None:
        self.tolerance = tolerance
        self.patience = patience
        self.best = math.inf
        self.flat = 0

    def improved(self, loss: float) -> bool:
        """Record an epoch's loss; whether it is the best so far."""
        if not math.isfinite(loss):
            self.flat += 1
            return False
        self.flat = 0 if self.best - loss >= self.tolerance else self.flat + 1
        if loss < self.best:
            self.best = loss
            return True
        return False

    def stop(self) -> bool:
        return self.flat >= self.patience
