"""BlazingText built-in benchmark: our word2vec (cbow, skipgram, batch_skipgram) against gensim
and fastText, and our supervised classifier against fastText's, in one run on the same corpora
and the same threads.

Run from the repository root:

    .venv/bin/python benchmarks/bench_blazingtext.py [--repeats N] [--epochs N] [--threads N]
        [--device cpu|cuda] [--corpus-repeat N] [--quality-repeat N] [--write]

The anchors run from their own venv, `benchmarks/.venv-text-anchors` (pins in
`benchmarks/anchors/text-requirements.txt`), created when missing and rebuilt when the pins
change. Data never comes from the network: the word2vec corpus is gensim's
`test_data/lee_background.cor` (about 60k words; lower-cased and split into word tokens once,
the same file for everyone, `--corpus-repeat` times over) and `mean_rho` is Spearman's rho on
gensim's `test_data/wordsim353.tsv` (WS-353), both read from the anchors' gensim wheel; every
contender's vectors are scored by the same code (ours: case-insensitive, pairs with an unknown
word left out, as gensim's `evaluate_word_pairs`). The classification set is generated
(`opensage.algorithms.blazingtext.synthetic.labelled_sentences`: 6 topics sharing words, with
noise; 19,000 training and 1,000 test lines).

Settings shared by all: vector_dim 100, window 5, negative 5, min_count 5, subsampling 1e-3,
no subwords, learning rate 0.025 (skipgram, batch_skipgram) or 0.05 (cbow), `--epochs`
epochs; supervised: word_ngrams 2, 5 epochs, learning rate 0.1, dim 100, min_count 1, 2M
buckets. Speed is words/s of training time only (corpus words x epochs / seconds, the same word
count for everyone); medians of `--repeats` runs. Ours trains with `--threads` threads too: on
the CPU the compiled fastText loop (`_fasttext.c`, Hogwild threads) when it is built, else the
PyTorch path (whose intra-op threads are sized to a step's work, as the training job does; the
"per thread" column then divides by those). `--device cuda` runs ours on a GPU (the anchors
stay on the CPU). `--quality-repeat N` adds a second comparison of mean_rho with gensim (cbow,
skipgram) on the corpus N times over, past the small corpus's noisy early stage. `--write`
replaces the `## BlazingText (benchmarks/bench_blazingtext.py)` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opensage.algorithms.blazingtext import native
from opensage.algorithms.blazingtext.classifier import (
    ClassifierSettings,
    ClassifierTrainer,
    accuracy,
    parse_lines,
)
from opensage.algorithms.blazingtext.evaluation import case_insensitive, evaluate, read_pairs
from opensage.algorithms.blazingtext.synthetic import labelled_sentences
from opensage.algorithms.blazingtext.text import Vocabulary
from opensage.algorithms.blazingtext.word2vec import (
    Settings,
    Word2Vec,
    configure_threads,
    encode_corpus,
)
from results import replace_section

TITLE = "## BlazingText (benchmarks/bench_blazingtext.py)"
BENCH_DIR = Path(__file__).resolve().parent
REQUIREMENTS = BENCH_DIR / "anchors" / "text-requirements.txt"
VENV = BENCH_DIR / ".venv-text-anchors"
STAMP = "requirements.sha256"
DIM, WINDOW, NEGATIVE, MIN_COUNT, SAMPLE = 100, 5, 5, 5, 1e-3
LR = {"skipgram": 0.025, "batch_skipgram": 0.025, "cbow": 0.05}
SUP_EPOCHS, SUP_LR, SUP_NGRAMS, SUP_BUCKETS = 5, 0.1, 2, 2_000_000

ANCHOR = r"""
import json, sys, time
kind, mode, corpus, out, epochs, lr, threads = sys.argv[1:8]
epochs, lr, threads = int(epochs), float(lr), int(threads)
if kind == "gensim":
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence
    sentences = list(LineSentence(corpus))
    t = time.perf_counter()
    m = Word2Vec(sentences, vector_size=100, window=5, min_count=5, sg=int(mode == "skipgram"),
                 negative=5, sample=1e-3, alpha=lr, epochs=epochs, workers=threads, seed=1)
    seconds = time.perf_counter() - t
    m.wv.save_word2vec_format(out)
