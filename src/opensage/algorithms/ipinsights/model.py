"""The IP Insights network and its gradient, free of the job machinery so tests and benchmarks
drive it with plain arrays.

An entity is one row `e` of the entity table (its hashed row). An address is encoded as the sum
of four rows of the prefix table (its /8, /16, /24 and /32 prefixes; `hashing.prefix_rows`),
then `num_ip_encoder_layers` residual dense layers `h <- h + tanh(h W + b)`: the residual form
keeps the prefix sum's information through any depth (SageMaker allows 100 layers, and plain
tanh stacks that deep stop passing gradient). The score of a pair is `s = <e, ip>` (the
`dot_product` served), `sigmoid(s)` the probability that the pair is a real login.

`loss_and_gradients` is the mean binary cross-entropy of a mini-batch of positives and their
negatives (random addresses and addresses shuffled within the batch) with every gradient:
dense for the layers, row sums for the two tables, so an optimizer touches only the rows the
batch used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from opensage.algorithms.artifacts import load_model, save_model
from opensage.algorithms.ipinsights.hashing import (
    Ints,
    UInt32s,
    entity_rows,
    ip_buckets,
    prefix_rows,
    prefix_table_rows,
)

Floats32 = npt.NDArray[np.float32]
FORMAT: Final = "opensage-ipinsights/1"
SCORE_CHUNK: Final = 65_536
"""Pairs scored at a time, bounding the encoder's working memory."""


