"""DeepAR built-in benchmark: our forecaster against GluonTS's torch DeepAR (the library
SageMaker's DeepAR descends from) and a seasonal-naive forecast, on a generated panel.

Run from the repository root:

    .venv/bin/python benchmarks/bench_deepar.py [--runs N] [--series N] [--length N]
        [--epochs N] [--write]

Data (generated once, the same for every contender): `--series` (200) daily series of
`--length` (400) points: a level set by one of 5 categories times a per-series factor (so the
levels span two orders of magnitude), a linear trend, a weekly season of random phase and
amplitude, and Gaussian noise of 5% of the level; a few missing values. The last 14 points
(prediction_length) of each series are held out; every contender trains on the rest and
forecasts them.

Contenders, the same budget for both networks: context 28, 2 LSTM layers of 40 cells, dropout
0.1, Student-t likelihood, category embeddings of 10, mini-batches of 64, Adam at 1e-3,
`--epochs` epochs of the same number of batches (ours: enough batches of 42-step windows to
cover the data once), one CPU thread each, 100 sample paths:

1. ours: the training program in-process (`runner.run` on a job folder: parsing, lags, epochs,
   model file), then `DeepARModel.forecast`;
2. GluonTS `gluonts.torch.DeepAREstimator` (lightning trainer) in its own venv
   (`benchmarks/.venv-deepar-anchors`, pins in `benchmarks/anchors/deepar-requirements.txt`,
   created when missing; it reuses the project's torch through a .pth file);
3. seasonal naive: the last week repeated.

Figures: mean wQuantileLoss over the quantiles 0.1..0.9 and RMSE of the mean forecast (as the
built-in logs them, `opensage.algorithms.deepar.evaluation`), training seconds, forecast
seconds; medians over `--runs` runs (GluonTS seeded 0, 1, ...; ours is deterministic, a
training job has a fixed seed, so only its times vary). `--write` replaces the `## DeepAR
(benchmarks/bench_deepar.py)` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opensage.algorithms.deepar.data import parse_record
from opensage.algorithms.deepar.evaluation import score, seasonal_naive
from opensage.algorithms.deepar.model import DeepARModel
from opensage.algorithms.deepar.spec import SPEC
from opensage.algorithms.deepar.train import train
from opensage.algorithms.runner import run
from opensage.contract import MLPaths
from results import replace_section

TITLE = "## DeepAR (benchmarks/bench_deepar.py)"
BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-deepar-anchors"
REQUIREMENTS = BENCH_DIR / "anchors" / "deepar-requirements.txt"
STAMP = ".requirements.sha256"
PREDICTION = 14
CONTEXT = 28
BATCH = 64
CELLS = 40
LAYERS = 2
CATEGORIES = 5
SAMPLES = 100
LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
START = "2020-01-01 00:00:00"
Result = dict[str, float]

ANCHOR = r"""
import json, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
import lightning
from gluonts.dataset.common import ListDataset
from gluonts.torch import DeepAREstimator

