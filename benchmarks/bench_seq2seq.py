"""Seq2seq built-in benchmark: our RNN encoder-decoder with attention against a plain PyTorch
`nn.Transformer` of similar size, trained the same number of steps on the same batches of a
synthetic task (sequence reversal), on the CPU.

Run from the repository root:

    .venv/bin/python benchmarks/bench_seq2seq.py [--pairs N] [--steps N] [--runs N] [--write]

Data (generated once, the same for every contender): `--pairs` (20,000) training and 500
validation pairs of random token sequences (vocabulary of 30 tokens plus the 4 reserved ones,
lengths 4 to 12), the target being the reversed source. Both contenders train `--steps` (600)
Adam steps on the same length-bucketed batches of 64 (bucket width 10).

1. Ours: `Seq2SeqNet` as the training job builds it (LSTM, `rnn_num_hidden` 128, embeddings 64,
   one layer each side, MLP attention), our `Trainer.update` (cross entropy, element-wise
   gradient clipping at 1), learning rate 0.003.
2. Anchor: `torch.nn.Transformer` (d_model 128, 4 heads, 2 encoder and 2 decoder layers,
   feed-forward 256, dropout 0, learned positional embeddings), Adam at 0.001, greedy decoding.

Figures: training target tokens per second (`</s>` included), validation BLEU (corpus BLEU-4 as
sacrebleu's, ours with beam 1 and beam 5), and decoding sentences per second (median of
`--runs`). `--write` replaces the `## Seq2seq (benchmarks/bench_seq2seq.py)` section of
RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.ntm.model import configure_threads
from opensage.algorithms.seq2seq.bleu import corpus_bleu
from opensage.algorithms.seq2seq.data import Pairs, encode_records
from opensage.algorithms.seq2seq.decoding import decode, source_batch, target_batch
from opensage.algorithms.seq2seq.model import BOS, EOS, PAD, Seq2SeqNet, initialize
from opensage.algorithms.seq2seq.spec import SPEC
from opensage.algorithms.seq2seq.train import Trainer, architecture, batches
from opensage.contract import MLPaths
from results import replace_section

TITLE = "## Seq2seq (benchmarks/bench_seq2seq.py)"
TOKENS = 30
LOW, HIGH = 4, 12
VALIDATION = 500
BATCH = 64
HYPERPARAMETERS = {
    "rnn_num_hidden": "128",
    "num_embed_source": "64",
    "num_embed_target": "64",
    "batch_size": str(BATCH),
    "learning_rate": "0.003",
    "max_seq_len_source": "20",
    "max_seq_len_target": "20",
}


def make_pairs(seed: int, count: int) -> Pairs:
    rng = np.random.default_rng(seed)
    sources = [
        rng.integers(4, 4 + TOKENS, size=int(rng.integers(LOW, HIGH + 1))) for _ in range(count)
    ]
    return Pairs([s.astype(np.int64) for s in sources], [s[::-1].copy() for s in sources])


def environment(folder: Path) -> TrainingEnv:
    """A training environment with our hyperparameters (the trainer reads them from it)."""
    paths = MLPaths(folder)
    for path in paths.directories():
        path.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(HYPERPARAMETERS))
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1"}))
    vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
    vocab.update({f"t{i}": i + 4 for i in range(TOKENS)})
    for name in ("train", "validation", "vocab"):
        paths.channel(name).mkdir(parents=True, exist_ok=True)
    (paths.channel("train") / "a.rec").write_bytes(
        encode_records({"source": [[4]], "target": [[4]]})
    )
    (paths.channel("validation") / "a.rec").write_bytes(
        (paths.channel("train") / "a.rec").read_bytes()
    )
    for name in ("vocab.src.json", "vocab.trg.json"):
        (paths.channel("vocab") / name).write_text(json.dumps(vocab))
    paths.input_data_config_file.write_text(
        json.dumps({name: {} for name in ("train", "validation", "vocab")})
    )
    return TrainingEnv.load(paths, SPEC)


def schedule(train: Pairs, steps: int) -> list[list[int]]:
    """The batches both contenders train on, epoch after epoch."""
    rng = np.random.default_rng(1)
    order: list[list[int]] = []
    while len(order) < steps:
        order.extend(batches(train, BATCH, 10, rng))
    return order[:steps]


def target_tokens(train: Pairs, order: list[list[int]]) -> int:
    return sum(len(train.targets[i]) + 1 for chunk in order for i in chunk)


def ours(train: Pairs, validation: Pairs, order: list[list[int]], runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp))
        torch.manual_seed(0)
        net = Seq2SeqNet(architecture(env, TOKENS + 4, TOKENS + 4))
        initialize(net, "xavier", 2.34, "in")
        trainer = Trainer(net, env)
        started = time.perf_counter()
        for chunk in order:
            trainer.update(train, chunk)
        seconds = time.perf_counter() - started
    found: dict[str, Any] = {"train_s": seconds}
    references = [t.tolist() for t in validation.targets]
    for beam in (1, 5):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            decoded = decode(net, validation.sources, beam)
            times.append(time.perf_counter() - started)
        found[f"bleu{beam}"] = corpus_bleu([d.ids for d in decoded], references)
        found[f"decode{beam}_s"] = statistics.median(times)
    return found


class Transformer(nn.Module):
    def __init__(self, vocab: int, width: int = 128, positions: int = 32) -> None:
        super().__init__()
        self.source = nn.Embedding(vocab, width, padding_idx=PAD)
        self.target = nn.Embedding(vocab, width, padding_idx=PAD)
        self.positions = nn.Embedding(positions, width)
        self.core = nn.Transformer(
            width, 4, 2, 2, dim_feedforward=256, dropout=0.0, batch_first=True
        )
        self.output = nn.Linear(width, vocab)

    def embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        where = torch.arange(ids.shape[1]).unsqueeze(0)
        return torch.as_tensor(table(ids) + self.positions(where))

    def memory(self, source: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(
            self.core.encoder(self.embed(self.source, source), src_key_padding_mask=source == PAD)
        )

    def step(
        self, memory: torch.Tensor, source: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        length = int(target.shape[1])
        mask = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        hidden = self.core.decoder(
            self.embed(self.target, target),
            memory,
            tgt_mask=mask,
            tgt_is_causal=True,
            tgt_key_padding_mask=target == PAD,
            memory_key_padding_mask=source == PAD,
        )
        return torch.as_tensor(self.output(hidden))


def anchor(train: Pairs, validation: Pairs, order: list[list[int]], runs: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = Transformer(TOKENS + 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    cpu = torch.device("cpu")
    started = time.perf_counter()
    model.train()
    for chunk in order:
        source, _ = source_batch([train.sources[i] for i in chunk], cpu)
        target_in, target_out = target_batch([train.targets[i] for i in chunk], cpu)
        logits = model.step(model.memory(source), source, target_in)
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target_out.reshape(-1), ignore_index=PAD
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    times = []
    hypotheses: list[list[int]] = []
    for _ in range(runs):
        started = time.perf_counter()
        hypotheses = []
        with torch.no_grad():
            for start in range(0, len(validation), 64):
                part = validation.sources[start : start + 64]
                source, _ = source_batch(part, cpu)
                memory = model.memory(source)
                target = torch.full((len(part), 1), BOS, dtype=torch.long)
                for _step in range(HIGH + 1):
                    nxt = model.step(memory, source, target)[:, -1].argmax(-1)
                    target = torch.cat([target, nxt.unsqueeze(1)], 1)
                for row in target[:, 1:].tolist():
                    hypotheses.append(row[: row.index(EOS)] if EOS in row else row)
        times.append(time.perf_counter() - started)
    references = [t.tolist() for t in validation.targets]
    return {
        "train_s": seconds,
        "bleu1": corpus_bleu(hypotheses, references),
        "decode1_s": statistics.median(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3, help="decoding runs (median)")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    configure_threads(0)
    warnings.filterwarnings("ignore", message=".*nested tensors.*")
    train, validation = make_pairs(0, args.pairs), make_pairs(1, VALIDATION)
    order = schedule(train, args.steps)
    tokens = target_tokens(train, order)
    results = {
        "opensage seq2seq (LSTM 128 + MLP attention)": ours(train, validation, order, args.runs),
        "torch nn.Transformer (d 128, 2+2 layers)": anchor(train, validation, order, args.runs),
    }
    table = render(results, tokens)
    print(table)
    if args.write:
        write_results(table, args)


def render(results: dict[str, dict[str, Any]], tokens: int) -> str:
    lines = [
        "| contender | train s | target tokens/s | BLEU beam 1 | sentences/s beam 1 "
        "| BLEU beam 5 | sentences/s beam 5 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        beam5 = (
            f"{r['bleu5']:.3f} | {VALIDATION / r['decode5_s']:,.0f}" if "bleu5" in r else "- | -"
        )
        lines.append(
            f"| {name} | {r['train_s']:.1f} | {tokens / r['train_s']:,.0f} | {r['bleu1']:.3f} "
            f"| {VALIDATION / r['decode1_s']:,.0f} | {beam5} |"
        )
    return "\n".join(lines)


def write_results(table: str, args: argparse.Namespace) -> None:
    now = datetime.now(UTC).strftime("%a %b %d %H:%M UTC %Y")
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    command = (
        f"benchmarks/bench_seq2seq.py --pairs {args.pairs} --steps {args.steps} "
        f"--runs {args.runs} --write"
    )
    section = f"""{TITLE}

```
cd /work/main && .venv/bin/python {command}
```

- Date: {now}
- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()},
  torch {torch.__version__} (CPU; torch threads {torch.get_num_threads()}). Load average at
  the end: {load} (shared machine: figures swing between runs).
- Task: reversal of random sequences of {TOKENS} tokens, lengths {LOW}-{HIGH};
  {args.pairs:,} training pairs, {VALIDATION} validation pairs; {args.steps} Adam steps on the
  same length-bucketed batches of {BATCH} for both contenders (training once; decoding the
  median of {args.runs} runs).
- Ours: the training job's network and update (LSTM, 128 hidden, embeddings 64, MLP
  attention, learning rate 0.003, gradient clipping 1). Anchor: a plain `torch.nn.Transformer`
  of similar size (d_model 128, 4 heads, 2+2 layers, feed-forward 256), Adam 0.001, greedy
  decoding. BLEU: corpus BLEU-4 (sacrebleu's definition) on token ids; no pretrained model or
  download is involved.

{table}
"""
    replace_section(TITLE, section)


if __name__ == "__main__":
    main()
