"""NTM training: mini-batch variational inference over the `train` channel for up to `epochs`
epochs, early stopping on the (validation, else training) loss, `model_algo-1`, and the metric
lines `train:total_loss`, `validation:total_loss` (the tuning objective) and `test:total_loss`.

Documents are read in `mini_batch_size` batches (CSR for sparse records) and made a dense tensor
one mini-batch at a time, never the whole channel. The batches of the first epoch are kept while
they fit in `env.CACHE_BYTES`; larger channels are re-read each epoch from the files (File mode) or
the next epoch's FIFO (Pipe mode). Everything random (initial weights, the reparameterisation
noise, `sub_sample`) comes from fixed seeds, so the same job trains the same model on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np
import scipy.sparse as sp
import torch

from opensage.algorithms.base import UserError
from opensage.algorithms.env import ChannelReader, Passes, TrainingEnv
from opensage.algorithms.ntm.model import (
    Architecture,
    NTMModel,
    NTMNet,
    configure_threads,
    device,
)
from opensage.algorithms.ntm.spec import encoder_layers

SEED: Final = 0
TOP_WORDS: Final = 10
VOCAB_FILE: Final = "vocab.txt"


def train(env: TrainingEnv) -> None:
    torch.manual_seed(SEED)
    feature_dim: int = env["feature_dim"]
    arch = Architecture(
        feature_dim=feature_dim,
        num_topics=env["num_topics"],
        encoder_layers=tuple(encoder_layers(env["encoder_layers"], env["num_topics"])),
        activation=env["encoder_layers_activation"],
        batch_norm=env["batch_norm"],
    )
    configure_threads(arch.work(env["mini_batch_size"]))
    vocab = read_vocabulary(env.channel("auxiliary"), feature_dim)
    documents = env.channel("train")
    assert documents is not None  # the spec makes it required; TrainingEnv checked it
    batch_size: int = env["mini_batch_size"]
    trainer = Trainer(NTMNet(arch).to(device()), settings(env), env.log.info)
    source = Documents(documents, feature_dim, batch_size)
    validation = _documents(env, "validation", feature_dim, batch_size)
    test = _documents(env, "test", feature_dim, batch_size)
    epochs: int = env["epochs"]
    stopper = EarlyStopping(env["tolerance"], env["num_patience_epochs"])
    for epoch in range(epochs):
        train_loss = trainer.epoch(source.epoch(epoch))
        if math.isfinite(train_loss):
            env.log.quality("train", "total_loss", train_loss, "Minimize")
        watched = train_loss
        if validation is not None:
            watched = trainer.evaluate(validation.epoch(epoch))
            env.log.quality("validation", "total_loss", watched, "Minimize")
        env.log.progress(epoch + 1, epochs)
        if stopper.stop(watched):
            env.log.info(
                f"Early stopping after epoch {epoch + 1}: the relative change of the "
                f"{'validation' if validation is not None else 'training'} loss stayed below "
                f"tolerance {stopper.tolerance} for {stopper.patience} epochs"
            )
            break
    model = NTMModel(trainer.net)
    model.save(env.model_dir)
    if test is not None:
        env.log.quality("test", "total_loss", trainer.evaluate(test.epoch(0)), "Minimize")
    if vocab is not None:
        describe_topics(model.projection, vocab, env.log.info)


def _documents(env: TrainingEnv, name: str, feature_dim: int, size: int) -> Documents | None:
    reader = env.channel(name)
    return None if reader is None else Documents(reader, feature_dim, size)


def settings(env: TrainingEnv) -> dict[str, Any]:
    names = ("optimizer", "learning_rate", "weight_decay", "rescale_gradient", "sub_sample")
    found = {name: env[name] for name in names}
    found["clip_gradient"] = env.get("clip_gradient")
    return found


def build_optimizer(
    name: str, params: Any, learning_rate: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The optimizer `name`. AdaDelta takes no learning rate in MXNet (SageMaker's engine), so
    it runs at torch's step size 1.0 whatever `learning_rate` says."""
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=1.0, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name}")


class Trainer:
    """One network, its optimizer and its random streams."""

    def __init__(self, net: NTMNet, config: dict[str, Any], info: Callable[[str], None]) -> None:
        self.net = net
        self.device = next(net.parameters()).device
        self.config = config
        self.optimizer = build_optimizer(
            config["optimizer"], net.parameters(), config["learning_rate"], config["weight_decay"]
        )
        self.noise = torch.Generator(device=self.device).manual_seed(SEED + 1)
        self.rows = np.random.default_rng(SEED + 2)
        self.info = info
        self.skipped_single = False

    def epoch(self, batches: Iterator[Any]) -> float:
        """One pass of updates; the mean training loss per document (at the sampled z), NaN
        when `sub_sample` left no document to train on this epoch."""
        self.net.train()
        total = 0.0
        count = 0
        for block in batches:
            rows = self._sub_sample(block)
            if rows.shape[0] == 0:
                continue
            if rows.shape[0] == 1 and self.net.arch.batch_norm:
                if not self.skipped_single:
                    self.info("batch_norm: a mini-batch of one document is skipped")
                    self.skipped_single = True
                continue
            x = to_tensor(rows, self.device)
            eps = torch.randn(
                x.shape[0], self.net.arch.num_topics, generator=self.noise, device=self.device
            )
            loss = self.net.loss(x, eps).total
            self.optimizer.zero_grad()
            torch.autograd.backward(loss.mean())
            self._adjust_gradients()
            self.optimizer.step()
            total += float(loss.detach().sum())
            count += int(x.shape[0])
        return total / count if count else math.nan  # sub_sample may leave none

    def evaluate(self, batches: Iterator[Any]) -> float:
        """The mean loss per document at z = mu (deterministic)."""
        self.net.eval()
        total = 0.0
        count = 0
        with torch.no_grad():
            for block in batches:
                x = to_tensor(block, self.device)
                total += float(self.net.loss(x).total.sum())
                count += int(x.shape[0])
        return total / count if count else math.nan

    def _sub_sample(self, block: Any) -> Any:
        fraction: float = self.config["sub_sample"]
        if fraction >= 1.0:
            return block
        keep = self.rows.random(block.shape[0]) < fraction
        return block[np.flatnonzero(keep)]

    def _adjust_gradients(self) -> None:
        rescale: float = self.config["rescale_gradient"]
        clip: float | None = self.config["clip_gradient"]
        params = [p for p in self.net.parameters() if p.grad is not None]
        if rescale != 1.0:
            for p in params:
                assert p.grad is not None
                p.grad.mul_(rescale)
        if clip is not None:  # MXNet clips each gradient element, as SageMaker's NTM does
            torch.nn.utils.clip_grad_value_(params, clip)