@dataclass
class IPInsightsModel:
    """`entity` (num_entity_vectors x d), `prefix` (prefix rows x d), and the encoder layers'
    `weights` (d x d each) and `biases` (d each); `buckets` hashed rows per /24 and /32."""

    entity: Floats32
    prefix: Floats32
    weights: list[Floats32]
    biases: list[Floats32]
    buckets: int

    @classmethod
    def initial(
        cls, num_entity_vectors: int, vector_dim: int, layers: int, seed: int
    ) -> IPInsightsModel:
        """Small uniform entity and prefix rows (scores start near 0, probabilities near 1/2),
        layer weights of scale 1/sqrt(d), zero biases."""
        rng = np.random.default_rng(seed)
        buckets = ip_buckets(num_entity_vectors)
        scale = np.float32(1.0 / np.sqrt(vector_dim))
        entity = _uniform(rng, (num_entity_vectors, vector_dim), scale)
        prefix = _uniform(rng, (prefix_table_rows(buckets), vector_dim), scale / 2)
        weights = [_uniform(rng, (vector_dim, vector_dim), scale) for _ in range(layers)]
        biases = [np.zeros(vector_dim, np.float32) for _ in range(layers)]
        return cls(entity, prefix, weights, biases, buckets)

    @property
    def vector_dim(self) -> int:
        return int(self.entity.shape[1])

    @property
    def num_entity_vectors(self) -> int:
        return int(self.entity.shape[0])

    @property
    def layers(self) -> int:
        return len(self.weights)

    def entity_rows(self, entities: list[str]) -> Ints:
        return entity_rows(entities, self.num_entity_vectors)

    def encode(self, ips: Any) -> Floats32:
        """The encoded vectors (n x d) of uint32 addresses."""
        h, _ = self.forward(prefix_rows(ips, self.buckets))
        return h

    def forward(self, rows: Ints) -> tuple[Floats32, list[tuple[Floats32, Floats32]]]:
        """Encoded vectors of prefix rows (n x 4), and per layer its input and tanh output (what
        `backward` needs)."""
        p = self.prefix
        h = p[rows[:, 0]] + p[rows[:, 1]]
        h += p[rows[:, 2]]
        h += p[rows[:, 3]]
        cache: list[tuple[Floats32, Floats32]] = []
        for weight, bias in zip(self.weights, self.biases, strict=True):
            a = np.tanh(h @ weight + bias)
            cache.append((h, a))
            h = h + a
        return h, cache

    def backward(
        self, grad: Floats32, rows: Ints, cache: list[tuple[Floats32, Floats32]]
    ) -> tuple[Ints, Floats32, list[Floats32], list[Floats32]]:
        """From the gradient of the encoded vectors: the prefix rows touched with their summed
        gradients, and each layer's weight and bias gradients."""
        weights: list[Floats32] = []
        biases: list[Floats32] = []
        for weight, (h, a) in zip(reversed(self.weights), reversed(cache), strict=True):
            gz = grad * (np.float32(1) - a * a)
            weights.append(h.T @ gz)
            biases.append(gz.sum(axis=0))
            grad = grad + cast(Floats32, gz @ weight.T)
        touched, sums = sum_rows(rows.reshape(-1), grad, repeat=rows.shape[1])
        return touched, sums, weights[::-1], biases[::-1]

    def scores(self, entities: Ints, ips: Any) -> Floats32:
        """`<e, ip>` of each pair (entity rows, uint32 addresses), in chunks."""
        ips = np.asarray(ips, dtype=np.uint32)
        out = np.empty(len(entities), dtype=np.float32)
        for start in range(0, len(entities), SCORE_CHUNK):
            stop = start + SCORE_CHUNK
            e = self.entity[entities[start:stop]]
            out[start:stop] = np.einsum("nd,nd->n", e, self.encode(ips[start:stop]))
        return out

    def save(self, model_dir: Path) -> Path:
        """`model_algo-1`: the tables and layers as named arrays, the shape settings as JSON."""
        arrays: dict[str, npt.NDArray[Any]] = {"entity": self.entity, "prefix": self.prefix}
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"weight_{i}"] = weight
            arrays[f"bias_{i}"] = bias
        meta = {"format": FORMAT, "buckets": self.buckets, "layers": self.layers}
        return save_model(model_dir, arrays, meta)

    @classmethod
    def load(cls, model_dir: Path) -> IPInsightsModel:
        arrays, meta = load_model(model_dir)
        if meta.get("format") != FORMAT or "entity" not in arrays or "prefix" not in arrays:
            raise ValueError("model_algo-1 is not an IP Insights model")
        layers = int(meta["layers"])
        buckets = int(meta["buckets"])
        entity = np.asarray(arrays["entity"], dtype=np.float32)
        prefix = np.asarray(arrays["prefix"], dtype=np.float32)
        weights = [np.asarray(arrays[f"weight_{i}"], np.float32) for i in range(layers)]
        biases = [np.asarray(arrays[f"bias_{i}"], np.float32) for i in range(layers)]
        d = entity.shape[1]
        if prefix.shape != (prefix_table_rows(buckets), d) or any(
            w.shape != (d, d) for w in weights
        ):
            raise ValueError(f"IP Insights model arrays disagree: entity {entity.shape}, "
                             f"prefix {prefix.shape}")  # fmt: skip
        return cls(entity, prefix, weights, biases, buckets)


def _uniform(rng: np.random.Generator, shape: tuple[int, int], scale: Any) -> Floats32:
    out = rng.random(shape, dtype=np.float32)
    out *= np.float32(2 * scale)
    out -= np.float32(scale)
    return out


