"""LDA built-in benchmark: our spectral fit (core and full training job) against scikit-learn's
online variational LatentDirichletAllocation, on bars data with known topics.

Run from the repository root:

    .venv/bin/python benchmarks/bench_lda.py [--runs N] [--documents N] [--passes N] [--write]

Data (generated once, the same for every contender): `--documents` (50,000) documents over a
20 x 20 grid of words (vocabulary 400) from 40 topics, the 20 rows and 20 columns, each bar's
weights drawn from Dirichlet(100) (nearly uniform, as SageMaker's notebook generator does),
mixtures Dirichlet(1/40 each: alpha0 1), Poisson(150) lengths. Medians of `--runs` runs:

1. Core, data in memory (CSR, 4,096-document blocks): `model.fit`, two passes.
2. Full training job: `python -m opensage.algorithms.lda train` on a temporary /opt/ml tree, the
   documents as one sparse RecordIO-protobuf file, timed from process start to exit.
3. scikit-learn `LatentDirichletAllocation(40, learning_method="online", max_iter=--passes)`
   with the true priors (doc_topic_prior 1/40), on the same CSR matrix.

Recovery error: the 40 found topics matched to the true ones (Hungarian matching on L1
distance); the largest and mean L1 distance between matched topic-word distributions (0: exact,
2: disjoint). `--write` replaces the `## LDA (benchmarks/bench_lda.py)` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import sklearn
from scipy.optimize import linear_sum_assignment

from opensage.algorithms.lda.model import LDAModel, Settings, fit
from opensage.contract import MLPaths
from opensage.formats.tensors import encode_sparse
from results import replace_section

TITLE = "## LDA (benchmarks/bench_lda.py)"
GRID = 20
TOPICS = 2 * GRID
WORDS = GRID * GRID
BLOCK = 4096

Array = np.ndarray[Any, Any]


def make_data(documents: int) -> tuple[sp.csr_matrix, Array]:
    rng = np.random.default_rng(42)
    topics = np.zeros((TOPICS, WORDS))
    for bar in range(GRID):
        topics[bar, bar * GRID : (bar + 1) * GRID] = rng.dirichlet(np.full(GRID, 100.0))
        topics[GRID + bar, bar::GRID] = rng.dirichlet(np.full(GRID, 100.0))
    theta = rng.dirichlet(np.full(TOPICS, 1.0 / TOPICS), size=documents)
    lengths = rng.poisson(150, size=documents)
    words = theta @ topics
    counts = np.stack([rng.multinomial(n, p) for n, p in zip(lengths, words, strict=True)])
    return sp.csr_matrix(counts.astype(np.float64)), topics


def recovery(truth: Array, found: Array) -> tuple[float, float]:
    """Largest and mean L1 distance of Hungarian-matched topics."""
    cost = np.abs(truth[:, None, :] - found[None, :, :]).sum(axis=2)
    rows, columns = linear_sum_assignment(cost)
    matched = cost[rows, columns]
    return float(matched.max()), float(matched.mean())


def core(x: sp.csr_matrix) -> Callable[[], Array]:
    blocks = [x[i : i + BLOCK] for i in range(0, x.shape[0], BLOCK)]
    return lambda: fit(blocks, blocks, WORDS, Settings(TOPICS)).beta


def job(folder: Path, body: Path, documents: int) -> Callable[[], Array]:
    def run() -> Array:
        paths = MLPaths(folder / "job")
        for sub in paths.directories():
            sub.mkdir(parents=True, exist_ok=True)
        channel = paths.channel("train")
        channel.mkdir(parents=True, exist_ok=True)
        target = channel / "part-0.pbr"
        if not target.exists():
            target.symlink_to(body)
        hyperparameters = {
            "feature_dim": str(WORDS),
            "mini_batch_size": str(documents),
            "num_topics": str(TOPICS),
        }
        paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
        paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1"}))
        paths.input_data_config_file.write_text(json.dumps({"train": {}}))
        subprocess.run(
            [sys.executable, "-m", "opensage.algorithms.lda", "train"],
            env={**os.environ, "SAGEMAKER_BASE_DIR": str(paths.base)},
            check=True,
            capture_output=True,
        )
        return LDAModel.load(paths.model).beta

    return run


def scikit_learn(x: sp.csr_matrix, passes: int) -> Callable[[], Array]:
    from sklearn.decomposition import LatentDirichletAllocation

    def run() -> Array:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LatentDirichletAllocation(
                TOPICS,
                doc_topic_prior=1.0 / TOPICS,
                learning_method="online",
                max_iter=passes,
                batch_size=2048,
                random_state=0,
            ).fit(x)
        components = np.asarray(model.components_)
        return components / components.sum(axis=1, keepdims=True)

    return run


def timed(fn: Callable[[], Array], runs: int) -> tuple[list[float], Array]:
    times = []
    result: Array | None = None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--documents", type=int, default=50_000)
    parser.add_argument("--passes", type=int, default=3, help="scikit-learn's max_iter")
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS threads for every contender (0: default)"
    )
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[name] = str(args.threads)  # for the training-job processes

    x, topics = make_data(args.documents)
    results: dict[str, tuple[float, float, float]] = {}

    def record(name: str, fn: Callable[[], Array]) -> None:
        times, beta = timed(fn, args.runs)
        worst, mean = recovery(topics, beta)
        results[name] = (statistics.median(times), worst, mean)
        print(f"{name}: {results[name][0]:.2f} s, L1 max {worst:.3f} mean {mean:.3f}", flush=True)

    record("opensage spectral (core)", core(x))
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "data.pbr"
        body.write_bytes(encode_sparse(x.astype(np.float32)))
        record(
            "opensage spectral (training job, sparse RecordIO)", job(Path(tmp), body, x.shape[0])
        )
    record(f"sklearn LDA online, {args.passes} passes", scikit_learn(x, args.passes))

    table, verdict = render(results, args.passes)
    print(table)
    print(verdict)
    if args.write:
        write_results(table, verdict, args)


def render(results: dict[str, tuple[float, float, float]], passes: int) -> tuple[str, str]:
    anchor = f"sklearn LDA online, {passes} passes"
    lines = [
        "| contender | median s | L1 max | L1 mean | speed-up vs scikit-learn |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (seconds, worst, mean) in results.items():
        ratio = "" if name == anchor else f"{results[anchor][0] / seconds:.1f}x"
        lines.append(f"| {name} | {seconds:.2f} | {worst:.3f} | {mean:.3f} | {ratio} |")
    ours, theirs = results["opensage spectral (core)"], results[anchor]
    verdict = (
        f"- Spectral core: {theirs[0] / ours[0]:.1f}x faster than scikit-learn's online LDA "
        f"({passes} passes); worst topic L1 {ours[1]:.3f} vs {theirs[1]:.3f}, mean {ours[2]:.3f} "
        f"vs {theirs[2]:.3f}."
    )
    return "\n".join(lines), verdict


def write_results(table: str, verdict: str, args: argparse.Namespace) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    command = (
        f"benchmarks/bench_lda.py --runs {args.runs} --documents {args.documents} "
        f"--passes {args.passes} --threads {args.threads} --write"
    )
    section = f"""{TITLE}

