"""Word2vec with negative sampling (spec algorithms §10(f)): `cbow`, `skipgram` and
`batch_skipgram`, optionally with fastText's character n-gram subwords.

Two ways to train the same model, chosen by where it trains (`Word2Vec.native`): on the CPU,
when the compiled module is built, fastText's own per-example loop (`_fasttext.c`, see
`native`: Hogwild threads over slices of the corpus, each line subsampled, each position's
window shrunk, one SGD step per example against the positive and `negative_samples`
negatives, the same learning-rate schedule; batch_skipgram's shared negatives too); on a GPU,
or a CPU without the module, the vectorised PyTorch path described below. With subwords the
compiled CBOW averages all the context words' rows together (fastText's bag) where the PyTorch
path averages each word's mean.

The PyTorch path: each epoch subsamples the corpus (word2vec's formula), draws every position's
shrunk window (1..window_size, word2vec's random shrink) and turns a chunk of the corpus into
training examples at once, shuffled within the chunk, all on the training device (on a GPU
nothing goes through the host): (centre, context) pairs for skip-gram, (centre, its context
words) for CBOW, (centre, its context words) sharing one negative set for batch_skipgram.
Examples go through in mini-batches: gathered embeddings, batched dot products against the
positive and `negative_samples` negatives drawn from the unigram^0.75 table, hand-written
gradients of the logistic loss and sparse updates with `index_add_` (the batch's per-example SGD
steps summed, as Hogwild threads would apply them, but at most `ROW_STEP` / lr of them per row
and step: see `capped_add`), at fastText's linearly decaying learning rate, in at least
`MIN_STEPS_PER_EPOCH` steps an epoch. A window never crosses a line.

- skipgram: the centre word's vector predicts each context word (fastText's orientation);
- cbow: the mean of the context words' vectors predicts the centre word; the error goes back
  to every context word in full (word2vec and fastText do the same);
- batch_skipgram: Ji et al. 2016's negative-sample sharing: the context words of one centre
  (at most `batch_size` of them, nearest first) share one negative set, so each window is a
  small matrix product (contexts x (1 + negatives)), batched over windows.

With subwords a word's input vector is the mean of its own row and the rows of its hashed
character n-grams (fastText); each of them receives the word's whole gradient, as in fastText.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import torch

from opensage.algorithms.blazingtext import native
from opensage.algorithms.blazingtext.text import (
    IntArray,
    Vocabulary,
    char_ngram_buckets,
    keep_probabilities,
    unigram_table,
)

TABLE_SIZE: Final = 1 << 22
ROW_STEP: Final = 1.0
"""The PyTorch path's most updates' worth per row and mini-batch step is this over the step's
learning rate (`capped_add`): a capped row then moves by at most about one of the vectors that
update it, whatever the learning rate."""
MIN_STEPS_PER_EPOCH: Final = 100
"""The PyTorch path's fewest mini-batch steps per epoch, whatever `batch`: a small corpus in a
GPU's large batches would get a handful of steps an epoch, each capped (`capped_add`), and its
frequent words would barely train (skip-gram on the lee corpus x5 at 131k pairs a step, 10
steps an epoch: WS-353 rho 0.06 below the compiled CPU loop's, median of 3 seeds)."""
MIN_LR_FRACTION: Final = 1e-4
NATIVE_MODES: Final = {"cbow": 0, "skipgram": 1, "batch_skipgram": 2}
"""The compiled loop's mode numbers (`_fasttext.c`)."""


def device() -> torch.device:
    """A GPU when one is present; the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


WORK_PER_THREAD: Final = 1 << 26
"""Multiply-adds of one step worth another CPU thread. NTM's threshold (2^23) is too low here:
a CBOW step of 2e7 multiply-adds ran 20 times slower on two busy cores than on one (measured:
5.6k against 100k words/s), the threads waiting on each other at every small op."""


def configure_threads(work: int) -> None:
    """torch's intra-op threads sized to `work` (multiply-adds of one step), at most the cores;
    an explicit OMP_NUM_THREADS wins. Deterministic maths on the CPU only: on a GPU it would
    swap `index_add_`'s atomic adds for a sort-based deterministic path, and GPU training is
    not promised to repeat bit for bit."""
    if not os.environ.get("OMP_NUM_THREADS"):
        wanted = 1 + work // WORK_PER_THREAD
        torch.set_num_threads(max(1, min(os.cpu_count() or 1, wanted)))
    torch.use_deterministic_algorithms(device().type == "cpu", warn_only=True)


def chunk_tokens(where: torch.device) -> int:
    """Corpus positions turned into examples at once: bounded memory whatever the corpus, and
    on a GPU enough that making them is a few large kernels rather than many small ones."""
    return 1 << 22 if where.type == "cuda" else 1 << 17


def default_batch(mode: str, where: torch.device) -> int:
    """Examples per step: small enough on a CPU that a frequent word's summed update stays an
    SGD step; large on a GPU, where a step's launch overhead dominates."""
    if where.type == "cuda":
        return 1 << 15 if mode == "cbow" else 1 << 17
    return 1024 if mode == "cbow" else 4096


@dataclass(frozen=True)
class Settings:
    mode: str
    dim: int
    window: int
    negatives: int
    threshold: float
    learning_rate: float
    epochs: int
    batch_size: int = 11
    subwords: bool = False
    min_char: int = 3
    max_char: int = 6
    buckets: int = 2_000_000
    seed: int = 0
    batch: int | None = None
    """Examples per mini-batch step of the PyTorch path; None: `default_batch`."""
    threads: int = 1
    """Hogwild threads of the compiled CPU path; one trains bit-reproducibly for a seed."""


@dataclass
class Corpus:
    """A corpus as vocabulary ids, with the line of each position."""

    ids: IntArray
    line_of: IntArray

    @property
    def size(self) -> int:
        return len(self.ids)


def encode_corpus(lines: list[list[str]], vocab: Vocabulary) -> Corpus:
    index = vocab.index
    ids: list[int] = []
    line_of: list[int] = []
    for number, tokens in enumerate(lines):
        kept = [i for i in (index.get(t) for t in tokens) if i is not None]
        ids.extend(kept)
        line_of.extend([number] * len(kept))
    return Corpus(np.asarray(ids, dtype=np.int64), np.asarray(line_of, dtype=np.int64))


@dataclass
class Subwords:
    """Each vocabulary word's input rows: its own row and one per hashed character n-gram that
    occurs (bucket ids compacted to rows `V..V+U-1`), padded with -1."""

    rows: IntArray
    bucket_ids: IntArray

    @classmethod
    def build(cls, words: list[str], min_n: int, max_n: int, buckets: int) -> Subwords:
        per_word = [sorted(set(char_ngram_buckets(w, min_n, max_n, buckets))) for w in words]
        used = np.unique(np.asarray([b for grams in per_word for b in grams], dtype=np.int64))
        position = {int(b): len(words) + i for i, b in enumerate(used.tolist())}
        width = 1 + max((len(g) for g in per_word), default=0)
        rows = np.full((len(words), width), -1, dtype=np.int64)
        for i, grams in enumerate(per_word):
            rows[i, 0] = i
            rows[i, 1 : 1 + len(grams)] = [position[b] for b in grams]
        return cls(rows, used)


class InputTable:
    """The input vectors: one row per word, plus the n-gram rows with subwords. `gather` gives
    the words' input vectors, `scatter` adds their gradients to every row they are made of."""

    def __init__(self, weight: torch.Tensor, rows: torch.Tensor | None) -> None:
        self.weight = weight
        self.rows = rows

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        if self.rows is None:
            return self.weight[ids]
        rows = self.rows[ids]
        mask = rows >= 0
        vectors = self.weight[rows.clamp(min=0)] * mask.unsqueeze(-1)
        return vectors.sum(-2) / mask.sum(-1, keepdim=True)

    def scatter(
        self,
        ids: torch.Tensor,
        grads: torch.Tensor,
        cap: float,
        present: torch.Tensor | None = None,
    ) -> None:
        """Add `grads` to the rows of `ids` where `present` (padding elsewhere: no boolean
        indexing, which would make a GPU wait for the host at every step)."""
        flat = grads.reshape(-1, grads.shape[-1])
        live = None if present is None else present.reshape(-1)
        if self.rows is None:
            capped_add(self.weight, ids.reshape(-1), flat, cap, live)
            return
        rows = self.rows[ids.reshape(-1)]
        mask = rows >= 0 if live is None else (rows >= 0) & live.unsqueeze(1)
        expanded = flat.unsqueeze(1).expand(-1, rows.shape[1], -1)
        capped_add(
            self.weight,
            rows.clamp(min=0).reshape(-1),
            expanded.reshape(flat.shape[0] * rows.shape[1], -1),
            cap,
            mask.reshape(-1),
        )


def row_cap(lr: float) -> float:
    """A step's most updates' worth per row at learning rate `lr` (`ROW_STEP`)."""
    return max(1.0, ROW_STEP / lr)


def capped_add(
    weight: torch.Tensor,
    rows: torch.Tensor,
    updates: torch.Tensor,
    cap: float,
    carries: torch.Tensor | None = None,
) -> None:
    """Add each example's SGD update to its row, at most `cap` updates' worth per row: a row
    that more examples update gets the mean of their updates times `cap`.

    Sequential SGD applies a frequent word's many updates one after another, each seeing the
    last, so its sigmoid saturates and the updates shrink; summed in one mini-batch step they
    all use the old vectors and overshoot. At a GPU's batches (32k-131k examples, where a
    frequent negative gets thousands of updates per step) the plain sum diverged to NaN on the
    lee corpus, and a fixed cap of 64 still blew a small vocabulary up once the steps were many
    (hence `ROW_STEP` / lr). `carries`: how many examples' updates each entry is the sum of
    (one by default; zero for padding, which then adds nothing)."""
    if carries is None:
        carries = torch.ones_like(rows, dtype=updates.dtype)
    carries = carries.to(updates.dtype)
    counts = weight.new_zeros(weight.shape[0]).index_add_(0, rows, carries)[rows]
    scale = (cap / counts.clamp(min=1.0)).clamp(max=1.0) * (carries > 0)
    weight.index_add_(0, rows, updates * scale.unsqueeze(-1))


class Word2Vec:
    """Training state: the input and output tables, the negative table and the random streams."""

    def __init__(
        self, settings: Settings, vocab: Vocabulary, where: torch.device | None = None
    ) -> None:
        self.s = settings
        self.vocab = vocab
        self.device = where or device()
        self.generator = torch.Generator(device="cpu").manual_seed(settings.seed)
        self.random = torch.Generator(device=self.device).manual_seed(settings.seed)
        """The examples' and negatives' random stream, on the training device."""
        self.subwords = (
            Subwords.build(vocab.words, settings.min_char, settings.max_char, settings.buckets)
            if settings.subwords
            else None
        )
        n_rows = len(vocab) + (len(self.subwords.bucket_ids) if self.subwords else 0)
        bound = 1.0 / settings.dim
        weight = (torch.rand(n_rows, settings.dim, generator=self.generator) * 2 - 1) * bound
        if self.subwords is not None:
            weight[len(vocab) :] = 0.0  # n-gram rows start at zero; a word's own row is random
        rows = None if self.subwords is None else torch.from_numpy(self.subwords.rows)
        self.input = InputTable(
            weight.to(self.device), None if rows is None else rows.to(self.device)
        )
        self.output = torch.zeros(len(vocab), settings.dim, device=self.device)
        cdf = unigram_table(vocab.counts)
        table = np.searchsorted(cdf, (np.arange(TABLE_SIZE) + 0.5) / TABLE_SIZE)
        self.table = torch.from_numpy(np.minimum(table, len(vocab) - 1)).to(self.device)
        self.keep = torch.from_numpy(keep_probabilities(vocab.counts, settings.threshold)).to(
            self.device
        )
        self.batch = settings.batch or default_batch(settings.mode, self.device)
        if settings.mode == "batch_skipgram":  # `batch` counts pairs; a window holds several
            self.batch = max(1, self.batch // min(settings.batch_size, 2 * settings.window))
        self.native = self.device.type == "cpu" and native.KERNELS is not None
        """fastText's compiled loop trains (the CPU, when built), not the PyTorch steps."""
        self.mode_step: Callable[[dict[str, torch.Tensor], float], None] = {
            "skipgram": self._skipgram_step,
            "cbow": self._cbow_step,
            "batch_skipgram": self._shared_step,
        }[settings.mode]

    def work(self) -> int:
        """Multiply-adds of one step (forward and backward), to size the CPU threads."""
        per_example = (1 + self.s.negatives) * self.s.dim * 3
        if self.s.mode != "skipgram":
            per_example *= min(self.s.batch_size, 2 * self.s.window)
        return self.batch * per_example

    # --- the epoch loop ------------------------------------------------------------------------

    def train(self, corpus: Corpus, info: Callable[[str], None] | None = None) -> None:
        if self.native:
            self._train_native(corpus, info)
            return
        total = max(corpus.size * self.s.epochs, 1)
        ids = torch.from_numpy(corpus.ids).to(self.device)
        line_of = torch.from_numpy(corpus.line_of).to(self.device)
        chunk = chunk_tokens(self.device)
        done = 0
        for epoch in range(self.s.epochs):
            started = time.perf_counter()
            for start in range(0, corpus.size, chunk):
                stop = min(start + chunk, corpus.size)
                examples = self._examples(ids[start:stop], line_of[start:stop])
                self._run(examples, done, stop - start, total, corpus.size)
                done += stop - start
            if info is not None:
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                seconds = time.perf_counter() - started
                info(
                    f"Epoch {epoch + 1}/{self.s.epochs}: {corpus.size} words in {seconds:.2f} s "
                    f"({corpus.size / max(seconds, 1e-9):,.0f} words/s)"
                )

    def _train_native(self, corpus: Corpus, info: Callable[[str], None] | None) -> None:
        """All epochs in one call to the compiled loop, which updates the tables in place
        (their numpy views share the tensors' memory)."""
        vocab = len(self.vocab)
        if self.subwords is not None:
            rows, offsets = native.flat_rows(self.subwords.rows)
        else:
            rows, offsets = np.arange(vocab, dtype=np.int32), np.arange(vocab + 1, dtype=np.int64)
        counter = np.zeros(1, dtype=np.int64)
        with native.EpochReports(counter, corpus.size, self.s.epochs, info):
            native.KERNELS.word2vec(
                input=self.input.weight.numpy(),
                output=self.output.numpy(),
                subword_rows=rows,
                subword_offsets=offsets,
                corpus=corpus.ids.astype(np.int32),
                line_starts=native.line_starts(corpus.line_of),
                keep=self.keep.numpy().astype(np.float32),
                table=self.table.numpy().astype(np.int32),
                counter=counter,
                mode=NATIVE_MODES[self.s.mode],
                dim=self.s.dim,
                window=self.s.window,
                negatives=self.s.negatives,
                batch_size=self.s.batch_size,
                learning_rate=self.s.learning_rate,
                min_lr_fraction=MIN_LR_FRACTION,
                epochs=self.s.epochs,
                threads=self.s.threads,
                seed=self.s.seed,
            )

    def _run(
        self, examples: dict[str, torch.Tensor], done: int, words: int, total: int, corpus: int
    ) -> None:
        """One chunk's examples in steps of at most `batch`, and at least `MIN_STEPS_PER_EPOCH`
        steps per epoch (the chunk's share of them)."""
        count = len(next(iter(examples.values())))
        if count == 0:
            return
        least = math.ceil(MIN_STEPS_PER_EPOCH * words / corpus)
        steps = min(count, max(math.ceil(count / self.batch), least))
        size = math.ceil(count / steps)
        for step in range(steps):
            progress = (done + words * step / steps) / total
            lr = self.s.learning_rate * max(MIN_LR_FRACTION, 1.0 - progress)
            part = slice(step * size, (step + 1) * size)
            self.mode_step({key: value[part] for key, value in examples.items()}, lr)

    def _examples(self, ids: torch.Tensor, line_of: torch.Tensor) -> dict[str, torch.Tensor]:
        """One chunk's training examples, made where the model trains (no host round trip on
        a GPU): subsampled, windows shrunk, shuffled."""
        draw = self.random
        kept = torch.rand(len(ids), generator=draw, device=self.device) < self.keep[ids]
        tokens, lines = ids[kept], line_of[kept]
        shrunk = torch.randint(
            1, self.s.window + 1, (len(tokens),), generator=draw, device=self.device
        )
        if self.s.mode == "skipgram":
            centre, context = _pairs(tokens, lines, shrunk, self.s.window)
            order = torch.randperm(len(centre), generator=draw, device=self.device)
            return {"centre": centre[order], "context": context[order]}
        limit = self.s.batch_size if self.s.mode == "batch_skipgram" else 2 * self.s.window
        centre, contexts = _windows(tokens, lines, shrunk, self.s.window, limit)
        order = torch.randperm(len(centre), generator=draw, device=self.device)
        return {"centre": centre[order], "contexts": contexts[order]}

    def _negatives(self, shape: tuple[int, ...]) -> torch.Tensor:
        draw = torch.randint(len(self.table), shape, generator=self.random, device=self.device)
        return self.table[draw]

    # --- the three kinds of step ---------------------------------------------------------------

    def _targets(
        self, positive: torch.Tensor, count: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The positive word then `negative_samples` negatives per row, and the labels (a
        negative that happens to be the positive gets no gradient: word2vec skips it)."""
        negatives = self._negatives((count, self.s.negatives))
        targets = torch.cat([positive.unsqueeze(1), negatives], dim=1)
        labels = torch.zeros(targets.shape, device=self.device)
        labels[:, 0] = 1.0
        live = torch.ones(targets.shape, device=self.device)
        live[:, 1:] = (negatives != positive.unsqueeze(1)).float()
        return targets, labels, live

    def _skipgram_step(self, batch: dict[str, torch.Tensor], lr: float) -> None:
        cap = row_cap(lr)
        centre, context = batch["centre"], batch["context"]
        targets, labels, live = self._targets(context, len(centre))
        u = self.input.gather(centre)  # B x D
        v = self.output[targets]  # B x (1+K) x D
        scores = torch.bmm(v, u.unsqueeze(-1)).squeeze(-1)
        g = (labels - torch.sigmoid(scores)) * live * lr
        grad_u = torch.bmm(g.unsqueeze(1), v).squeeze(1)
        capped_add(
            self.output,
            targets.reshape(-1),
            (g.unsqueeze(-1) * u.unsqueeze(1)).reshape(-1, u.shape[1]),
            cap,
        )
        self.input.scatter(centre, grad_u, cap)

    def _cbow_step(self, batch: dict[str, torch.Tensor], lr: float) -> None:
        cap = row_cap(lr)
        centre, contexts = batch["centre"], batch["contexts"]
        mask = contexts >= 0
        safe = contexts.clamp(min=0)
        vectors = self.input.gather(safe) * mask.unsqueeze(-1)
        h = vectors.sum(1) / mask.sum(1, keepdim=True)
        targets, labels, live = self._targets(centre, len(centre))
        v = self.output[targets]
        scores = torch.bmm(v, h.unsqueeze(-1)).squeeze(-1)
        g = (labels - torch.sigmoid(scores)) * live * lr
        grad_h = torch.bmm(g.unsqueeze(1), v).squeeze(1)
        grads = grad_h.unsqueeze(1).expand(-1, contexts.shape[1], -1)
        capped_add(
            self.output,
            targets.reshape(-1),
            (g.unsqueeze(-1) * h.unsqueeze(1)).reshape(-1, h.shape[1]),
            cap,
        )
        self.input.scatter(safe, grads, cap, mask)

    def _shared_step(self, batch: dict[str, torch.Tensor], lr: float) -> None:
        cap = row_cap(lr)
        centre, contexts = batch["centre"], batch["contexts"]
        mask = contexts >= 0
        safe = contexts.clamp(min=0)
        m = self.input.gather(safe) * mask.unsqueeze(-1)  # B x C x D
        targets, labels, live = self._targets(centre, len(centre))
        o = self.output[targets]  # B x (1+K) x D
        scores = torch.bmm(m, o.transpose(1, 2))  # B x C x (1+K)
        g = (labels.unsqueeze(1) - torch.sigmoid(scores)) * live.unsqueeze(1)
        g = g * mask.unsqueeze(-1) * lr
        grad_m = torch.bmm(g, o)  # B x C x D
        grad_o = torch.bmm(g.transpose(1, 2), m)  # B x (1+K) x D
        pairs = mask.sum(1, keepdim=True).expand(-1, targets.shape[1])  # each entry sums a window
        capped_add(
            self.output,
            targets.reshape(-1),
            grad_o.reshape(-1, o.shape[2]),
            cap,
            pairs.reshape(-1),
        )
        self.input.scatter(safe, grad_m, cap, mask)

    # --- results -------------------------------------------------------------------------------

    def word_vectors(self) -> npt.NDArray[np.float32]:
        """Each vocabulary word's vector (with subwords: the mean of its rows)."""
        step = 1 << 14
        with torch.no_grad():
            vectors = torch.cat(
                [
                    self.input.gather(
                        torch.arange(start, min(start + step, len(self.vocab)), device=self.device)
                    )
                    for start in range(0, len(self.vocab), step)
                ]
            )
        return np.asarray(vectors.cpu().numpy(), dtype=np.float32)

    def ngram_rows(self) -> npt.NDArray[np.float32]:
        """The n-gram rows (subwords only), in `Subwords.bucket_ids` order."""
        rows = self.input.weight[len(self.vocab) :]
        return np.asarray(rows.cpu().numpy(), dtype=np.float32)


def _pairs(
    tokens: torch.Tensor, lines: torch.Tensor, shrunk: torch.Tensor, window: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Skip-gram (centre, context) pairs: every context within the centre's shrunk window, in
    the centre's line."""
    centres: list[torch.Tensor] = [tokens[:0]]
    contexts: list[torch.Tensor] = [tokens[:0]]
    for d in range(1, min(window + 1, len(tokens))):
        same = lines[:-d] == lines[d:]
        right = same & (shrunk[:-d] >= d)  # centre i, context i + d
        left = same & (shrunk[d:] >= d)  # centre i + d, context i
        centres += [tokens[:-d][right], tokens[d:][left]]
        contexts += [tokens[d:][right], tokens[:-d][left]]
    return torch.cat(centres), torch.cat(contexts)


def _windows(
    tokens: torch.Tensor, lines: torch.Tensor, shrunk: torch.Tensor, window: int, limit: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each position with at least one context word: the centre and its context words (within
    its shrunk window and line, nearest first, at most `limit`), padded with -1."""
    n = len(tokens)
    contexts = torch.full((n, 2 * window), -1, dtype=tokens.dtype, device=tokens.device)
    for d in range(1, min(window + 1, n)):
        before = (lines[d:] == lines[:-d]) & (shrunk[d:] >= d)  # centre i + d, context i
        after = (lines[:-d] == lines[d:]) & (shrunk[:-d] >= d)  # centre i, context i + d
        contexts[d:, 2 * d - 2] = torch.where(before, tokens[:-d], -1)
        contexts[:-d, 2 * d - 1] = torch.where(after, tokens[d:], -1)
    if limit < contexts.shape[1]:  # columns go by distance: keep the first `limit` present
        present = contexts >= 0
        keep = present & (present.cumsum(dim=1) <= limit)
        contexts = _compact(torch.where(keep, contexts, -1), limit)
    has = (contexts >= 0).any(dim=1)
    return tokens[has], contexts[has]


def _compact(contexts: torch.Tensor, width: int) -> torch.Tensor:
    """Move each row's present entries (>= 0) to the front, keeping their order; cut to width."""
    order = torch.sort((contexts < 0).to(torch.uint8), dim=1, stable=True).indices
    return contexts.gather(1, order)[:, :width]