elif kind == "fasttext":
    import fasttext
    t = time.perf_counter()
    m = fasttext.train_unsupervised(corpus, model=mode, lr=lr, dim=100, ws=5, epoch=epochs,
                                    minCount=5, neg=5, t=1e-3, minn=0, maxn=0, thread=threads,
                                    verbose=0)
    seconds = time.perf_counter() - t
    with open(out, "w") as f:
        words = m.words
        f.write(f"{len(words)} 100\n")
        for w in words:
            f.write(w + " " + " ".join(f"{x:.6g}" for x in m.get_word_vector(w)) + "\n")
else:  # fastText supervised: corpus = train file, out = test file
    import fasttext
    t = time.perf_counter()
    m = fasttext.train_supervised(corpus, lr=lr, epoch=epochs, wordNgrams=2, dim=100,
                                  minCount=1, bucket=2000000, thread=threads, verbose=0)
    seconds = time.perf_counter() - t
    n, p, r = m.test(out)
    print(json.dumps({"seconds": seconds, "accuracy": p}))
    sys.exit(0)
print(json.dumps({"seconds": seconds}))
"""


def ensure_venv() -> str | None:
    """Create or refresh the anchors' venv; why the anchors are skipped, or None."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / STAMP
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return None
    print(f"creating {VENV} from {REQUIREMENTS.name} ...", flush=True)
    log = VENV / "install.log"
    try:
        if VENV.exists():
            shutil.rmtree(VENV)
        VENV.mkdir(parents=True)
        base = getattr(sys, "_base_executable", sys.executable)
        with log.open("wb") as out:
            subprocess.run([base, "-m", "venv", str(VENV)], check=True, stdout=out)
            subprocess.run(
                [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                 str(REQUIREMENTS)],
                check=True, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"pip could not build the anchors' venv ({exc}); see {log}"
    stamp.write_text(wanted + "\n")
    return None


def gensim_data() -> Path:
    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-c",
         "from gensim.test.utils import datapath; print(datapath(''))"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    folder = Path(out.stdout.strip())
    for name in ("lee_background.cor", "wordsim353.tsv"):
        if not (folder / name).is_file():
            raise SystemExit(f"gensim's wheel lacks test_data/{name}: cannot benchmark offline")
    return folder


def prepare(folder: Path, tmp: Path, repeat: int) -> tuple[Path, list[list[str]]]:
    tokens = [
        re.findall(r"[a-z0-9]+(?:'[a-z]+)?", line.lower())
        for line in (folder / "lee_background.cor").read_text(encoding="utf-8").splitlines()
    ]
    lines = [line for line in tokens if line] * repeat
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n".join(" ".join(line) for line in lines) + "\n")
    return corpus, lines


def rho_of(words: list[str], vectors: np.ndarray, pairs_file: Path) -> float:
    index = case_insensitive(words)
    report = evaluate(
        read_pairs(pairs_file), lambda w: vectors[index[w.lower()]] if w.lower() in index else None
    )
    return float(report["spearmans_rho"])


def read_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(encoding="utf-8") as stream:
        stream.readline()
        rows = [line.rstrip("\n").split(" ") for line in stream]
    return [r[0] for r in rows], np.asarray([r[1:] for r in rows], dtype=np.float32)


def ours_word2vec(
    mode: str, lines: list[list[str]], epochs: int, where: torch.device, seed: int, threads: int
) -> tuple[float, list[str], np.ndarray, int]:
    vocab = Vocabulary.build(Counter(t for line in lines for t in line), MIN_COUNT)
    corpus = encode_corpus(lines, vocab)
    settings = Settings(
        mode, DIM, WINDOW, NEGATIVE, SAMPLE, LR[mode], epochs, seed=seed, threads=threads
    )
    model = Word2Vec(settings, vocab, where)
    configure_threads(model.work())  # what the training job does
    used = threads if model.native else torch.get_num_threads()
    if where.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    model.train(corpus)
    if where.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, vocab.words, model.word_vectors(), used


def anchor(
    kind: str, mode: str, corpus: Path, out: Path, epochs: int, lr: float, threads: int
) -> dict[str, Any]:
    proc = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", ANCHOR, kind, mode, str(corpus), str(out),
         str(epochs), str(lr), str(threads)],
        check=True, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
    )  # fmt: skip
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


