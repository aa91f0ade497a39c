"""Formats benchmark: RecordIO-protobuf and CSV reads against the SageMaker SDK and pandas.

Run from the repository root:

    .venv/bin/python benchmarks/bench_formats.py [--runs N] [--sdk-python PATH] [--write]

Same files, same run, medians of `--runs` timed reads (after one untimed warm-up each):

1. RecordIO-protobuf, dense float32 with labels and sparse float32 with labels, written by
   `opensage.formats`: our `read_tensors` (the whole file to a numpy array / CSR matrix, plus
   labels) and our streaming `read_batches`, against the SageMaker SDK v2's own
   `sagemaker.amazon.common.read_records` (a list of protobuf `Record`s, not yet arrays), run in
   the SDK's virtualenv as a subprocess (`--sdk-python`, default /tmp/sm-sdk-venv/bin/python;
   create it with `python3 -m venv /tmp/sm-sdk-venv && /tmp/sm-sdk-venv/bin/pip install
   "sagemaker<3" scipy`). For context the SDK figure is also given with the conversion to a
   numpy array a user then needs.
2. CSV (label first, no header, float32): our `read_csv` against `pandas.read_csv(header=None,
   dtype=float32)`.

Each reader opens the file itself; files sit in the page cache after the warm-up. `--write`
replaces this script's `## Formats: ... read throughput` section of benchmarks/RESULTS.md with
this run's table.
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse

from opensage.formats.csv import encode_csv, read_csv
from opensage.formats.tensors import encode_dense, encode_sparse, read_batches, read_tensors
from results import replace_section

SDK_SCRIPT = r"""
import json, sys, time, statistics
import numpy as np
from sagemaker.amazon.common import read_records
path, runs, convert = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"

def once():
    with open(path, "rb") as f:
        records = read_records(f)
    if convert:
        sparse = len(records[0].features["values"].float32_tensor.keys) > 0
        if sparse:
            [(np.array(r.features["values"].float32_tensor.keys),
              np.array(r.features["values"].float32_tensor.values)) for r in records]
        else:
            np.array([r.features["values"].float32_tensor.values for r in records], np.float32)
        np.array([r.label["values"].float32_tensor.values[0] for r in records], np.float32)
    return len(records)

once()
times = []
for _ in range(runs):
    t = time.perf_counter(); n = once(); times.append(time.perf_counter() - t)
import sagemaker
print(json.dumps({"times": times, "records": n, "version": sagemaker.__version__}))
"""


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    fn()  # warm-up: page cache, imports, allocator
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def interleaved(
    first: Callable[[], Any], second: Callable[[], Any], runs: int
) -> tuple[list[float], list[float]]:
    """Both readers timed in alternation (after one warm-up each), so that the shared machine's
    load drifts over both alike rather than over whichever ran second."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return times