```
cd /work/main && .venv/bin/python {command}
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  numpy {np.__version__}, scikit-learn {sklearn.__version__}; BLAS threads
  {args.threads or "default"} for every contender. Load average at the end: {load} (shared
  machine: figures swing between runs).
- Data: {args.documents:,} bars documents, vocabulary {WORDS} (a {GRID} x {GRID} grid),
  {TOPICS} topics (rows and columns, Dirichlet(100) weights within a bar), alpha 1/{TOPICS}
  each, Poisson(150) lengths. Median of {args.runs} runs (no warm-up).
- Recovery: Hungarian matching of found to true topics on L1 distance; worst and mean L1
  (0 exact, 2 disjoint). The near-uniform bars make rows and columns almost linearly
  dependent (exactly so with uniform bars), the hard case for spectral methods: the extra
  whitened directions are kept only above M2's noise level (`model.whitened_dimensions`).
- Core: CSR in memory, two passes in 4,096-document blocks. Training job: the whole program on
  one sparse RecordIO-protobuf file (start, imports, parsing, both passes, model file).
  scikit-learn: online variational Bayes, {args.passes} passes over the same CSR matrix, with
  the true document-topic prior.

{table}

{verdict}
"""
    replace_section(TITLE, section)


if __name__ == "__main__":
    main()