Row = tuple[str, str, float, float, int]
"""mode, contender, words/s, mean_rho, threads."""


def word2vec_rows(
    data: Path,
    tmp: Path,
    args: argparse.Namespace,
    repeat: int,
    modes: tuple[str, ...],
    anchors: tuple[str, ...],
) -> tuple[list[Row], int]:
    """Ours and the anchors on the corpus `repeat` times over: medians of `--repeats` runs,
    the contenders taking turns within each repeat, so that a burst of load from another job
    on this shared machine falls on all of them rather than on whoever ran then."""
    where = torch.device(args.device)
    corpus, lines = prepare(data, tmp, repeat)
    pairs = data / "wordsim353.tsv"
    words = sum(len(line) for line in lines)
    rows: list[Row] = []
    for mode in modes:
        kinds = () if mode == "batch_skipgram" else anchors
        speeds: dict[str, list[float]] = {kind: [] for kind in ("ours", *kinds)}
        rhos: dict[str, list[float]] = {kind: [] for kind in ("ours", *kinds)}
        threads = args.threads
        for seed in range(args.repeats):
            seconds, vocab, vectors, threads = ours_word2vec(
                mode, lines, args.epochs, where, seed, args.threads
            )
            speeds["ours"].append(words * args.epochs / seconds)
            rhos["ours"].append(rho_of(vocab, vectors, pairs))
            for kind in kinds:
                out = tmp / f"{kind}.txt"
                result = anchor(kind, mode, corpus, out, args.epochs, LR[mode], args.threads)
                speeds[kind].append(words * args.epochs / result["seconds"])
                rhos[kind].append(rho_of(*read_vectors(out), pairs))
        for kind in ("ours", *kinds):
            who = f"opensage ({args.device})" if kind == "ours" else kind
            used = threads if kind == "ours" else args.threads
            median_speed, median_rho = (
                statistics.median(speeds[kind]),
                statistics.median(rhos[kind]),
            )
            rows.append((mode, who, median_speed, median_rho, used))
            print(repeat, rows[-1], [round(r, 3) for r in rhos[kind]], flush=True)
    return rows, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--corpus-repeat", type=int, default=1)
    parser.add_argument(
        "--quality-repeat",
        type=int,
        default=0,
        help="also compare mean_rho with gensim on the corpus this many times over",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="a folder holding lee_background.cor and wordsim353.tsv (default: gensim's wheel, "
        "from the anchors' venv); with --device cuda nothing else is needed",
    )
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.device == "cuda":
        gpu_check(args)
        return
    skipped = ensure_venv()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        data = gensim_data() if skipped is None else None
        if data is None:
            raise SystemExit(f"the anchors are needed for the data: {skipped}")
        rows, words = word2vec_rows(
            data,
            tmp,
            args,
            args.corpus_repeat,
            ("cbow", "skipgram", "batch_skipgram"),
            ("gensim", "fasttext"),
        )
        sup = supervised(tmp, args, torch.device(args.device))
        quality: list[Row] = []
        if args.quality_repeat > 1:
            quality, _ = word2vec_rows(
                data, tmp, args, args.quality_repeat, ("cbow", "skipgram"), ("gensim",)
            )
    table, verdict = render(rows, sup, args, words)
    if quality:
        extra, extra_verdict = render_quality(quality, args)
        table, verdict = f"{table}\n\n{extra}", f"{verdict}\n{extra_verdict}"
    print(table)
    print(verdict)
    if args.write:
        write_results(table, verdict, args, words)