def sum_rows(indices: Ints, grads: Floats32, repeat: int = 1) -> tuple[Ints, Floats32]:
    """The distinct `indices` and, for each, the sum of its gradients: `indices[k]` owns
    `grads[k // repeat]` (so the four prefix rows of an address share its gradient without
    copying it four times). A 0/1 CSR matrix times the gradients: ten times faster than
    `np.add.reduceat` or `np.add.at` on whole rows, and summed in a fixed order."""
    import scipy.sparse as sp

    order = np.argsort(indices, kind="stable")
    ordered = indices[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    indptr = np.r_[starts, len(indices)]
    sources = order // repeat if repeat > 1 else order
    ones = np.ones(len(indices), dtype=grads.dtype)
    matrix = sp.csr_matrix((ones, sources, indptr), shape=(len(starts), grads.shape[0]))
    sums: Floats32 = np.asarray(matrix @ grads)
    return ordered[starts], sums


# --- the objective -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairs:
    """A mini-batch: `n` positives (entity rows, addresses), `random` addresses (R x n) paired
    with the same entities, and `shuffles` (S x n), permutations of the batch's addresses."""

    entities: Ints
    ips: UInt32s
    random: UInt32s = field(default_factory=lambda: np.empty((0, 0), np.uint32))
    shuffles: Ints = field(default_factory=lambda: np.empty((0, 0), np.int64))

    @property
    def n(self) -> int:
        return int(self.entities.shape[0])

    @property
    def total(self) -> int:
        return self.n * (1 + int(self.random.shape[0]) + int(self.shuffles.shape[0]))


@dataclass
class Gradients:
    """Row sums for the tables (only the rows a batch touched), dense ones for the layers."""

    entity_rows: Ints
    entity: Floats32
    prefix_rows: Ints
    prefix: Floats32
    weights: list[Floats32]
    biases: list[Floats32]


@dataclass(frozen=True)
class BatchStats:
    loss: float
    accuracy: float
    pairs: int


def loss_and_gradients(model: IPInsightsModel, pairs: Pairs) -> tuple[BatchStats, Gradients]:
    """Mean binary cross-entropy over the positives (label 1) and all their negatives (label 0),
    and its gradient. The batch's addresses and the random ones go through the encoder in one
    pass; a shuffled negative reuses the encoding of the address it borrows."""
    n = pairs.n
    r = pairs.random.shape[0]
    e = model.entity[pairs.entities]
    ips = np.concatenate([pairs.ips, pairs.random.reshape(-1)]) if r else pairs.ips
    rows = prefix_rows(ips, model.buckets)
    h, cache = model.forward(rows)
    positive = h[:n]
    scale = np.float32(1.0 / pairs.total)

    s = np.einsum("nd,nd->n", e, positive)
    loss = float(np.logaddexp(0, -s).sum())
    correct = int((s > 0).sum())
    g = (_sigmoid(s) - 1) * scale
    grad_e = g[:, None] * positive
    grad_h = np.empty_like(h)
    grad_h[:n] = g[:, None] * e
    for k in range(r):
        other = h[n * (k + 1) : n * (k + 2)]
        s = np.einsum("nd,nd->n", e, other)
        loss += float(np.logaddexp(0, s).sum())
        correct += int((s <= 0).sum())
        g = _sigmoid(s) * scale
        grad_e += g[:, None] * other
        grad_h[n * (k + 1) : n * (k + 2)] = g[:, None] * e
    for perm in pairs.shuffles:
        other = positive[perm]
        s = np.einsum("nd,nd->n", e, other)
        loss += float(np.logaddexp(0, s).sum())
        correct += int((s <= 0).sum())
        g = _sigmoid(s) * scale
        grad_e += g[:, None] * other
        grad_h[perm] += g[:, None] * e  # a permutation: no index repeats
    touched, prefix, weights, biases = model.backward(grad_h, rows, cache)
    entity_rows_, entity = sum_rows(pairs.entities, grad_e)
    stats = BatchStats(loss / pairs.total, correct / pairs.total, pairs.total)
    return stats, Gradients(entity_rows_, entity, touched, prefix, weights, biases)


def _sigmoid(s: Floats32) -> Floats32:
    """Stable in float32 for any score (no exp overflow)."""
    out: Floats32 = np.float32(0.5) * (np.float32(1) + np.tanh(np.float32(0.5) * s))
    return out


def auc(positive: Any, negative: Any) -> float:
    """The probability that a positive outscores a negative (ties count half): the Mann-Whitney
    statistic from average ranks."""
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    if not len(pos) or not len(neg):
        return float("nan")
    scores = np.concatenate([pos, neg])
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    rank_sum = ranks[: len(pos)].sum()
    return float((rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
