"""IP Insights built-in benchmark: training and scoring throughput on generated logins.

Run from the repository root:

    .venv/bin/python benchmarks/bench_ipinsights.py [--pairs N] [--runs N] [--write]

Data (generated once): `--pairs` (1,000,000) logins of `--pairs / 20` users, each with three
home /24 subnets, from random hosts of them. Settings: vector_dim 128, mini_batch_size 10,000,
one random and one shuffled negative per positive (R = S = 1), one encoder layer,
num_entity_vectors twice the users. Figures, medians of `--runs` runs:

1. Reading: `read_channel` on the logins as one CSV file (parse, address and entity hashing):
   rows/s.
2. Training: one epoch of `fit` (ours: lazy row-wise Adam, row sums as a 0/1 CSR product, one
   encoder pass for positives and random negatives, shuffled negatives reusing the positives'
   encodings), in pairs/s (positives + negatives). No published anchor exists (the issue names
   none); the anchor is a plain numpy implementation of the same step written below: `np.add.at`
   into full-size gradient tables and dense Adam over every table row each step, timed over
   `--plain-batches` mini-batches.
3. Scoring: the serving handler answering a CSV request of `--request-rows` (50,000) pairs with
   JSON, in pairs/s (parsing, hashing, encoding, scoring, JSON writing).

`--write` replaces the `## IP Insights (benchmarks/bench_ipinsights.py)` section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from opensage.algorithms.ipinsights.data import read_channel
from opensage.algorithms.ipinsights.fit import Logins, Settings, draw, fit
from opensage.algorithms.ipinsights.hashing import entity_rows, format_ipv4, prefix_rows
from opensage.algorithms.ipinsights.model import IPInsightsModel
from opensage.algorithms.ipinsights.serve import IPInsightsHandler
from results import replace_section

TITLE = "## IP Insights (benchmarks/bench_ipinsights.py)"
DIM = 128
BATCH = 10_000

Array = np.ndarray[Any, Any]


def make_logins(pairs: int) -> tuple[list[str], Array]:
    users = max(pairs // 20, 1)
    rng = np.random.default_rng(42)
    homes = rng.integers(0, 1 << 24, size=(users, 3), dtype=np.int64)
    user = rng.integers(0, users, pairs)
    ips = (homes[user, rng.integers(0, 3, pairs)] << 8) | rng.integers(0, 256, pairs)
    return [f"user_{u}" for u in user.tolist()], ips.astype(np.uint32)


def timed(fn: Callable[[], Any], runs: int, warm: bool = True) -> list[float]:
    if warm:
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


# --- the plain anchor: the same step, written the obvious way ----------------------------------


class PlainStep:
    """Forward and backward as in `model.loss_and_gradients`, but gradients accumulated with
    `np.add.at` into zeroed full-size tables and Adam applied densely to every parameter."""

    def __init__(self, model: IPInsightsModel, learning_rate: float = 0.001) -> None:
        self.model = model
        self.lr = learning_rate
        self.params = [model.entity, model.prefix, *model.weights, *model.biases]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def __call__(self, entities: Array, ips: Array, random: Array, perm: Array) -> None:
        model = self.model
        n = len(entities)
        e = model.entity[entities]
        all_ips = np.concatenate([ips, random])
        rows = prefix_rows(all_ips, model.buckets)
        h, cache = model.forward(rows)
        pos, rnd, shf = h[:n], h[n:], h[:n][perm]
        total = 3 * n
        g_pos = (1 / (1 + np.exp(-np.sum(e * pos, 1))) - 1) / total
        g_rnd = (1 / (1 + np.exp(-np.sum(e * rnd, 1)))) / total
        g_shf = (1 / (1 + np.exp(-np.sum(e * shf, 1)))) / total
        grad_e = g_pos[:, None] * pos + g_rnd[:, None] * rnd + g_shf[:, None] * shf
        grad_h = np.zeros_like(h)
        grad_h[:n] = g_pos[:, None] * e
        grad_h[n:] = g_rnd[:, None] * e
        np.add.at(grad_h, perm, g_shf[:, None] * e)
        grads_w, grads_b = [], []
        for weight, (x, a) in zip(reversed(model.weights), reversed(cache), strict=True):
            gz = grad_h * (1 - a * a)
            grads_w.append(x.T @ gz)
            grads_b.append(gz.sum(0))
            grad_h = grad_h + gz @ weight.T
        entity_grad = np.zeros_like(model.entity)
        np.add.at(entity_grad, entities, grad_e)
        prefix_grad = np.zeros_like(model.prefix)
        for k in range(4):
            np.add.at(prefix_grad, rows[:, k], grad_h)
        grads = [entity_grad, prefix_grad, *grads_w[::-1], *grads_b[::-1]]
        self.t += 1
        rate = self.lr * np.sqrt(1 - 0.999**self.t) / (1 - 0.9**self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m[:] = 0.9 * m + 0.1 * g
            v[:] = 0.999 * v + 0.001 * g * g
            p -= rate * m / (np.sqrt(v) + 1e-8)


def plain_pairs_per_second(data: Logins, settings: Settings, batches: int) -> float:
    model = IPInsightsModel.initial(settings.num_entity_vectors, DIM, 1, seed=0)
    step = PlainStep(model)
    rng = np.random.default_rng(0)
    order = rng.permutation(data.n)
    chunks = [order[i * BATCH : (i + 1) * BATCH] for i in range(batches)]
    drawn = [draw(rng, data, chosen, settings) for chosen in chunks]
    step(drawn[0].entities, drawn[0].ips, drawn[0].random[0], drawn[0].shuffles[0])  # warm-up
    start = time.perf_counter()
    for pairs in drawn:
        step(pairs.entities, pairs.ips, pairs.random[0], pairs.shuffles[0])
    return 3 * BATCH * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plain-batches", type=int, default=5)
    parser.add_argument("--request-rows", type=int, default=50_000)
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS threads for every contender (0: BLAS default)"
    )
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)

    entities, ips = make_logins(args.pairs)
    users = max(args.pairs // 20, 1)
    settings = Settings(num_entity_vectors=2 * users, vector_dim=DIM, epochs=1,
                        mini_batch_size=BATCH)  # fmt: skip
    results: dict[str, str] = {}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text = "".join(
            f"{e}, {format_ipv4(int(ip))}\n" for e, ip in zip(entities, ips.tolist(), strict=True)
        )
        (folder / "part-0.csv").write_text(text)
        size_mb = (folder / "part-0.csv").stat().st_size / 1e6
        read_times = timed(lambda: read_channel(folder, "train", 2 * users), args.runs, warm=False)
    read = statistics.median(read_times)
    results["reading (read_channel, CSV file)"] = (
        f"{args.pairs / read:,.0f} rows/s ({size_mb:.0f} MB in {read:.2f} s)"
    )
    print(results, flush=True)

    data = Logins(entity_rows(entities, 2 * users), ips)
    train_times = timed(lambda: fit(settings, data), args.runs, warm=False)
    train = statistics.median(train_times)
    ours = 3 * args.pairs / train
    results["training, ours (one epoch of fit)"] = f"{ours:,.0f} pairs/s ({train:.2f} s per epoch)"
    print(results, flush=True)
    plain = plain_pairs_per_second(data, settings, args.plain_batches)
    results["training, plain numpy step (anchor)"] = f"{plain:,.0f} pairs/s"
    results["training speed-up over the plain step"] = f"{ours / plain:.1f}x"
    print(results, flush=True)

    model = IPInsightsModel.initial(2 * users, DIM, 1, seed=0)
    handler = IPInsightsHandler(model, {})
    rows = args.request_rows
    body = "".join(
        f"{e}, {format_ipv4(int(ip))}\n"
        for e, ip in zip(entities[:rows], ips[:rows].tolist(), strict=True)
    ).encode()
    score_times = timed(
        lambda: handler.invoke(body, "text/csv", "application/json", None), args.runs
    )
    score = statistics.median(score_times)
    results["scoring (handler, CSV -> JSON)"] = (
        f"{rows / score:,.0f} pairs/s ({rows:,} rows in {score * 1000:.0f} ms)"
    )
    for name, value in results.items():
        print(f"{name}: {value}")
    if args.write:
        write_results(results, args)


def write_results(results: dict[str, str], args: argparse.Namespace) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    command = f"benchmarks/bench_ipinsights.py --pairs {args.pairs} --runs {args.runs} --write"
    table = "\n".join(["| measure | result |", "|---|---|"]
                      + [f"| {name} | {value} |" for name, value in results.items()])  # fmt: skip
    section = f"""{TITLE}

```
cd /work/main && .venv/bin/python {command}
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  numpy {np.__version__}; BLAS threads: {args.threads or "OpenBLAS default"}.
- Load average at the end of the run: {load} (1/5/15 min); the machine is shared with other
  sessions, so figures swing between runs.
- Data: {args.pairs:,} generated logins of {args.pairs // 20:,} users (three home /24 subnets
  each); vector_dim {DIM}, mini_batch_size {BATCH:,}, R = S = 1 (3 pairs per login), one encoder
  layer, num_entity_vectors {2 * (args.pairs // 20):,}. Medians of {args.runs} runs.
- No anchor is named by the issue. The anchor row is the same step written plainly in the
  benchmark (`np.add.at` into zeroed full-size gradient tables, dense Adam over every
  parameter each step), timed over {args.plain_batches} mini-batches: what lazy row-wise Adam
  and CSR row sums buy. Scoring goes through the serving handler (CSV in, JSON out).

{table}
"""
    replace_section(TITLE, section)


if __name__ == "__main__":
    main()
