"""Seq2seq data: the `vocab` channel's `vocab.src.json` / `vocab.trg.json` (token -> id) and the
RecordIO-protobuf records of int32 `features["source"]` / `features["target"]` ids (spec
algorithms §14(b)), read with clear errors, and records written for tests and responses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.base import UserError
from opensage.algorithms.env import data_files, describe_record_error
from opensage.formats import recordio
from opensage.formats.errors import RecordError
from opensage.formats.tensors import read_record_messages
from opensage.formats.wire import I32, encode_tensor, map_entry

SOURCE_VOCAB: Final = "vocab.src.json"
TARGET_VOCAB: Final = "vocab.trg.json"
RESERVED: Final = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
Ids = npt.NDArray[np.int64]


def read_vocabulary(folder: Path, name: str, channel: str = "vocab") -> list[str]:
    """The tokens of one vocabulary file in id order; `UserError` naming what is wrong."""
    found = sorted(folder.rglob(name)) if folder.is_dir() else []
    if not found:
        raise UserError(
            f"Channel '{channel}' holds no {name}: give {SOURCE_VOCAB} and {TARGET_VOCAB}, "
            "each a JSON object mapping token to id (<pad>=0, <unk>=1, <s>=2, </s>=3)."
        )
    try:
        mapping = json.loads(found[0].read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"Channel '{channel}': {name} is not a JSON document ({exc}).") from None
    return vocabulary_from_mapping(mapping, name)


def vocabulary_from_mapping(mapping: Any, name: str) -> list[str]:
    """Token -> id as a list in id order: ids must be the integers 0..n-1, each used once, and
    the reserved tokens must have their ids."""
    if not isinstance(mapping, dict) or not mapping:
        raise UserError(f"{name} must be a non-empty JSON object mapping token to id.")
    tokens: list[str | None] = [None] * len(mapping)
    for token, index in mapping.items():
        if not isinstance(index, int) or isinstance(index, bool):
            raise UserError(f"{name}: the id of token {token!r} is {index!r}, not an integer.")
        if not 0 <= index < len(mapping) or tokens[index] is not None:
            raise UserError(
                f"{name}: ids must be 0..{len(mapping) - 1}, each used once; token {token!r} "
                f"has id {index}."
            )
        tokens[index] = token
    for token, index in RESERVED.items():
        if mapping.get(token) != index:
            raise UserError(
                f"{name}: token {token} must have id {index} (<pad>=0, <unk>=1, <s>=2, </s>=3)."
            )
    return [str(token) for token in tokens]


@dataclass
class Pairs:
    """Source and target id sequences of one channel, truncated to the maximum lengths."""

    sources: list[Ids]
    targets: list[Ids]

    def __len__(self) -> int:
        return len(self.sources)


def read_pairs(
    folder: Path,
    channel: str,
    vocab_sizes: tuple[int, int],
    max_lengths: tuple[int, int],
) -> Pairs:
    """Every record of a channel's files; ids checked against the vocabularies."""
    sources: list[Ids] = []
    targets: list[Ids] = []
    files = data_files(folder) if folder.is_dir() else []
    for path in files:
        where = f"file '{path.relative_to(folder)}' of channel '{channel}'"
        try:
            records = read_record_messages(path.read_bytes(), source=path.name)
        except RecordError as exc:
            raise UserError(f"Could not read {where}: {describe_record_error(exc)}") from None
        for index, record in enumerate(records):
            pair = []
            for key, size, limit in zip(
                ("source", "target"), vocab_sizes, max_lengths, strict=True
            ):
                ids = _ids(record, key, f"record {index} of {where}")
                if ids.size and (ids.min() < 0 or ids.max() >= size):
                    bad = int(ids[(ids < 0) | (ids >= size)][0])
                    vocab = SOURCE_VOCAB if key == "source" else TARGET_VOCAB
                    raise UserError(
                        f"Record {index} of {where}: {key} id {bad} is outside {vocab}, "
                        f"which has ids 0..{size - 1}."
                    )
                pair.append(ids[:limit])
            sources.append(pair[0])
            targets.append(pair[1])
    if not sources:
        raise UserError(f"No data in channel '{channel}': its files hold no records.")
    return Pairs(sources, targets)


def _ids(record: Any, key: str, where: str) -> Ids:
    if key not in record.features:
        raise UserError(
            f"{where.capitalize()} has no features['{key}']: seq2seq records hold int32 tensors "
            "features['source'] and features['target']."
        )
    value = record.features[key]
    if value.WhichOneof("value") != "int32_tensor":
        raise UserError(
            f"{where.capitalize()}: features['{key}'] is a {value.WhichOneof('value')}, not the "
            "int32_tensor of token ids seq2seq reads."
        )
    return np.asarray(value.int32_tensor.values, dtype=np.int64)


def encode_records(columns: dict[str, Iterable[Iterable[int]]]) -> bytes:
    """RecordIO-protobuf records, one per row, each key an int32 tensor in `features`
    (`{"source": [...], "target": [...]}`): the training format, and the RecordIO answer."""
    names = list(columns)
    rows = zip(*(columns[name] for name in names), strict=True)
    out = []
    for row in rows:
        payload = b"".join(
            map_entry(0x0A, name, encode_tensor(I32, np.asarray(list(ids), dtype=np.int32)))
            for name, ids in zip(names, row, strict=True)
        )
        out.append(recordio.encode_record(payload))
    return b"".join(out)


def read_sources(body: bytes) -> list[Ids]:
    """The `features["source"]` ids of each record of a RecordIO-protobuf request."""
    records = read_record_messages(body)
    return [_ids(record, "source", f"record {i}") for i, record in enumerate(records)]


def write_vocabulary(path: Path, tokens: list[str]) -> None:
    path.write_text(json.dumps({token: i for i, token in enumerate(tokens)}), encoding="utf-8")
