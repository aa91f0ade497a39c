"""Factorization Machines benchmark: our training core's epochs/s against plain numpy FM epochs.

Run from the repository root:

    .venv/bin/python benchmarks/bench_factorization_machines.py [--rows N] [--runs N] [--write]

Data (generated once, the same batches for every contender): `--rows` (1,000,000) click-style
rows, one-hot user (10,000) + item (5,000) + with probability 1/2 one of 16 context features
(2.5 nonzeros a row on average), feature_dim 15,016; label = planted rank-8 user x item
interactions + biases + N(0, 0.1^2) noise. num_factors 64, mini_batch_size 1000, the rows
pre-sliced into CSR mini-batches in memory (decoding RecordIO is the shared reader's cost,
measured by bench_formats.py). One epoch per timed run, median of `--runs` after a warm-up,
the contenders' runs interleaved.

Contenders (numpy/scipy only: torch is not installed here):

1. ours: `fit.fit` on the batches (the training function `train.py` calls; lazy Adam on the
   rows each batch uses, O(nnz * k) a step).
2. anchor "numpy SGD": a plain FM SGD epoch written straightforwardly: the same forward pass,
   the full-width gradient (X^T(g S) - (X2^T g) V, a feature_dim x k array) and
   `V -= lr * grad` over every row, each batch.
3. anchor "numpy Adam": the same straightforward full-width code with our optimizer (dense
   Adam with per-term rates), so the ratio isolates the sparse-rows design.

Quality after the epoch (test RMSE on 20,000 held-out rows) is printed for each so the speeds
are read at their quality. `--write` replaces the section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp

from opensage.algorithms.factorization_machines.fit import Init, Settings, fit, initial
from opensage.algorithms.factorization_machines.model import FMModel
from results import replace_section

TITLE = "## Factorization machines (benchmarks/bench_factorization_machines.py)"
USERS, ITEMS, CONTEXTS, RANK = 10_000, 5_000, 16, 8
FEATURES = USERS + ITEMS + CONTEXTS
FACTORS, BATCH = 64, 1000
LR = {"bias": 0.1, "linear": 0.01, "factors": 0.01}
WD = {"bias": 0.0, "linear": 1e-5, "factors": 1e-5}

Array = np.ndarray[Any, Any]
Batches = list[tuple[Any, Array]]


def make_data(rows: int, seed: int) -> tuple[Any, Array]:
    planted = np.random.default_rng(7)
    p, q = planted.normal(0, 0.5, (USERS, RANK)), planted.normal(0, 0.5, (ITEMS, RANK))
    bu, bi = planted.normal(0, 0.3, USERS), planted.normal(0, 0.3, ITEMS)
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, USERS, rows), rng.integers(0, ITEMS, rows)
    context = rng.integers(0, CONTEXTS, rows)
    has_context = rng.random(rows) < 0.5
    y = bu[u] + bi[i] + np.einsum("rk,rk->r", p[u], q[i]) + 0.1 * rng.normal(size=rows)
    counts = 2 + has_context.astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = np.empty(indptr[-1], np.int32)
    indices[indptr[:-1]] = u
    indices[indptr[:-1] + 1] = USERS + i
    indices[indptr[:-1][has_context] + 2] = USERS + ITEMS + context[has_context]
    data = np.ones(len(indices), np.float32)
    x = sp.csr_matrix((data, indices, indptr), shape=(rows, FEATURES))
    return x, y.astype(np.float32)


def settings(epochs: int = 1) -> Settings:
    init = {
        "bias": Init("normal", 0.01, None, None),
        "linear": Init("normal", 0.01, None, None),
        "factors": Init("normal", 0.01, None, None),
    }
    return Settings("regressor", FEATURES, FACTORS, epochs, BATCH, LR, WD, init)


def ours(batches: Batches, epochs: int = 1) -> FMModel:
    return fit(lambda _: batches, settings(epochs))


def anchor(batches: Batches, adam: bool) -> FMModel:
    """A straightforward numpy FM epoch: full-width gradients and updates every batch."""
    s = settings()
    init = s.init or {}
    rng = np.random.default_rng(0)
    w0 = initial(init["bias"], (1,), rng)
    w = initial(init["linear"], (FEATURES,), rng)
    v = initial(init["factors"], (FEATURES, FACTORS), rng)
    params = {"bias": w0, "linear": w, "factors": v}
    moments = {k: (np.zeros_like(a), np.zeros_like(a)) for k, a in params.items()}
    for t, (x, labels) in enumerate(batches, start=1):
        x2 = x.multiply(x).tocsr()
        s_ = np.asarray(x @ v)
        y = w0[0] + x @ w + 0.5 * ((s_ * s_).sum(1) - x2 @ (v * v).sum(1))
        g = (y - labels) / len(labels)
        grads = {
            "bias": np.asarray([g.sum()], np.float32),
            "linear": x.T @ g,
            "factors": x.T @ (g[:, None] * s_) - (x2.T @ g)[:, None] * v,
        }
        for term, param in params.items():
            grad = grads[term] + WD[term] * param
            if not adam:
                param -= (LR[term] * grad).astype(np.float32)
                continue
            m, r = moments[term]
            m *= 0.9
            m += 0.1 * grad
            r *= 0.999
            r += 0.001 * grad * grad
            rate = LR[term] * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            param -= (rate * m / (np.sqrt(r) + 1e-8)).astype(np.float32)
    return FMModel("regressor", float(w0[0]), w, v)


def interleaved(
    contenders: dict[str, Callable[[], FMModel]], runs: int
) -> dict[str, tuple[list[float], FMModel]]:
    """A warm-up each, then `runs` rounds of one epoch per contender in turn, so that a shared
    machine's changing load falls on every contender alike."""
    models = {name: fn() for name, fn in contenders.items()}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            start = time.perf_counter()
            models[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (times[name], models[name]) for name in contenders}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    x, y = make_data(args.rows, 1)
    xt, yt = make_data(20_000, 2)
    batches = [(x[a : a + BATCH], y[a : a + BATCH]) for a in range(0, args.rows, BATCH)]
    contenders: dict[str, Callable[[], FMModel]] = {
        "ours (fit, lazy Adam on used rows)": lambda: ours(batches),
        "ours, 2 epochs": lambda: ours(batches, 2),
        "anchor: numpy SGD, full-width": lambda: anchor(batches, adam=False),
        "anchor: numpy Adam, full-width": lambda: anchor(batches, adam=True),
    }
    results: dict[str, tuple[float, float]] = {}
    for name, (times, model) in interleaved(contenders, args.runs).items():
        rmse = float(np.sqrt(np.mean((model.raw(xt) - yt) ** 2)))
        results[name] = (statistics.median(times), rmse)
        print(f"{name}: {results[name][0]:.2f} s, test RMSE {rmse:.4f}", flush=True)
    baseline = float(np.std(yt))
    table = render(results, args.rows, baseline)
    print(table)
    if args.write:
        write(table, args)


