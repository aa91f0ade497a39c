"""Random Cut Forest conformance cases: a shingled periodic series unsupervised (dense and
sparse), and with planted anomalies labelled in a test channel (every metric)."""

from __future__ import annotations

import numpy as np

from tests.algorithms.conformance import Array, Case

SHINGLE = 4


def series(rows: int, seed: int = 0) -> tuple[Array, Array]:
    """Shingles of a noisy sine with a few spikes; label 1 on every shingle holding a spike."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows + SHINGLE - 1)
    values = np.sin(2 * np.pi * t / 25) + 0.05 * rng.normal(size=len(t))
    spikes = rng.choice(
        np.arange(SHINGLE, len(t) - SHINGLE), size=max(2, rows // 60), replace=False
    )
    values[spikes] += rng.choice([-4.0, 4.0], size=len(spikes))
    x = np.lib.stride_tricks.sliding_window_view(values, SHINGLE)[:rows]
    window = np.arange(rows)[:, None] + np.arange(SHINGLE)
    labels = np.isin(window, spikes).any(axis=1)
    return x.astype(np.float32), np.asarray(labels, dtype=np.float32)


def _unlabelled() -> tuple[Array, None]:
    return series(160)[0], None


def _labelled() -> tuple[Array, Array]:
    return series(240, seed=1)


def _sparse() -> tuple[Array, None]:
    x = series(160, seed=2)[0]
    x[np.abs(x) < 0.5] = 0.0
    return x, None


def _case(name: str, data: object, **extra: object) -> Case:
    settings: dict[str, object] = {"csv_content_type": "text/csv;label_size=0", **extra}
    return Case(
        name=f"randomcutforest-{name}",
        algorithm="randomcutforest",
        hyperparameters={
            "feature_dim": str(SHINGLE),
            "num_trees": "50",
            "num_samples_per_tree": "32",
            "mini_batch_size": "1000",
        },
        data=data,  # type: ignore[arg-type]
        response_keys=("score",),
        envelope="scores",
        **settings,  # type: ignore[arg-type]
    )


CASES = [
    _case("unsupervised", _unlabelled),
    _case(
        "test-channel",
        _labelled,
        channels=("train", "test"),
        metrics=("test:f1", "test:accuracy", "test:precision", "test:recall"),
        csv_content_type="text/csv;label_size=1",
    ),
    _case("sparse", _sparse, sparse=True),
]
