"""Object2Vec's data: JSON Lines pairs of token-id lists, checked and truncated, batched with
optional length bucketing and negative sampling; and the `auxiliary` pretrained embeddings.

A record is `{"label": 0, "in0": [6, 17, 606], "in1": [16, 21, 13]}`: ids must lie in
[0, enc{0,1}_vocab_size) and sequences longer than enc{0,1}_max_seq_len are cut to it. Any bad
record fails the job with a `UserError` naming the channel, the file and the line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.base import UserError
from opensage.algorithms.env import ChannelReader, data_files
from opensage.algorithms.object2vec.spec import EncoderSettings

Ints = npt.NDArray[np.int64]
Ids = npt.NDArray[np.int32]
FILE_LIMIT: Final = 80


@dataclass
class Pairs:
    """A channel's records: each side's token ids end to end (int32) with each record's offset
    and length, so memory follows the tokens read, not the longest sequence times the records;
    a mini-batch is padded when it is taken."""

    flat: tuple[Ids, Ids]
    offsets: tuple[Ints, Ints]
    lengths: tuple[Ints, Ints]
    labels: npt.NDArray[np.float32]

    @classmethod
    def from_sequences(
        cls, in0: Sequence[Sequence[int]], in1: Sequence[Sequence[int]], labels: Sequence[float]
    ) -> Pairs:
        sides = [_flat(in0), _flat(in1)]
        return cls(
            (sides[0][0], sides[1][0]),
            (sides[0][1], sides[1][1]),
            (sides[0][2], sides[1][2]),
            np.asarray(labels, dtype=np.float32),
        )

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    def side(self, i: int, rows: Ints) -> tuple[Ints, Ints]:
        """Side `i` of `rows`: token ids zero-padded to the longest of them (int64), lengths."""
        lengths = self.lengths[i][rows]
        width = max(1, int(lengths.max())) if len(rows) else 1
        positions = np.arange(width, dtype=np.int64)
        inside = positions[None, :] < lengths[:, None]
        index = np.where(inside, self.offsets[i][rows][:, None] + positions[None, :], 0)
        tokens = np.where(inside, self.flat[i][index], 0).astype(np.int64)
        return tokens, lengths


def _flat(sequences: Sequence[Sequence[int]]) -> tuple[Ids, Ints, Ints]:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(sequences), dtype=np.int64)
    if len(sequences) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    flat = np.fromiter(
        (token for sequence in sequences for token in sequence),
        dtype=np.int32,
        count=int(lengths.sum()),
    )
    if not len(flat):
        flat = np.zeros(1, np.int32)
    return flat, offsets, lengths


def token_ids(value: Any, side: str, settings: EncoderSettings, where: str) -> list[int]:
    """A record's `in0` / `in1`: a non-empty list of ids in the vocabulary, cut to the limit."""
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: '{side}' must be a non-empty list of integer token ids.")
    ids: list[int] = []
    for item in value[: settings.max_seq_len]:
        if isinstance(item, bool) or not isinstance(item, int | float) or item != int(item):
            raise UserError(f"{where}: '{side}' holds {json.dumps(item)[:40]}, not a token id.")
        token = int(item)
        if not 0 <= token < settings.vocab_size:
            raise UserError(
                f"{where}: '{side}' holds token id {token}, outside the vocabulary "
                f"[0, {settings.vocab_size}) set by enc{side[-1]}_vocab_size."
            )
        ids.append(token)
    return ids