GPU_TITLE = "## BlazingText on a GPU (benchmarks/bench_blazingtext.py --device cuda)"
GPU_WORDS_TARGET = 20e6


def gpu_check(args: argparse.Namespace, where: str = "cuda") -> None:
    """The GPU target: words/s of ours on the GPU, and mean_rho against ours on the CPU (the
    compiled loop on every core where it is built) on the same corpus and seeds. No anchors:
    the data comes from `--data` (or the anchors' gensim wheel). `where` other than cuda only
    checks this code on a machine without a GPU."""
    if where == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no GPU here")
    if args.data is None and ensure_venv() is not None:
        raise SystemExit("give --data (lee_background.cor and wordsim353.tsv): no anchors' venv")
    data = args.data or gensim_data()
    cores = os.cpu_count() or 1
    gpu, cpu = torch.device(where), torch.device("cpu")
    with tempfile.TemporaryDirectory() as name:
        _, lines = prepare(data, Path(name), args.corpus_repeat)
    words = sum(len(line) for line in lines)
    pairs = data / "wordsim353.tsv"
    rows: list[tuple[str, float, float, float]] = []  # mode, GPU words/s, GPU rho, CPU rho
    for mode in ("cbow", "skipgram", "batch_skipgram"):
        speeds, gpu_rhos, cpu_rhos = [], [], []
        for seed in range(args.repeats):
            seconds, vocab, vectors, _ = ours_word2vec(mode, lines, args.epochs, gpu, seed, 1)
            speeds.append(words * args.epochs / seconds)
            gpu_rhos.append(rho_of(vocab, vectors, pairs))
            if native.KERNELS is not None:  # the PyTorch path on the CPU would take minutes
                _, vocab, vectors, _ = ours_word2vec(mode, lines, args.epochs, cpu, seed, cores)
                cpu_rhos.append(rho_of(vocab, vectors, pairs))
            else:
                cpu_rhos.append(float("nan"))
            print(mode, seed, f"{speeds[-1]:,.0f} words/s", gpu_rhos[-1], cpu_rhos[-1], flush=True)
        rows.append(
            (mode, *(statistics.median(v) for v in (speeds, gpu_rhos, cpu_rhos)))  # type: ignore[arg-type]
        )
    table = "\n".join(
        [
            "| mode | GPU words/s | mean_rho GPU | mean_rho CPU | GPU - CPU |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| {mode} | {speed:,.0f} | {g:.3f} | {c:.3f} | {g - c:+.3f} |"
                for mode, speed, g, c in rows
            ),
        ]
    )
    verdict = "\n".join(
        f"- {mode}: {speed / 1e6:.1f}M words/s (target: 20M, {met(speed >= GPU_WORDS_TARGET)}); "
        f"mean_rho {g:.3f} vs the CPU run's {c:.3f} ({g - c:+.3f}; target: within 0.02, "
        f"{met(abs(g - c) <= 0.02)})."
        for mode, speed, g, c in rows
    )
    print(table)
    print(verdict)
    if not args.write:
        return
    cpu_side = (
        f"the compiled loop, {cores} Hogwild threads"
        if native.KERNELS is not None
        else "not run (the compiled loop did not build; nan below)"
    )
    gpu_name = torch.cuda.get_device_name(0) if where == "cuda" else where
    section = f"""{GPU_TITLE}

```
python benchmarks/bench_blazingtext.py --device cuda --repeats {args.repeats} \\
    --epochs {args.epochs} --corpus-repeat {args.corpus_repeat} --data <folder> --write
```

- Date: {datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")}
- GPU: {gpu_name}; torch {torch.__version__}; the CPU run: {cpu_side}
  ({platform.processor() or platform.machine()}).
- Corpus: gensim's lee_background.cor {args.corpus_repeat}x ({words:,} words), {args.epochs}
  epochs; dim {DIM}, window {WINDOW}, negative {NEGATIVE}, min_count {MIN_COUNT}, sample
  {SAMPLE}, lr {LR}. words/s: corpus words x epochs / training seconds (the tables built
  before the clock starts, the GPU synchronised at both ends). Medians of seeds
  0..{args.repeats - 1}, the same seeds on both sides.

{table}

{verdict}
"""
    replace_section(GPU_TITLE, section)