def render(results: dict[str, tuple[float, float]], rows: int, baseline: float) -> str:
    ours_s = next(iter(results.values()))[0]
    lines = [
        "| contender | epochs | s | epochs / s | rows / s | test RMSE | time / ours' epoch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (seconds, rmse) in results.items():
        epochs = 2 if "2 epochs" in name else 1
        per_epoch = seconds / epochs
        lines.append(
            f"| {name} | {epochs} | {seconds:.2f} | {1 / per_epoch:.3f} | "
            f"{rows / per_epoch:,.0f} | {rmse:.4f} | {seconds / ours_s:.2f}x |"
        )
    lines.append(f"\n(test RMSE of predicting the mean: {baseline:.4f}; noise floor 0.1)")
    return "\n".join(lines)


def write(table: str, args: argparse.Namespace) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    command = (
        f"benchmarks/bench_factorization_machines.py --rows {args.rows} --runs {args.runs} --write"
    )
    section = f"""{TITLE}

```
cd /work/main && .venv/bin/python {command}
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  numpy {np.__version__}, scipy {scipy.__version__}; BLAS limited to 1 thread for everyone.
- Load average at the end of the run: {load} (1/5/15 min); the machine is shared with other
  sessions, so figures swing between runs.
- Data: {args.rows:,} click-style rows in memory as CSR mini-batches of {BATCH}: one-hot user
  ({USERS:,}) + item ({ITEMS:,}) + half the rows one of {CONTEXTS} context features (2.5
  nonzeros a row), feature_dim {FEATURES:,}; regression label from planted rank-{RANK}
  interactions + noise 0.1. num_factors {FACTORS}. One epoch per run, median of {args.runs}
  after a warm-up, the contenders' runs interleaved (each round runs every contender once) so
  the shared machine's load swings fall on all alike; test RMSE on 20,000 held-out rows after
  one epoch.
- Ours: the training core `fit.fit` (what the training program runs after decoding), lazy Adam
  on the rows each batch uses. Anchors (torch is not installed; numpy/scipy written
  straightforwardly in the benchmark): the same model and forward pass with full-width
  gradients and updates each batch, plain SGD and dense Adam with the same per-term rates.
- Reading the quality column: dense Adam keeps moving every row with its momentum between the
  batches that use it, so an epoch of it goes further than an epoch of lazy Adam (which, like
  MXNet's row-sparse update, leaves unused rows alone); the "ours, 2 epochs" row shows what a
  second pass buys. Plain SGD at these rates has not left the mean after one epoch.

{table}
"""
    replace_section(TITLE, section)


if __name__ == "__main__":
    main()
