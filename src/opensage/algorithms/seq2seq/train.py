"""Seq2seq training: teacher forcing with cross entropy (ignoring `<pad>`) over length-bucketed
batches, a checkpoint every `checkpoint_frequency_num_batches` updates that evaluates the
validation channel (perplexity, token accuracy, and BLEU of `bleu_sample_size` decoded
sentences), keeps the best network by `optimized_metric`, adjusts the learning rate, and stops
after `checkpoint_threshold` checkpoints without improvement (never before `min_num_epochs`), or
at `max_num_batches` / `max_num_epochs`.

Everything random (initial weights, dropout, batch order) comes from fixed seeds, so the same
job trains the same model on the CPU.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from torch.nn import functional as F

from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.ntm.model import device
from opensage.algorithms.ntm.train import build_optimizer
from opensage.algorithms.seq2seq.bleu import corpus_bleu
from opensage.algorithms.seq2seq.data import (
    SOURCE_VOCAB,
    TARGET_VOCAB,
    Pairs,
    read_pairs,
    read_vocabulary,
    write_vocabulary,
)
from opensage.algorithms.seq2seq.decoding import (
    Seq2SeqModel,
    decode,
    source_batch,
    target_batch,
)
from opensage.algorithms.seq2seq.model import (
    PAD,
    Architecture,
    Seq2SeqNet,
    initialize,
    threads_for,
)

SEED: Final = 0
ARCHITECTURE_NAMES: Final = tuple(
    name
    for name in Architecture.__dataclass_fields__
    if name not in ("source_vocab", "target_vocab")
)
MAXIMISED: Final = ("accuracy", "bleu")


def architecture(env: TrainingEnv, source_vocab: int, target_vocab: int) -> Architecture:
    values = {name: env.get(name) for name in ARCHITECTURE_NAMES}
    if values["rnn_attention_num_hidden"] is None:
        values["rnn_attention_num_hidden"] = env["rnn_num_hidden"]
    return Architecture(source_vocab=source_vocab, target_vocab=target_vocab, **values)


def train(env: TrainingEnv) -> None:
    torch.manual_seed(SEED)
    vocab = env.channel("vocab")
    assert vocab is not None  # required by the spec; TrainingEnv checked it
    source_vocab = read_vocabulary(vocab.folder, SOURCE_VOCAB)
    target_vocab = read_vocabulary(vocab.folder, TARGET_VOCAB)
    sizes = (len(source_vocab), len(target_vocab))
    limits = (env["max_seq_len_source"], env["max_seq_len_target"])
    channels = {}
    for name in ("train", "validation"):
        reader = env.channel(name)
        assert reader is not None
        channels[name] = read_pairs(reader.folder, name, sizes, limits)
    train_pairs, validation = channels["train"], channels["validation"]
    env.log.info(
        f"Read {len(train_pairs)} training and {len(validation)} validation pairs; vocabularies "
        f"of {sizes[0]} source and {sizes[1]} target tokens"
    )
    arch = architecture(env, *sizes)
    threads_for(arch, env["batch_size"])
    net = Seq2SeqNet(arch).to(device())
    initialize(net, env["weight_init_type"], env["weight_init_scale"], env["xavier_factor_type"])
    trainer = Trainer(net, env)
    best = trainer.run(train_pairs, validation)
    model = Seq2SeqModel(best, source_vocab, target_vocab, env["beam_size"])
    model.save(env.model_dir)
    write_vocabulary(env.model_dir / SOURCE_VOCAB, source_vocab)
    write_vocabulary(env.model_dir / TARGET_VOCAB, target_vocab)


def batches(
    pairs: Pairs, size: int, bucket_width: int | None, rng: np.random.Generator | None
) -> Iterator[list[int]]:
    """Indices of `pairs` in batches of `size`: with buckets, each batch from one bucket of
    lengths (the longer of source and target, `bucket_width` apart); shuffled when `rng` is
    given, else in order."""
    indices = np.arange(len(pairs))
    if rng is not None:
        indices = rng.permutation(indices)
    groups: list[list[int]] = []
    if bucket_width is None:
        groups = [indices.tolist()]
    else:
        buckets: dict[int, list[int]] = {}
        for i in indices.tolist():
            length = max(len(pairs.sources[i]), len(pairs.targets[i]))
            buckets.setdefault(length // bucket_width, []).append(i)
        groups = [buckets[key] for key in sorted(buckets)]
    chunks = [group[s : s + size] for group in groups for s in range(0, len(group), size)]
    order = rng.permutation(len(chunks)).tolist() if rng is not None else range(len(chunks))
    for k in order:
        yield chunks[k]


@dataclass
class Scores:
    perplexity: float
    accuracy: float
    bleu: float | None

    def get(self, name: str) -> float:
        value = getattr(self, name)
        return math.nan if value is None else float(value)


class Trainer:
    """One network, its optimizer, learning-rate schedule and stopping rule."""

    def __init__(self, net: Seq2SeqNet, env: TrainingEnv) -> None:
        self.net = net
        self.env = env
        self.device = next(net.parameters()).device
        optimizer: str = env["optimizer_type"]
        self.learning_rate: float = env["learning_rate"]
        if optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                net.parameters(),
                lr=self.learning_rate,
                momentum=env.get("momentum") or 0.0,
                weight_decay=env["weight_decay"],
            )
        else:
            self.optimizer = build_optimizer(
                optimizer, net.parameters(), self.learning_rate, env["weight_decay"]
            )
        self.clip: float = env["clip_gradient"]
        self.metric: str = env["optimized_metric"]
        self.rng = np.random.default_rng(SEED + 1)

    def run(self, train: Pairs, validation: Pairs) -> Seq2SeqNet:
        env = self.env
        frequency: int = env["checkpoint_frequency_num_batches"]
        max_batches: int = env["max_num_batches"]
        max_epochs: int | None = env.get("max_num_epochs")
        min_epochs: int = env["min_num_epochs"]
        threshold: int = env["checkpoint_threshold"]
        width = env["bucket_width"] if env["bucketing_enabled"] else None
        best: Seq2SeqNet | None = None
        best_scores: Scores | None = None
        since_best = 0
        checkpoints = 0
        updates = 0
        epoch = 0
        window = Window()
        stop = False
        while not stop:
            for chunk in batches(train, env["batch_size"], width, self.rng):
                window.add(*self.update(train, chunk))
                updates += 1
                limit_reached = max_batches > 0 and updates >= max_batches
                if updates % frequency and not limit_reached:
                    continue
                checkpoints += 1
                scores = self.checkpoint(checkpoints, window, validation)
                window = Window()
                if best_scores is None or self.better(scores, best_scores):
                    best, best_scores, since_best = copy.deepcopy(self.net), scores, 0
                else:
                    since_best += 1
                self.schedule(checkpoints, since_best)
                if limit_reached:
                    env.log.info(f"Stopping: max_num_batches={max_batches} updates done")
                    stop = True
                    break
                if since_best >= threshold and epoch + 1 > min_epochs:
                    env.log.info(
                        f"Stopping: no improvement of validation {self.metric} for "
                        f"{threshold} checkpoints"
                    )
                    stop = True
                    break
            if stop:
                break
            epoch += 1
            if max_epochs is not None:
                env.log.progress(epoch, max_epochs)
            if max_epochs is not None and epoch >= max_epochs:
                env.log.info(f"Stopping: max_num_epochs={max_epochs} epochs done")
                if window.tokens:
                    checkpoints += 1
                    scores = self.checkpoint(checkpoints, window, validation)
                    if best_scores is None or self.better(scores, best_scores):
                        best, best_scores = copy.deepcopy(self.net), scores
                break
        assert best is not None
        assert best_scores is not None
        self.report(best_scores, final=True)
        return best

    def update(self, pairs: Pairs, chunk: list[int]) -> tuple[float, int, int]:
        """One step on the pairs `chunk`: summed loss, target tokens, correct predictions."""
        self.net.train()
        source, lengths = source_batch([pairs.sources[i] for i in chunk], self.device)
        target_in, target_out = target_batch([pairs.targets[i] for i in chunk], self.device)
        logits = self.net(source, lengths, target_in)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target_out.reshape(-1),
            ignore_index=PAD,
            reduction="sum",
        )
        keep = target_out != PAD
        tokens = int(keep.sum())
        self.optimizer.zero_grad()
        torch.autograd.backward(loss / max(tokens, 1))
        if self.clip > 0:  # MXNet clips each gradient element, as Sockeye's clip_gradient does
            torch.nn.utils.clip_grad_value_(self.net.parameters(), self.clip)
        self.optimizer.step()
        correct = int(((logits.argmax(-1) == target_out) & keep).sum())
        return float(loss.detach()), tokens, correct

    def evaluate(self, pairs: Pairs) -> Scores:
        """Perplexity and token accuracy with teacher forcing; BLEU of decoded sentences."""
        self.net.eval()
        window = Window()
        with torch.no_grad():
            for chunk in batches(pairs, self.env["batch_size"], 10, None):
                source, lengths = source_batch([pairs.sources[i] for i in chunk], self.device)
                target_in, target_out = target_batch([pairs.targets[i] for i in chunk], self.device)
                logits = self.net(source, lengths, target_in)
                loss = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    target_out.reshape(-1),
                    ignore_index=PAD,
                    reduction="sum",
                )
                keep = target_out != PAD
                correct = int(((logits.argmax(-1) == target_out) & keep).sum())
                window.add(float(loss), int(keep.sum()), correct)
        return Scores(window.perplexity, window.accuracy, self.bleu(pairs))

    def bleu(self, pairs: Pairs) -> float | None:
        """BLEU of the first `bleu_sample_size` validation sentences (-1: all; 0: none, unless
        BLEU is the optimized metric, then all)."""
        sample: int = self.env["bleu_sample_size"]
        if sample == 0 and self.metric == "bleu":
            sample = -1
        if sample == 0:
            return None
        count = len(pairs) if sample < 0 else min(sample, len(pairs))
        decoded = decode(self.net, pairs.sources[:count], self.env["beam_size"])
        references = [t.tolist() for t in pairs.targets[:count]]
        return corpus_bleu([d.ids for d in decoded], references)

    def checkpoint(self, number: int, window: Window, validation: Pairs) -> Scores:
        log = self.env.log
        log.info(
            f"Checkpoint {number}: train perplexity {window.perplexity:.4f}, accuracy "
            f"{window.accuracy:.4f}, learning rate {self.learning_rate:.6g}"
        )
        if math.isfinite(window.perplexity):
            log.quality("train", "perplexity", window.perplexity, "Minimize")
        scores = self.evaluate(validation)
        self.report(scores)
        return scores

    def report(self, scores: Scores, final: bool = False) -> None:
        log = self.env.log
        if final:
            log.info("Best checkpoint's validation metrics:")
        if math.isfinite(scores.perplexity):
            log.quality("validation", "perplexity", scores.perplexity, "Minimize")
        log.quality("validation", "accuracy", scores.accuracy, "Maximize")
        if scores.bleu is not None:
            log.quality("validation", "bleu", scores.bleu, "Maximize")

    def better(self, scores: Scores, best: Scores) -> bool:
        value, previous = scores.get(self.metric), best.get(self.metric)
        if not math.isfinite(previous):
            return math.isfinite(value)
        return value > previous if self.metric in MAXIMISED else value < previous

    def schedule(self, checkpoints: int, since_best: int) -> None:
        """The learning rate after a checkpoint: halved-style decay on a plateau, or
        `lr / (1 + t / half_life)` / `lr / sqrt(1 + 3 t / half_life)` over checkpoints t."""
        env = self.env
        kind: str = env["lr_scheduler_type"]
        initial: float = env["learning_rate"]
        half_life: int = env["fixed_rate_lr_half_life"]
        if kind == "plateau_reduce":
            if since_best and since_best % env["plateau_reduce_lr_threshold"] == 0:
                self.learning_rate *= env["plateau_reduce_lr_factor"]
        elif kind == "fixed_rate_inv_t":
            self.learning_rate = initial / (1 + checkpoints / half_life)
        else:
            self.learning_rate = initial / math.sqrt(1 + 3 * checkpoints / half_life)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate


class Window:
    """Loss, token and correct-token sums since the last checkpoint."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.tokens = 0
        self.correct = 0

    def add(self, loss: float, tokens: int, correct: int) -> None:
        self.loss += loss
        self.tokens += tokens
        self.correct += correct

    @property
    def perplexity(self) -> float:
        if not self.tokens:
            return math.nan
        return math.exp(min(self.loss / self.tokens, 700.0))

    @property
    def accuracy(self) -> float:
        return self.correct / self.tokens if self.tokens else 0.0
