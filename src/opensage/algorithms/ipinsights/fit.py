"""The training loop: shuffled mini-batches, negatives drawn per batch, Adam, and the
validation discriminator AUC after each epoch; the job machinery only supplies the rows and
receives the reports.

Negatives per positive: `random_negative_sampling_rate` addresses drawn uniformly from the whole
IPv4 space and `shuffled_negative_sampling_rate` addresses of other positives of the same
mini-batch (a random permutation each). Everything random comes from one seeded generator, so
the same data and settings give the same model bit for bit.

Validation: each validation pair against generated negatives, one random address if
`random_negative_sampling_rate` > 0 and one shuffled address if
`shuffled_negative_sampling_rate` > 0, drawn once with a fixed seed so epochs are comparable;
the AUC of the pairs' scores against the negatives' is `validation:discriminator_auc`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from opensage.algorithms.ipinsights.hashing import Ints, UInt32s
from opensage.algorithms.ipinsights.model import (
    BatchStats,
    IPInsightsModel,
    Pairs,
    auc,
    loss_and_gradients,
)
from opensage.algorithms.ipinsights.optim import Adam

SEED: Final = 0x1B1A5
"""SageMaker's IP Insights has no seed hyperparameter; a fixed one makes runs reproducible."""
VALIDATION_SEED: Final = 0xA0C


@dataclass(frozen=True)
class Settings:
    num_entity_vectors: int
    vector_dim: int
    epochs: int = 10
    learning_rate: float = 0.001
    weight_decay: float = 0.00001
    mini_batch_size: int = 10_000
    num_ip_encoder_layers: int = 1
    random_negative_sampling_rate: int = 1
    shuffled_negative_sampling_rate: int = 1
    batch_metrics_publish_interval: int = 1000
    seed: int = SEED


@dataclass(frozen=True)
class Logins:
    """Pairs as entity rows (already hashed into the model's table) and uint32 addresses."""

    entities: Ints
    ips: UInt32s

    @property
    def n(self) -> int:
        return int(self.entities.shape[0])


BatchReport = Callable[[int, int, BatchStats], None]
"""(epoch, batch, stats) every `batch_metrics_publish_interval` batches."""
EpochReport = Callable[[int, BatchStats, float | None], None]
"""(epoch, the epoch's mean stats, validation AUC or None)."""


def fit(
    settings: Settings,
    train: Logins,
    validation: Logins | None = None,
    on_batch: BatchReport | None = None,
    on_epoch: EpochReport | None = None,
) -> IPInsightsModel:
    rng = np.random.default_rng(settings.seed)
    model = IPInsightsModel.initial(
        settings.num_entity_vectors,
        settings.vector_dim,
        settings.num_ip_encoder_layers,
        settings.seed,
    )
    optimizer = Adam(model, settings.learning_rate, settings.weight_decay)
    negatives = Negatives(validation, settings) if validation is not None else None
    size = settings.mini_batch_size
    for epoch in range(settings.epochs):
        order = rng.permutation(train.n)
        loss = correct = 0.0
        pairs = 0
        for batch, start in enumerate(range(0, train.n, size)):
            chosen = order[start : start + size]
            stats, grads = loss_and_gradients(model, draw(rng, train, chosen, settings))
            optimizer.step(grads)
            loss += stats.loss * stats.pairs
            correct += stats.accuracy * stats.pairs
            pairs += stats.pairs
            if on_batch is not None and batch % settings.batch_metrics_publish_interval == 0:
                on_batch(epoch, batch, stats)
        score = negatives.auc(model) if negatives is not None else None
        if on_epoch is not None:
            on_epoch(epoch, BatchStats(loss / max(pairs, 1), correct / max(pairs, 1), pairs), score)
    return model


def draw(rng: np.random.Generator, data: Logins, chosen: Ints, settings: Settings) -> Pairs:
    """The positives `chosen` and their negatives."""
    n = len(chosen)
    r = settings.random_negative_sampling_rate
    random = rng.integers(0, 1 << 32, size=(r, n), dtype=np.uint64).astype(np.uint32)
    shuffles = np.empty((settings.shuffled_negative_sampling_rate, n), dtype=np.int64)
    for row in shuffles:
        row[:] = rng.permutation(n)
    return Pairs(data.entities[chosen], data.ips[chosen], random, shuffles)


class Negatives:
    """The validation pairs and their fixed generated negatives."""

    def __init__(self, data: Logins, settings: Settings) -> None:
        rng = np.random.default_rng(VALIDATION_SEED)
        self.data = data
        entities: list[Ints] = []
        ips: list[UInt32s] = []
        if settings.random_negative_sampling_rate > 0:
            entities.append(data.entities)
            ips.append(rng.integers(0, 1 << 32, size=data.n, dtype=np.uint64).astype(np.uint32))
        if settings.shuffled_negative_sampling_rate > 0:
            entities.append(data.entities)
            ips.append(data.ips[rng.permutation(data.n)])
        self.entities = np.concatenate(entities)
        self.ips = np.concatenate(ips)

    def auc(self, model: IPInsightsModel) -> float:
        positive = model.scores(self.data.entities, self.data.ips)
        return auc(positive, model.scores(self.entities, self.ips))
