"""The supervised mode: fastText's text classifier (Joulin et al. 2017; spec algorithms §10(f)).

On the CPU, when the compiled module is built (`native`), each epoch is one call to fastText's
own loop (`_fasttext.c`): Hogwild threads, each on a slice of the epoch's shuffled lines, one
SGD step per line. On a GPU, or a CPU without the module, the PyTorch path below trains the
same model in mini-batches.

A line's input is its in-vocabulary words and the hashed word n-grams of all its tokens
(`word_ngrams`, fastText's n-gram hash modulo `buckets`); its hidden vector is the mean of those
rows; a linear layer and a softmax over the labels give the probabilities. Training is SGD on
the log loss at fastText's linearly decaying learning rate, over mini-batches of lines (the sum
of the lines' SGD steps, as fastText's Hogwild threads apply them), each row of a line getting
the line's hidden gradient divided by the line's length, as fastText does. A multi-label line
trains, each time it is seen, on one of its labels drawn at random: fastText's softmax loss
does the same (not its one-vs-all loss).

Only the n-gram buckets that occur in the training data get a row (the table is compacted:
`bucket_ids` maps rows to buckets); at prediction an n-gram whose bucket was never seen adds
nothing. fastText keeps all `buckets` rows, the unseen ones at their random initial values.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from opensage.algorithms.blazingtext import native
from opensage.algorithms.blazingtext.text import (
    IntArray,
    Vocabulary,
    fnv1a,
    split_labels,
    word_ngram_buckets,
)
from opensage.algorithms.blazingtext.word2vec import MIN_LR_FRACTION, device


@dataclass(frozen=True)
class ClassifierSettings:
    dim: int
    learning_rate: float
    epochs: int
    word_ngrams: int
    buckets: int
    min_count: int
    seed: int = 0
    batch: int | None = None
    """Lines per mini-batch step of the PyTorch path; None: `default_batch`."""
    threads: int = 1
    """Hogwild threads of the compiled CPU path; one trains bit-reproducibly for a seed."""


@dataclass
class Lines:
    """Lines as flat input rows with offsets, and each line's labels (ids)."""

    rows: IntArray
    offsets: IntArray
    labels: list[list[int]]

    def __len__(self) -> int:
        return len(self.labels)


class Featurizer:
    """Turns token lists into input rows: word ids, then compacted n-gram bucket rows."""

    def __init__(
        self, vocab: Vocabulary, word_ngrams: int, buckets: int, bucket_ids: IntArray
    ) -> None:
        self.vocab = vocab
        self.word_ngrams = word_ngrams
        self.buckets = buckets
        self.bucket_ids = bucket_ids
        self._hashes: dict[str, int] = {}

    def hashes(self, tokens: list[str]) -> list[int]:
        cache = self._hashes
        out = []
        for token in tokens:
            h = cache.get(token)
            if h is None:
                h = cache[token] = fnv1a(token)
            out.append(h)
        return out

    def ngrams(self, token_lines: list[list[str]]) -> tuple[IntArray, IntArray]:
        """The n-gram buckets of each line (and the line of each)."""
        if self.word_ngrams < 2:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        flat = [h for tokens in token_lines for h in self.hashes(tokens)]
        line_of = np.repeat(np.arange(len(token_lines)), [len(t) for t in token_lines])
        return word_ngram_buckets(
            np.asarray(flat, dtype=np.uint32), line_of, self.word_ngrams, self.buckets
        )

    def rows(self, token_lines: list[list[str]]) -> tuple[IntArray, IntArray]:
        """Flat input rows and per-line offsets (len(lines) + 1)."""
        index = self.vocab.index
        word_rows = [
            [i for i in (index.get(t) for t in tokens) if i is not None] for tokens in token_lines
        ]
        buckets, line_of = self.ngrams(token_lines)
        position = np.searchsorted(self.bucket_ids, buckets)
        position = np.minimum(position, max(len(self.bucket_ids) - 1, 0))
        known = self.bucket_ids[position] == buckets if len(self.bucket_ids) else np.zeros(0, bool)
        gram_rows = len(self.vocab) + position[known]
        gram_lines = line_of[known]
        counts = np.bincount(gram_lines, minlength=len(token_lines))
        order = np.argsort(gram_lines, kind="stable")
        grams_sorted = gram_rows[order]
        gram_start = np.concatenate([[0], np.cumsum(counts)])
        parts: list[IntArray] = []
        offsets = [0]
        for i, words in enumerate(word_rows):
            parts.append(np.asarray(words, dtype=np.int64))
            parts.append(grams_sorted[gram_start[i] : gram_start[i + 1]])
            offsets.append(offsets[-1] + len(words) + int(counts[i]))
        flat = np.concatenate(parts) if parts else np.empty(0, np.int64)
        return flat.astype(np.int64), np.asarray(offsets, dtype=np.int64)