job = json.load(open(sys.argv[1]))
lightning.seed_everything(job["seed"], verbose=False)
data = ListDataset(
    [{"start": r["start"], "target": [np.nan if v is None else v for v in r["target"]],
      "feat_static_cat": r["cat"]} for r in job["records"]],
    freq="D",
)
estimator = DeepAREstimator(
    freq="D", prediction_length=job["prediction"], context_length=job["context"],
    num_layers=job["layers"], hidden_size=job["cells"], dropout_rate=0.1,
    num_feat_static_cat=1, cardinality=[job["categories"]], embedding_dimension=[10],
    batch_size=job["batch"], num_batches_per_epoch=job["batches"], lr=1e-3,
    num_parallel_samples=job["samples"],
    trainer_kwargs={"max_epochs": job["epochs"], "accelerator": "cpu",
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "logger": False, "default_root_dir": job["root"]},
)
t0 = time.perf_counter()
predictor = estimator.train(data, cache_data=True)
trained = time.perf_counter() - t0
t0 = time.perf_counter()
samples = np.stack([f.samples for f in predictor.predict(data)])
forecast = time.perf_counter() - t0
np.save(sys.argv[2], samples)
print(json.dumps({"train_s": trained, "forecast_s": forecast}))
"""


def make_panel(series: int, length: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    records = []
    for i in range(series):
        group = i % CATEGORIES
        level = (10 + 20 * group) * float(np.exp(rng.uniform(-1.5, 1.5)))
        season = rng.uniform(0.1, 0.4) * level * np.sin(2 * np.pi * t / 7 + rng.uniform(0, 7))
        trend = rng.uniform(-0.5, 1.0) * level * t / length
        y = level + trend + season + rng.normal(0, 0.05 * level, length)
        target: list[Any] = [round(float(v), 4) for v in y]
        for k in rng.choice(length - PREDICTION, size=3, replace=False):
            target[int(k)] = None
        records.append({"start": START, "target": target, "cat": [group]})
    return records


def split(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], np.ndarray]:
    history = [{**r, "target": r["target"][:-PREDICTION]} for r in records]
    truth = np.array([r["target"][-PREDICTION:] for r in records], dtype=np.float64)
    return history, truth


def batches_per_epoch(history: list[dict[str, Any]]) -> int:
    """Ours: enough windows of context + prediction steps to cover the observations once."""
    observed = sum(sum(v is not None for v in r["target"]) for r in history)
    return max(1, math.ceil(observed / (BATCH * (CONTEXT + PREDICTION))))


def metrics(truth: np.ndarray, samples: np.ndarray) -> Result:
    found = score(truth, samples, LEVELS)
    return {"wql": found.mean_weighted_quantile_loss, "rmse": found.rmse}


def ours(history: list[dict[str, Any]], truth: np.ndarray, epochs: int, base: Path) -> Result:
    paths = MLPaths(base)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    hyperparameters = {
        "time_freq": "D",
        "context_length": str(CONTEXT),
        "prediction_length": str(PREDICTION),
        "epochs": str(epochs),
        "num_cells": str(CELLS),
        "num_layers": str(LAYERS),
        "mini_batch_size": str(BATCH),
        "learning_rate": "0.001",
        "dropout_rate": "0.1",
        "likelihood": "student-T",
        "embedding_dimension": "10",
    }
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1"}))
    channel = paths.channel("train")
    channel.mkdir(parents=True, exist_ok=True)
    (channel / "train.json").write_text("".join(json.dumps(r) + "\n" for r in history))
    paths.input_data_config_file.write_text(json.dumps({"train": {}}))
    t0 = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        saved = sys.stdout
        sys.stdout = quiet
        try:
            code = run(SPEC, train, paths)
        finally:
            sys.stdout = saved
    trained = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(paths.failure_file.read_text())
    model = DeepARModel.load(paths.model)
    series = [parse_record(r) for r in history]
    t0 = time.perf_counter()
    samples = model.forecast(series, SAMPLES)
    forecast = time.perf_counter() - t0
    return {**metrics(truth, samples), "train_s": trained, "forecast_s": forecast}


def naive(history: list[dict[str, Any]], truth: np.ndarray) -> Result:
    t0 = time.perf_counter()
    values = [np.array([np.nan if v is None else v for v in r["target"]]) for r in history]
    point = seasonal_naive(values, 7, PREDICTION)
    seconds = time.perf_counter() - t0
    return {**metrics(truth, point[:, None, :]), "train_s": 0.0, "forecast_s": seconds}


def ensure_venv() -> str | None:
    """Create or refresh the anchor's venv; why it cannot be used, or None when ready."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / STAMP
    python = VENV / "bin" / "python"
    if stamp.exists() and stamp.read_text().strip() == wanted and python.exists():
        return None
    print(f"creating {VENV} from {REQUIREMENTS.name} ...", flush=True)
    log = VENV / "install.log"
    try:
        if VENV.exists():
            subprocess.run(["rm", "-rf", str(VENV)], check=True)
        VENV.mkdir(parents=True)
        with log.open("wb") as out:
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(VENV)], check=True, stdout=out)
            purelib = subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            ours = next(p for p in sys.path if p.endswith("site-packages"))
            (Path(purelib) / "opensage-project-venv.pth").write_text(ours + "\n")
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    except (OSError, subprocess.CalledProcessError, StopIteration) as exc:
        return f"pip could not build {VENV.name} ({exc}); see {log}"
    stamp.write_text(wanted + "\n")
    return None


def gluonts(
    history: list[dict[str, Any]], truth: np.ndarray, epochs: int, seed: int, base: Path
) -> Result:
    job = {
        "records": history,
        "seed": seed,
        "prediction": PREDICTION,
        "context": CONTEXT,
        "layers": LAYERS,
        "cells": CELLS,
        "categories": CATEGORIES,
        "batch": BATCH,
        "batches": batches_per_epoch(history),
        "epochs": epochs,
        "samples": SAMPLES,
        "root": str(base / "lightning"),
    }
    (base / "job.json").write_text(json.dumps(job))
    out = base / "samples.npy"
    proc = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", ANCHOR, str(base / "job.json"), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    times = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**metrics(truth, np.load(out)), **times}


