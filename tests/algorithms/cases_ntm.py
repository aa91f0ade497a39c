"""NTM's conformance cases: tiny bag-of-words corpora (40 documents, 12 words, 3 topics,
3 epochs), dense and sparse, with validation and test channels so every metric is logged."""

from __future__ import annotations

import numpy as np

from tests.algorithms.conformance import Array, Case


def _documents(seed: int, documents: int, words: int, topics: int) -> tuple[Array, None]:
    rng = np.random.default_rng(seed)
    beta = rng.dirichlet(np.full(words, 0.3), size=topics)
    theta = rng.dirichlet(np.full(topics, 0.5), size=documents)
    counts = [rng.multinomial(30, t @ beta) for t in theta]
    return np.asarray(counts, dtype=np.float32), None


def _dense() -> tuple[Array, None]:
    return _documents(0, 40, 12, 3)


def _sparse() -> tuple[Array, None]:
    return _documents(1, 40, 30, 4)


def _case(name: str, data: object, sparse: bool = False, **hyperparameters: str) -> Case:
    return Case(
        name=f"ntm-{name}",
        algorithm="ntm",
        hyperparameters={"epochs": "3", "mini_batch_size": "16", **hyperparameters},
        data=data,  # type: ignore[arg-type]
        response_keys=("topic_weights",),
        channels=("train", "validation", "test"),
        metrics=("validation:total_loss", "train:total_loss", "test:total_loss"),
        csv_content_type="text/csv;label_size=0",
        sparse=sparse,
    )


CASES = [
    _case("dense", _dense, feature_dim="12", num_topics="3", optimizer="adam"),
    _case(
        "sparse-batch-norm",
        _sparse,
        sparse=True,
        feature_dim="30",
        num_topics="4",
        batch_norm="true",
        encoder_layers="8",
        encoder_layers_activation="relu",
        sub_sample="0.8",
    ),
]