def parse_label(value: Any, num_classes: int | None, where: str) -> float:
    """An int class in [0, num_classes) (softmax) or any finite number (regression: None)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{where}: 'label' must be a number, not {json.dumps(value)[:40]}.")
    if num_classes is not None and (value != int(value) or not 0 <= value < num_classes):
        raise UserError(
            f"{where}: 'label' {value} is not a class in 0..{num_classes - 1} (num_classes "
            f"{num_classes}); use output_layer=mean_squared_error for real-valued labels."
        )
    return float(value)


def read_pairs(
    reader: ChannelReader,
    encoders: tuple[EncoderSettings, EncoderSettings],
    num_classes: int | None,
) -> Pairs:
    """Every record of a channel, checked; `num_classes` None reads real-valued labels."""
    sides: tuple[list[list[int]], list[list[int]]] = ([], [])
    labels: list[float] = []
    files = data_files(reader.folder) if reader.folder.is_dir() else []
    for path in files:
        name = str(path.relative_to(reader.folder))[:FILE_LIMIT]
        with path.open("rb") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                where = f"Channel '{reader.name}', file '{name}', line {number}"
                record = _record(line, where)
                for i in (0, 1):
                    side = f"in{i}"
                    if side not in record:
                        raise UserError(f"{where}: the record has no '{side}'.")
                    sides[i].append(token_ids(record[side], side, encoders[i], where))
                if "label" not in record:
                    raise UserError(f"{where}: the record has no 'label'.")
                labels.append(parse_label(record["label"], num_classes, where))
    if not labels:
        raise UserError(f"No data in channel '{reader.name}': its files hold no records.")
    return Pairs.from_sequences(sides[0], sides[1], labels)


def _record(line: bytes, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        raise UserError(f"{where}: not a JSON object (the channel must be JSON Lines).") from None
    if not isinstance(record, dict):
        raise UserError(f"{where}: not a JSON object with 'label', 'in0' and 'in1'.")
    return record


def batch_order(
    lengths: tuple[Ints, Ints], size: int, bucket_width: int, rng: np.random.Generator
) -> list[Ints]:
    """One epoch's mini-batches of row indices, shuffled. With `bucket_width` > 0, rows whose
    lengths fall in the same buckets of that width are batched together (less padding), and the
    batches are then shuffled."""
    n = len(lengths[0])
    order = rng.permutation(n)
    if bucket_width > 0:
        keys = (lengths[0][order] - 1) // bucket_width * (1 << 20) + (
            lengths[1][order] - 1
        ) // bucket_width
        order = order[np.argsort(keys, kind="stable")]
    batches = [order[start : start + size] for start in range(0, n, size)]
    if bucket_width > 0:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def negative_samples(
    labels: npt.NDArray[np.float32], rate: int, rng: np.random.Generator
) -> tuple[Ints, Ints]:
    """For each positive pair (label not 0) of a batch, `rate` negatives: its in0 with the in1
    of another random pair of the batch. Returns (rows for in0, rows for in1), batch-relative,
    for the negatives only; they are labelled 0."""
    n = len(labels)
    positives = np.flatnonzero(labels != 0)
    if rate <= 0 or n < 2 or not len(positives):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    first = np.repeat(positives, rate).astype(np.int64)
    offsets = rng.integers(1, n, size=len(first))  # never the pair itself
    return first, (first + offsets) % n


def read_pretrained(
    reader: ChannelReader | None, embedding_file: str, vocab_file: str, settings: EncoderSettings
) -> tuple[Ints, npt.NDArray[np.float32]]:
    """Rows of encoder `settings`' token embedding to set: the ids (from the vocab file, JSON
    token -> id) and their vectors (from the embedding file, `token v1 v2 ...` a line, as GloVe
    writes). Tokens missing from either file keep their random start."""
    if reader is None:
        raise UserError(
            f"{embedding_file} is named as a pretrained embedding, but the job has no "
            "'auxiliary' channel holding it."
        )
    vocab = _load_vocab(_auxiliary_file(reader, vocab_file), vocab_file)
    ids: list[int] = []
    vectors: list[list[float]] = []
    path = _auxiliary_file(reader, embedding_file)
    with path.open(encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            token, values = parts[0], parts[1:]
            if len(values) != settings.token_embedding_dim:
                if number == 1 and len(values) == 1:
                    continue  # a word2vec-style "count dim" header
                raise UserError(
                    f"Channel 'auxiliary', file '{embedding_file}', line {number}: {len(values)} "
                    f"values, but the token embedding dimension is "
                    f"{settings.token_embedding_dim}."
                )
            token_id = vocab.get(token)
            if token_id is None or not 0 <= token_id < settings.vocab_size:
                continue
            try:
                vectors.append([float(v) for v in values])
            except ValueError:
                raise UserError(
                    f"Channel 'auxiliary', file '{embedding_file}', line {number}: not numbers."
                ) from None
            ids.append(token_id)
    return np.asarray(ids, dtype=np.int64), np.asarray(vectors, dtype=np.float32).reshape(
        len(ids), settings.token_embedding_dim
    )


def _auxiliary_file(reader: ChannelReader, name: str) -> Path:
    found = sorted(reader.folder.rglob(name)) if reader.folder.is_dir() else []
    if not found:
        raise UserError(f"Channel 'auxiliary' holds no file named '{name}'.")
    return found[0]


def _load_vocab(path: Path, name: str) -> dict[str, int]:
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UserError(
            f"Channel 'auxiliary', file '{name}': not a JSON object of token -> id."
        ) from None
    if not isinstance(vocab, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in vocab.values()
    ):
        raise UserError(f"Channel 'auxiliary', file '{name}': not a JSON object of token -> id.")
    return {str(k): int(v) for k, v in vocab.items()}