def sdk_times(python: str, path: Path, runs: int, convert: bool) -> dict[str, Any]:
    env = {**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}
    proc = subprocess.run(
        [python, "-c", SDK_SCRIPT, str(path), str(runs), "1" if convert else "0"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def make_files(folder: Path, quick: bool) -> dict[str, tuple[Path, int]]:
    rng = np.random.default_rng(7)
    n_dense, n_sparse, n_csv = (20_000, 5_000, 20_000) if quick else (200_000, 50_000, 200_000)
    dense = rng.normal(size=(n_dense, 100)).astype(np.float32)
    labels = rng.integers(0, 2, size=n_dense).astype(np.float32)
    sparse = scipy.sparse.random(
        n_sparse, 1000, density=0.02, format="csr", dtype=np.float32, rng=rng
    )
    files = {
        "dense": (folder / "dense.pbr", n_dense),
        "sparse": (folder / "sparse.pbr", n_sparse),
        "csv": (folder / "data.csv", n_csv),
    }
    files["dense"][0].write_bytes(encode_dense(dense, labels))
    files["sparse"][0].write_bytes(encode_sparse(sparse, labels[:n_sparse]))
    csv_rows = rng.normal(size=(n_csv, 49)).astype(np.float32)
    files["csv"][0].write_bytes(encode_csv(csv_rows, labels[:n_csv] if n_csv <= n_dense else None))
    return files


def row(name: str, times: list[float], size: int, records: int, base: float | None) -> str:
    median = statistics.median(times)
    ratio = f"{base / median:.1f}x" if base else ""
    return (
        f"| {name:<48} | {median * 1000:9.1f} | {size / 1e6 / median:8.1f} | "
        f"{records / median:12,.0f} | {ratio:>6} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sdk-python", default="/tmp/sm-sdk-venv/bin/python")
    parser.add_argument("--quick", action="store_true", help="10x smaller files")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternations of the SDK's runs and ours"
    )
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()

    lines = [
        f"| {'reader':<48} | median ms |     MB/s |    records/s | vs ref |",
        f"|{'-' * 50}|----------:|---------:|-------------:|-------:|",
    ]
    sdk_version = "not run"
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.quick)
        for kind in ("dense", "sparse"):
            path, n = files[kind]
            size = path.stat().st_size
            have_sdk = Path(args.sdk_python).exists()
            base = None

            def whole(path: Path = path) -> None:
                with path.open("rb") as f:
                    read_tensors(f)

            def stream(path: Path = path) -> None:
                with path.open("rb") as f:
                    for _ in read_batches(f):
                        pass

            # Rounds of the SDK's runs then ours, pooled: the shared machine's load drifts over
            # both alike rather than over whichever ran in a quieter minute.
            sdk_pool: list[float] = []
            whole_times: list[float] = []
            for _ in range(args.rounds):
                if have_sdk:
                    sdk = sdk_times(args.sdk_python, path, args.runs, convert=False)
                    sdk_version = sdk["version"]
                    assert sdk["records"] == n
                    sdk_pool += sdk["times"]
                whole_times += timed(whole, args.runs)
            if have_sdk:
                base = statistics.median(sdk_pool)
                lines.append(row(f"{kind}: SDK read_records (reference)", sdk_pool, size, n, None))
                conv = sdk_times(args.sdk_python, path, args.runs, convert=True)
                lines.append(
                    row(f"{kind}: SDK read_records + to numpy", conv["times"], size, n, base)
                )
            if base:
                ratios[kind] = base / statistics.median(whole_times)
            lines.append(row(f"{kind}: opensage read_tensors", whole_times, size, n, base))
            lines.append(
                row(
                    f"{kind}: opensage read_batches (streaming)",
                    timed(stream, args.runs),
                    size,
                    n,
                    base,
                )
            )
        path, n = files["csv"]
        size = path.stat().st_size

        def pandas_csv() -> None:
            pd.read_csv(path, header=None, dtype=np.float32)

        def ours_csv() -> None:
            with path.open("rb") as f:
                read_csv(f, label_size=1)

        pandas_times, ours_times = interleaved(pandas_csv, ours_csv, args.runs)
        ratios["csv"] = statistics.median(pandas_times) / statistics.median(ours_times)
        lines.append(row("csv: pandas.read_csv (reference)", pandas_times, size, n, None))
        lines.append(
            row("csv: opensage read_csv", ours_times, size, n, statistics.median(pandas_times))
        )
        sizes = {k: f"{p.stat().st_size / 1e6:.1f} MB" for k, (p, _) in files.items()}

    verdict = [
        f"- Targets: RecordIO-protobuf >= 10x the SDK's reader: dense "
        f"{ratios.get('dense', 0):.1f}x ({'met' if ratios.get('dense', 0) >= 10 else 'NOT met'}),"
        f" sparse {ratios.get('sparse', 0):.1f}x "
        f"({'met' if ratios.get('sparse', 0) >= 10 else 'NOT met'}); "
        f"CSV >= pandas: {ratios['csv']:.2f}x ({'met' if ratios['csv'] >= 1 else 'NOT met'})."
    ]
    table = "\n".join(lines)
    print(table)
    print(verdict[0])
    if args.write:
        write_results(table + "\n\n" + "\n".join(verdict), args, sizes, sdk_version)


def write_results(table: str, args: argparse.Namespace, sizes: dict[str, str], sdk: str) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    flags = " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
        for k, v in (("runs", args.runs), ("rounds", args.rounds), ("quick", args.quick))
        if v
    )
    title = "## Formats: RecordIO-protobuf and CSV read throughput (`benchmarks/bench_formats.py`)"
    section = f"""{title}

```
cd /work/main && .venv/bin/python benchmarks/bench_formats.py {flags} --write
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  numpy {np.__version__}, pandas {pd.__version__}; SageMaker SDK {sdk} (its own venv, a subprocess)
- Files: dense {sizes["dense"]} (200,000 x 100 float32 + float32 label), sparse {sizes["sparse"]}
  (50,000 x 1,000 at 2 % float32 + label), CSV {sizes["csv"]} (200,000 rows, label + 49 floats)
  {"(--quick: a tenth of these rows)" if args.quick else "(written by opensage.formats)"}
- Load average at the end of the run: {load} (1/5/15 min);
  the 2-CPU machine is shared with other sessions, so figures swing between runs.
- Median of {args.runs} timed runs after one warm-up ({args.rounds} rounds of the SDK's runs then
  ours, pooled, for RecordIO-protobuf); "vs ref" is the reference's median time
  divided by this reader's (the SDK's `read_records` for RecordIO-protobuf, pandas for CSV).
  The two CSV readers run in alternation, so load drifts over both alike.
- The SDK's `read_records` returns protobuf messages; ours return numpy arrays / CSR matrices and
  labels, which the SDK figure "+ to numpy" also includes.

{table}
"""
    replace_section(title, section)


if __name__ == "__main__":
    sys.exit(main())