def supervised(
    tmp: Path, args: argparse.Namespace, where: torch.device
) -> list[tuple[str, float, float, int]]:
    lines = labelled_sentences(20_000, labels=6, seed=1, topical=0.3)
    train, test = lines[:-1000], lines[-1000:]
    (tmp / "sup_train.txt").write_text("\n".join(train) + "\n")
    (tmp / "sup_test.txt").write_text("\n".join(test) + "\n")
    labels, tokens = parse_lines(train)
    test_labels, test_tokens = parse_lines(test)
    words = sum(len(t) + len(lab) for t, lab in zip(tokens, labels, strict=True)) * SUP_EPOCHS
    ours_speed, ours_acc, ft_speed, ft_acc = [], [], [], []
    for seed in range(args.repeats):  # taking turns, as in `word2vec_rows`
        settings = ClassifierSettings(
            DIM, SUP_LR, SUP_EPOCHS, SUP_NGRAMS, SUP_BUCKETS, 1, seed, threads=args.threads
        )
        started = time.perf_counter()
        trainer = ClassifierTrainer(settings, tokens, labels, where)
        configure_threads(trainer.batch * 20 * DIM * 3)  # what the training job does
        used = args.threads if trainer.native else torch.get_num_threads()
        for epoch in range(SUP_EPOCHS):
            trainer.epoch(epoch)
        ours_speed.append(words / (time.perf_counter() - started))
        ours_acc.append(accuracy(trainer.model(), test_tokens, test_labels))
        result = anchor("supervised", "", tmp / "sup_train.txt", tmp / "sup_test.txt",
                        SUP_EPOCHS, SUP_LR, args.threads)  # fmt: skip
        ft_speed.append(words / result["seconds"])
        ft_acc.append(result["accuracy"])
    found = [
        (
            f"opensage ({args.device})",
            statistics.median(ours_speed),
            statistics.median(ours_acc),
            used,
        ),
        ("fasttext", statistics.median(ft_speed), statistics.median(ft_acc), args.threads),
    ]
    print(found, flush=True)
    return found


RHO_TARGET = "target: no more than 0.02 below gensim"


def met(done: bool) -> str:
    return "met" if done else "NOT met"


def render(
    rows: list[tuple[str, str, float, float, int]],
    sup: list[tuple[str, float, float, int]],
    args: argparse.Namespace,
    words: int,
) -> tuple[str, str]:
    """The tables and the verdict; speeds are compared per thread (the target is fastText's
    words/s per core)."""
    by = {(mode, who): (speed / threads, rho) for mode, who, speed, rho, threads in rows}
    ours = f"opensage ({args.device})"
    lines = [
        "| mode | contender | threads | words/s | words/s per thread | mean_rho (WS-353) "
        "| per thread vs fastText | rho - gensim |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, who, speed, rho, threads in rows:
        ft = by.get((mode if mode != "batch_skipgram" else "skipgram", "fasttext"))
        gs = by.get((mode if mode != "batch_skipgram" else "skipgram", "gensim"))
        ratio = f"{speed / threads / ft[0]:.2f}x" if ft and who != "fasttext" else ""
        delta = f"{rho - gs[1]:+.3f}" if gs and who == ours else ""
        lines.append(
            f"| {mode} | {who} | {threads} | {speed:,.0f} | {speed / threads:,.0f} | {rho:.3f} "
            f"| {ratio} | {delta} |"
        )
    lines += [
        "",
        "| supervised | threads | words/s | words/s per thread | accuracy (P@1) |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {who} | {threads} | {speed:,.0f} | {speed / threads:,.0f} | {acc:.4f} |"
            for who, speed, acc, threads in sup
        ),
    ]
    verdict = []
    for mode in ("cbow", "skipgram"):
        speed, rho = by[(mode, ours)]
        ft_speed, ft_rho = by[(mode, "fasttext")]
        gs_speed, gs_rho = by[(mode, "gensim")]
        verdict.append(
            f"- {mode}: {speed / ft_speed:.2f}x fastText's words/s per thread "
            f"(target: 1x, {met(speed >= ft_speed)}), {speed / gs_speed:.2f}x gensim's; "
            f"mean_rho {rho:.3f} vs gensim {gs_rho:.3f} ({rho - gs_rho:+.3f}; "
            f"{RHO_TARGET}, {met(rho >= gs_rho - 0.02)}) and fastText {ft_rho:.3f}."
        )
    speed, rho = by[("batch_skipgram", ours)]
    verdict.append(
        f"- batch_skipgram: {speed / by[('skipgram', 'fasttext')][0]:.2f}x fastText skipgram's "
        f"words/s per thread; mean_rho {rho:.3f}."
    )
    (_, s_ours, a_ours, t_ours), (_, s_ft, a_ft, t_ft) = sup
    per_thread = (s_ours / t_ours) / (s_ft / t_ft)
    verdict.append(
        f"- supervised: accuracy {a_ours:.4f} vs fastText {a_ft:.4f} "
        f"({100 * (a_ours - a_ft):+.1f} points; target: within 1, "
        f"{met(abs(a_ours - a_ft) <= 0.01)}); {per_thread:.2f}x fastText's words/s per thread "
        f"(target: 1x, {met(per_thread >= 1)})."
    )
    return "\n".join(lines), "\n".join(verdict)