def median(runs: list[Result]) -> Result:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--length", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # ours keeps it: configure_threads obeys it
    torch.set_num_threads(1)  # torch read the variable at import, before this ran
    importlib.import_module("torch._dynamo")  # torch.optim imports it at its first step

    history, truth = split(make_panel(args.series, args.length, 0))
    results: dict[str, list[Result]] = {"ours": [], "gluonts": [], "naive": [naive(history, truth)]}
    skipped = ensure_venv()
    if skipped:
        print(f"GluonTS anchor skipped: {skipped}")
    for seed in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(seed)
            found = ours(history, truth, args.epochs, Path(tmp) / "ours")
            print(f"ours seed {seed}: {found}", flush=True)
            results["ours"].append(found)
            if not skipped:
                found = gluonts(history, truth, args.epochs, seed, Path(tmp))
                print(f"gluonts seed {seed}: {found}", flush=True)
                results["gluonts"].append(found)
    summary = {name: median(runs) for name, runs in results.items() if runs}
    table, verdict = render(summary, skipped)
    print(table)
    print(verdict)
    if args.write:
        write_results(table, verdict, args, history, skipped)


NAMES = {
    "ours": "opensage DeepAR (training job in-process)",
    "gluonts": "GluonTS torch DeepAREstimator",
    "naive": "seasonal naive (last week)",
}


def render(summary: dict[str, Result], skipped: str | None) -> tuple[str, str]:
    lines = [
        "| contender | mean wQuantileLoss | RMSE | training s | forecast s |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, found in summary.items():
        lines.append(
            f"| {NAMES[key]} | {found['wql']:.4f} | {found['rmse']:.3f} | "
            f"{found['train_s']:.1f} | {found['forecast_s']:.2f} |"
        )
    ours, naive_ = summary["ours"], summary["naive"]
    change = 100 * (ours["wql"] / naive_["wql"] - 1)
    outcome = (
        f"beats it, {-change:.0f}% lower"
        if change < 0
        else f"does NOT beat it, {change:.0f}% higher"
    )
    verdict = (
        f"- Ours vs seasonal naive: mean wQuantileLoss {ours['wql']:.4f} vs {naive_['wql']:.4f} "
        f"({outcome})."
    )
    if "gluonts" in summary:
        theirs = summary["gluonts"]
        ratio = ours["wql"] / theirs["wql"]
        within = "within" if ratio <= 1.10 else "NOT within"
        verdict += (
            f"\n- Ours vs GluonTS: mean wQuantileLoss ratio {ratio:.3f} ({within} the 10% target), "
            f"RMSE ratio {ours['rmse'] / theirs['rmse']:.3f}, training time ratio "
            f"{ours['train_s'] / theirs['train_s']:.2f} (ours / theirs)."
        )
    else:
        verdict += f"\n- GluonTS not compared: {skipped}"
    return "\n".join(lines), verdict


def write_results(
    table: str,
    verdict: str,
    args: argparse.Namespace,
    history: list[dict[str, Any]],
    skipped: str | None,
) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    command = (
        f"benchmarks/bench_deepar.py --runs {args.runs} --series {args.series} --length "
        f"{args.length} --epochs {args.epochs} --write"
    )
    anchor = "not available" if skipped else "gluonts 0.17.0, lightning 2.6.6"
    section = f"""{TITLE}

```
cd /work/main && .venv/bin/python {command}
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  torch {torch.__version__} (CPU, one thread per contender), numpy {np.__version__}. Anchor
  venv `benchmarks/.venv-deepar-anchors`: {anchor} (on the project's torch). Load average at
  the end: {load} (shared machine: times swing between runs).
- Data: {args.series} daily series of {args.length} points (5 categories setting the level,
  a per-series factor spanning e^-1.5..e^1.5, trend, weekly season, 5% noise, 3 missing values
  each); the last {PREDICTION} points held out.
- Budget, both networks: context {CONTEXT}, {LAYERS} x {CELLS} LSTM, dropout 0.1, Student-t,
  embeddings of 10, batch {BATCH}, Adam 1e-3, {args.epochs} epochs x
  {batches_per_epoch(history)} batches, {SAMPLES} sample paths. Medians over {args.runs} runs:
  GluonTS seeded 0..{args.runs - 1}; ours is a training job with its fixed seed (deterministic:
  the same model every run), so its runs differ only in time.
- Metrics as the built-in logs them: mean of wQuantileLoss[0.1..0.9] and RMSE of the mean
  forecast over all held-out points.

{table}

{verdict}
"""
    replace_section(TITLE, section)


if __name__ == "__main__":
    main()