def default_batch(lines: int, where: torch.device) -> int:
    """Lines per step: about 200 steps an epoch at least (a small data set needs fastText's
    many small steps), at most 64 on a CPU (4096 on a GPU, where launches dominate)."""
    return max(1, min(64 if where.type == "cpu" else 4096, lines // 200))


def parse_lines(raw: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Each line's labels and words (`__label__` tokens anywhere in the line)."""
    labels: list[list[str]] = []
    words: list[list[str]] = []
    for line in raw:
        found, tokens = split_labels(line.split())
        labels.append(found)
        words.append(tokens)
    return labels, words


@dataclass
class Classifier:
    """A trained classifier: input rows (words, then n-gram buckets), output rows (labels)."""

    words: list[str]
    labels: list[str]
    input: npt.NDArray[np.float32]
    output: npt.NDArray[np.float32]
    bucket_ids: IntArray
    word_ngrams: int
    buckets: int

    def featurizer(self) -> Featurizer:
        vocab = Vocabulary(self.words, np.zeros(len(self.words), np.int64))
        return Featurizer(vocab, self.word_ngrams, self.buckets, self.bucket_ids)

    def probabilities(self, token_lines: list[list[str]]) -> npt.NDArray[np.float32]:
        """Each line's label probabilities (a line with no known word or n-gram: the softmax of
        the zero vector's scores)."""
        rows, offsets = self.featurizer().rows(token_lines)
        hidden = _mean_rows(self.input, rows, offsets)
        scores = hidden @ self.output.T
        scores -= scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)

    def meta(self) -> dict[str, Any]:
        return {
            "words": self.words,
            "labels": self.labels,
            "word_ngrams": self.word_ngrams,
            "buckets": self.buckets,
        }


def _mean_rows(
    table: npt.NDArray[np.float32], rows: IntArray, offsets: IntArray
) -> npt.NDArray[np.float32]:
    lines = len(offsets) - 1
    counts = np.diff(offsets)
    sums = np.zeros((lines, table.shape[1]), dtype=np.float64)
    if len(rows):
        np.add.at(sums, np.repeat(np.arange(lines), counts), table[rows])
    return np.asarray(sums / np.maximum(counts, 1)[:, None], dtype=np.float32)


def top_k(
    probabilities: npt.NDArray[np.float32], k: int
) -> tuple[IntArray, npt.NDArray[np.float32]]:
    """The k most probable labels per row, most probable first (ties: lower label id first)."""
    k = min(k, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(probabilities, order, axis=1)


class ClassifierTrainer:
    """SGD over mini-batches of lines."""

    def __init__(
        self,
        settings: ClassifierSettings,
        token_lines: list[list[str]],
        label_lines: list[list[str]],
        where: torch.device | None = None,
    ) -> None:
        self.s = settings
        self.device = where or device()
        counter = Counter(t for tokens in token_lines for t in tokens)
        self.vocab = Vocabulary.build(counter, settings.min_count)
        label_counter = Counter(label for labels in label_lines for label in labels)
        self.label_names = [name for name, _ in sorted(label_counter.items(), key=lambda x: -x[1])]
        label_index = {name: i for i, name in enumerate(self.label_names)}
        probe = Featurizer(
            self.vocab, settings.word_ngrams, settings.buckets, np.empty(0, np.int64)
        )
        grams, _ = probe.ngrams(token_lines)
        self.featurizer = Featurizer(
            self.vocab, settings.word_ngrams, settings.buckets, np.unique(grams)
        )
        self.featurizer._hashes = probe._hashes
        self.train = self.encode(token_lines, label_lines, label_index)
        self.label_index = label_index
        generator = torch.Generator().manual_seed(settings.seed)
        n_rows = len(self.vocab) + len(self.featurizer.bucket_ids)
        bound = 1.0 / settings.dim
        weight = (torch.rand(n_rows, settings.dim, generator=generator) * 2 - 1) * bound
        self.input = weight.to(self.device)
        self.output = torch.zeros(len(self.label_names), settings.dim, device=self.device)
        self.rng = np.random.default_rng(settings.seed)
        self.batch = settings.batch or default_batch(len(self.train), self.device)
        usable = [i for i in range(len(self.train)) if self._usable(i)]
        self.usable = np.asarray(usable, dtype=np.int64)
        self.tokens_per_epoch = max(int(self.train.offsets[-1]), 1)
        self.native = self.device.type == "cpu" and native.KERNELS is not None
        """fastText's compiled loop trains (the CPU, when built), not the PyTorch steps."""
        self.counter = np.zeros(1, dtype=np.int64)
        """Rows trained on so far (the compiled path's learning-rate schedule)."""

    def encode(
        self, token_lines: list[list[str]], label_lines: list[list[str]], index: dict[str, int]
    ) -> Lines:
        rows, offsets = self.featurizer.rows(token_lines)
        labels = [[index[n] for n in names if n in index] for names in label_lines]
        return Lines(rows, offsets, labels)

    def _usable(self, i: int) -> bool:
        return bool(self.train.labels[i]) and self.train.offsets[i + 1] > self.train.offsets[i]

    def epoch(self, epoch: int) -> None:
        order = self.usable[self.rng.permutation(len(self.usable))]
        if self.native:
            self._native_epoch(order)
            return
        steps = max(1, math.ceil(len(order) / self.batch))
        rows_t = torch.from_numpy(self.train.rows).to(self.device)
        for step in range(steps):
            lines = order[step * self.batch : (step + 1) * self.batch]
            if len(lines) == 0:
                continue
            progress = (epoch + step / steps) / self.s.epochs
            lr = self.s.learning_rate * max(MIN_LR_FRACTION, 1.0 - progress)
            targets = np.asarray(
                [
                    labels[self.rng.integers(len(labels))]
                    for labels in (self.train.labels[i] for i in lines)
                ],
                dtype=np.int64,
            )
            starts = self.train.offsets[lines]
            lengths = self.train.offsets[lines + 1] - starts
            gather = np.concatenate(
                [np.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)]
            )
            self._step(
                rows_t[torch.from_numpy(gather).to(self.device)],
                torch.from_numpy(lengths).to(self.device),
                torch.from_numpy(targets).to(self.device),
                lr,
            )

    @cached_property
    def _kernel_lines(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], IntArray]:
        """The lines as the compiled loop takes them, made once: int32 rows, flat label ids and
        their offsets."""
        counts = [len(labels) for labels in self.train.labels]
        flat = [i for labels in self.train.labels for i in labels]
        return (
            self.train.rows.astype(np.int32),
            np.asarray(flat, dtype=np.int32),
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        )

    def _native_epoch(self, order: IntArray) -> None:
        if not len(order):
            return
        rows, labels, label_offsets = self._kernel_lines
        per_epoch = int(np.diff(self.train.offsets)[self.usable].sum())
        native.KERNELS.supervised(
            input=self.input.numpy(),
            output=self.output.numpy(),
            rows=rows,
            offsets=self.train.offsets,
            labels=labels,
            label_offsets=label_offsets,
            order=order,
            counter=self.counter,
            total=max(per_epoch * self.s.epochs, 1),
            dim=self.s.dim,
            learning_rate=self.s.learning_rate,
            min_lr_fraction=MIN_LR_FRACTION,
            threads=self.s.threads,
            seed=int(self.rng.integers(1 << 63)),
        )

    def _step(
        self, rows: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, lr: float
    ) -> None:
        line_of = torch.repeat_interleave(torch.arange(len(lengths), device=self.device), lengths)
        sums = torch.zeros(len(lengths), self.s.dim, device=self.device)
        sums.index_add_(0, line_of, self.input[rows])
        hidden = sums / lengths.unsqueeze(1)
        p = torch.softmax(hidden @ self.output.T, dim=1)
        g = -p
        g[torch.arange(len(targets), device=self.device), targets] += 1.0
        g *= lr
        grad_hidden = g @ self.output
        self.output.add_(g.T @ hidden)
        per_row = (grad_hidden / lengths.unsqueeze(1))[line_of]
        self.input.index_add_(0, rows, per_row)

    def model(self) -> Classifier:
        return Classifier(
            words=list(self.vocab.words),
            labels=list(self.label_names),
            input=np.asarray(self.input.cpu().numpy(), dtype=np.float32).copy(),
            output=np.asarray(self.output.cpu().numpy(), dtype=np.float32).copy(),
            bucket_ids=self.featurizer.bucket_ids,
            word_ngrams=self.s.word_ngrams,
            buckets=self.s.buckets,
        )


def accuracy(
    model: Classifier, token_lines: list[list[str]], label_lines: list[list[str]]
) -> float:
    """fastText's precision@1: the share of labelled lines whose most probable label is one of
    theirs."""
    labelled = [i for i, labels in enumerate(label_lines) if labels]
    if not labelled:
        return math.nan
    probabilities = model.probabilities([token_lines[i] for i in labelled])
    best = probabilities.argmax(axis=1)
    hits = sum(model.labels[int(b)] in label_lines[i] for b, i in zip(best, labelled, strict=True))
    return hits / len(labelled)


Progress = Callable[[int, float | None], None]