def to_tensor(block: Any, where: torch.device) -> torch.Tensor:
    """One mini-batch as a dense float32 tensor (sparse rows filled with zeros here only)."""
    dense = block.toarray() if sp.issparse(block) else block
    return torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32)).to(where)


class EarlyStopping:
    """Stop once the relative change of the watched loss stays below `tolerance` for
    `patience` consecutive epochs."""

    def __init__(self, tolerance: float, patience: int) -> None:
        self.tolerance = tolerance
        self.patience = patience
        self.previous: float | None = None
        self.flat = 0

    def stop(self, loss: float) -> bool:
        """Whether to stop after an epoch whose watched loss is `loss` (NaN: nothing seen)."""
        if not math.isfinite(loss):
            return False
        if self.previous is not None:
            change = abs(self.previous - loss) / max(abs(self.previous), 1e-12)
            self.flat = self.flat + 1 if change < self.tolerance else 0
        self.previous = loss
        return self.flat >= self.patience


class Documents(Passes):
    """A channel's documents as checked mini-batches of `feature_dim` word counts, per epoch."""

    def __init__(self, reader: ChannelReader, feature_dim: int, size: int) -> None:
        super().__init__(reader, size)
        self.feature_dim = feature_dim

    def check(self, features: Any, before: int) -> Any:
        width = int(features.shape[1])
        if width > self.feature_dim or (width < self.feature_dim and not sp.issparse(features)):
            raise UserError(
                f"Channel '{self.reader.name}': a record among records {before}-"
                f"{before + features.shape[0] - 1} has {width} words (columns) but feature_dim "
                f"is {self.feature_dim}; set feature_dim to the vocabulary size."
            )
        if sp.issparse(features):
            m = sp.csr_matrix(features, dtype=np.float32)
            block: Any = sp.csr_matrix(
                (m.data, m.indices, m.indptr), shape=(m.shape[0], self.feature_dim)
            )
            values = block.data
        else:
            block = np.asarray(features, dtype=np.float32)
            values = block
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise UserError(
                f"Channel '{self.reader.name}': a record among records {before}-"
                f"{before + features.shape[0] - 1} has a negative or non-finite word count; "
                "NTM reads documents as non-negative word counts."
            )
        return block


def read_vocabulary(reader: ChannelReader | None, feature_dim: int) -> list[str] | None:
    """The `auxiliary` channel's vocab.txt (utf-8, one word a line, in id order), if given."""
    if reader is None:
        return None
    if reader.pipe:
        raise UserError(
            "Channel 'auxiliary' is in Pipe mode: the NTM algorithm reads vocab.txt in File "
            "mode only."
        )
    found = sorted(reader.folder.rglob(VOCAB_FILE)) if reader.folder.is_dir() else []
    if not found:
        raise UserError(
            f"Channel 'auxiliary' holds no {VOCAB_FILE}: give a file named {VOCAB_FILE} with "
            "one word per line in word-id order."
        )
    try:
        words = found[0].read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"Channel 'auxiliary': {VOCAB_FILE} is not utf-8 text.") from None
    words = [word.strip() for word in words]
    while words and not words[-1]:
        words.pop()
    if len(words) != feature_dim:
        raise UserError(
            f"Channel 'auxiliary': {VOCAB_FILE} has {len(words)} words but feature_dim is "
            f"{feature_dim}; it must list one word per feature, in id order."
        )
    return words


def top_word_ids(projection: Any, count: int = TOP_WORDS) -> list[list[int]]:
    """Each topic's `count` highest-weighted word ids (the columns of W)."""
    columns = np.asarray(projection).T
    count = min(count, columns.shape[1])
    return [[int(i) for i in np.argsort(-column, kind="stable")[:count]] for column in columns]


def topic_uniqueness(tops: list[list[int]]) -> float:
    """Nan et al. (2019) TU: the mean over topics' top words of 1 / (the number of topics whose
    top words hold the word); 1 when no two topics share a top word, 1/K when all agree."""
    counts: dict[int, int] = {}
    for words in tops:
        for word in words:
            counts[word] = counts.get(word, 0) + 1
    per_topic = [sum(1 / counts[w] for w in words) / len(words) for words in tops if words]
    return float(np.mean(per_topic)) if per_topic else 0.0


def describe_topics(projection: Any, vocab: list[str], info: Callable[[str], None]) -> None:
    tops = top_word_ids(projection)
    for k, words in enumerate(tops):
        info(f"[topic {k}] {' '.join(vocab[w] for w in words)}")
    info(f"Topic uniqueness (top {TOP_WORDS} words): {topic_uniqueness(tops)!r}")
    info("WETC (word-embedding topic coherence) is not computed: it needs word embeddings")
