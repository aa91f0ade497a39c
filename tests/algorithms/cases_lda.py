"""LDA's conformance cases: dense counts (CSV and RecordIO) and sparse counts, with a test
channel so `test:pwll` is logged."""

from __future__ import annotations

import numpy as np

from tests.algorithms.conformance import Array, Case


def _documents(seed: int, documents: int, words: int, topics: int) -> tuple[Array, None]:
    """Word counts of documents drawn from `topics` random topics (LDA's generative model)."""
    rng = np.random.default_rng(seed)
    beta = rng.dirichlet(np.full(words, 0.3), size=topics)
    theta = rng.dirichlet(np.full(topics, 0.5), size=documents)
    lengths = rng.integers(20, 60, size=documents)
    counts = [rng.multinomial(n, t @ beta) for n, t in zip(lengths, theta, strict=True)]
    return np.asarray(counts, dtype=np.float32), None


def _dense() -> tuple[Array, None]:
    return _documents(0, 300, 12, 3)


def _sparse() -> tuple[Array, None]:
    return _documents(1, 200, 30, 4)


def _case(name: str, data: object, sparse: bool = False, **hyperparameters: str) -> Case:
    return Case(
        name=f"lda-{name}",
        algorithm="lda",
        hyperparameters=hyperparameters,
        data=data,  # type: ignore[arg-type]
        response_keys=("topic_mixture",),
        channels=("train", "test"),
        metrics=("test:pwll",),
        csv_content_type="text/csv;label_size=0",
        sparse=sparse,
    )


CASES = [
    _case("dense", _dense, feature_dim="12", mini_batch_size="300", num_topics="3"),
    _case(
        "sparse",
        _sparse,
        sparse=True,
        feature_dim="30",
        mini_batch_size="200",
        num_topics="4",
        alpha0="2.0",
        max_iterations="200",
    ),
]