def render_quality(rows: list[Row], args: argparse.Namespace) -> tuple[str, str]:
    """The second comparison: mean_rho with gensim on the corpus `--quality-repeat` times over,
    where every contender has trained past the small corpus's early, noisy stage."""
    by = {(mode, who): rho for mode, who, _, rho, _ in rows}
    ours = f"opensage ({args.device})"
    n = args.quality_repeat
    lines = [
        f"| mode (corpus x{n}) | contender | words/s per thread | mean_rho (WS-353) "
        "| rho - gensim |",
        "|---|---|---:|---:|---:|",
    ]
    for mode, who, speed, rho, threads in rows:
        delta = f"{rho - by[(mode, 'gensim')]:+.3f}" if who == ours else ""
        lines.append(f"| {mode} | {who} | {speed / threads:,.0f} | {rho:.3f} | {delta} |")
    verdict = [
        f"- corpus x{n}, {mode}: mean_rho {by[(mode, ours)]:.3f} vs gensim "
        f"{by[(mode, 'gensim')]:.3f} ({by[(mode, ours)] - by[(mode, 'gensim')]:+.3f}; "
        f"{RHO_TARGET}, {met(by[(mode, ours)] >= by[(mode, 'gensim')] - 0.02)})."
        for mode in ("cbow", "skipgram")
    ]
    return "\n".join(lines), "\n".join(verdict)


def write_results(table: str, verdict: str, args: argparse.Namespace, words: int) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    pins = ", ".join(
        line.strip() for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )  # fmt: skip
    command = (
        f"benchmarks/bench_blazingtext.py --repeats {args.repeats} --epochs {args.epochs} "
        f"--threads {args.threads} --device {args.device} --corpus-repeat {args.corpus_repeat} "
        + (f"--quality-repeat {args.quality_repeat} " if args.quality_repeat > 1 else "")
        + "--write"
    )
    ours = (
        f"the compiled fastText loop (`_fasttext.c`), {args.threads} Hogwild threads"
        if native.KERNELS is not None and args.device == "cpu"
        else f"PyTorch, {torch.get_num_threads()} intra-op thread(s)"
    )
    section = f"""{TITLE}

```
cd /work/main && .venv/bin/python {command}
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  torch {torch.__version__}, numpy {np.__version__}. Ours: {ours}; the anchors:
  {args.threads} threads. Anchors' venv `benchmarks/.venv-text-anchors`: {pins}. Load average
  at the end: {load} (a shared machine, with other jobs running: figures swing between runs;
  compare the ratios, measured in the same run).
- word2vec corpus: gensim's lee_background.cor, lower-cased word tokens, {words:,} words
  ({args.corpus_repeat}x); {args.epochs} epochs; dim {DIM}, window {WINDOW}, negative
  {NEGATIVE}, min_count {MIN_COUNT}, sample {SAMPLE}, lr {LR}. mean_rho: Spearman on WS-353
  (gensim's copy), the same scorer for all. Median of {args.repeats} runs each, the
  contenders taking turns (ours, gensim, fastText, then again).
- Supervised: 19,000 generated lines (6 labels), tested on 1,000; word_ngrams {SUP_NGRAMS},
  {SUP_EPOCHS} epochs, lr {SUP_LR}, dim {DIM}, 2M buckets, {args.threads} threads. Our time
  includes building the vocabulary and hashing the word n-grams in Python (fastText's includes
  reading its file).
- GPU: `--device cuda` runs ours on a GPU with the PyTorch path (the issue's target: 20M
  words/s on one H200 with mean_rho within 0.02 of the CPU run); no GPU run is recorded here.

{table}

{verdict}

{NOTES}"""
    replace_section(TITLE, section)


NOTES = """On mean_rho: lee_background is about 60k words, and after 20 epochs over it every
contender is still in an early, unstable stage where WS-353's rho says more about how far
training has got than about the vectors' quality: it swings with the learning rate and the seed.
Measured while building the compiled path (CBOW, one thread, 10 seeds each, not by this script):
at lr 0.025 / 0.05 / 0.1 ours gave a mean rho of -0.133 / 0.035 / 0.154 and gensim -0.150 /
0.071 / 0.186, with a standard deviation of about 0.035 across seeds for both; without
subsampling (sample 0, 8 seeds) ours 0.056 and gensim 0.050. The anchor script seeds gensim with
1 every time, so its three runs above differ only by thread timing, while ours take seeds 0, 1
and 2. So "within 0.02 of gensim" cannot be told apart from seed noise on one pass of this
corpus. Skip-gram on one pass tends to trail gensim's (5 seeds each, two threads: medians 0.153
vs 0.198, ranges 0.13-0.18 vs 0.10-0.22), yet leads it once both have trained longer; we found
no difference in the algorithm to explain it (the same subsampling probabilities, vocabulary,
negative table and initialisation as gensim; the loop's updates match a per-example NumPy
transcription, see tests/algorithms/test_blazingtext.py; swapping fastText's sigmoid table for
word2vec's, gensim's or the exact sigmoid moved CBOW's mean rho over 10 seeds by under 0.002; on
skip-gram, word2vec's orientation (the context predicts the centre, as gensim) gave 0.12 and one
thread 0.125, 4-5 seeds each, no better). The second table trains on the corpus five times over,
where the contenders have settled (ours: standard deviation about 0.01 across seeds; gensim's
with two threads is still about 0.03): that is the comparison to read. A larger real corpus
(text8) would need a download, which this benchmark does not do.

What sets our CPU speed now: the compiled loop is fastText's (one SGD step per example, the
hidden vector and its gradient in L1, one fused pass over each output row), built with -O3 for
the baseline instruction set (SSE2 on x86-64) like the anchors' pip fastText here (its .so uses
no AVX). It does a little less per example than fastText (no copy of the hidden vector for a
word without subwords, a cheaper random generator, no loss bookkeeping), which is where we think
the margin comes from (not profiled). Supervised: most of our time is Python, not training
(one run, 2 threads, measured apart: 0.44 s to build the vocabulary, hash the word n-grams and
initialise the tables, 0.25 s for the five epochs). What would add more: hashing the word
n-grams in C, and AVX2/AVX-512 variants of the dot and update loops chosen at run time
(function multiversioning). gensim, whose loop calls BLAS (scipy's OpenBLAS, which picks AVX
kernels at run time), is about as fast as ours or faster (its ratio is in the verdict lines);
those AVX variants would be the way to match it.
batch_skipgram on the CPU runs the same loop with Ji et al.'s shared negatives, one context
word after another (the matrix-product batching only pays on a GPU).
"""


if __name__ == "__main__":
    main()
