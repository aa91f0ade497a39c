"""Text as fastText reads it (spec algorithms §10(b)): whitespace tokens, `__label__` prefixes,
the vocabulary, fastText's FNV-1a hash, character n-grams and word n-gram hashes. numpy only, so
training and serving share it and the tests check it without torch.

Tokens are what `str.split()` gives (fastText splits on whitespace; no lowercasing, no
punctuation handling). fastText's `</s>` end-of-line token is not added: a line's windows and
n-grams stop at its end.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.base import JSONLINES, UserError
from opensage.algorithms.env import ChannelReader, data_files

LABEL_PREFIX: Final = "__label__"
NGRAM_MULTIPLIER: Final = 116049371
"""fastText's `Dictionary::addWordNgrams` combines word hashes as `h = h * 116049371 + next`."""
IntArray = npt.NDArray[np.int64]


def fnv1a(text: str) -> int:
    """fastText's `Dictionary::hash`: 32-bit FNV-1a over the UTF-8 bytes, each byte taken as a
    *signed* char (so bytes >= 0x80 are xor-ed in sign-extended), as fastText's C++ does."""
    h = 2166136261
    for byte in text.encode("utf-8"):
        h ^= byte if byte < 0x80 else (byte | 0xFFFFFF00)
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def char_ngrams(word: str, min_n: int, max_n: int) -> list[str]:
    """fastText's `computeSubwords`: the n-grams (min_n..max_n code points) of `<word>`, except
    the single-character ones touching a boundary mark."""
    marked = f"<{word}>"
    found = []
    for i in range(len(marked)):
        for n in range(min_n, max_n + 1):
            end = i + n
            if end > len(marked):
                break
            if n == 1 and (i == 0 or end == len(marked)):
                continue
            found.append(marked[i:end])
    return found


def char_ngram_buckets(word: str, min_n: int, max_n: int, buckets: int) -> list[int]:
    return [fnv1a(gram) % buckets for gram in char_ngrams(word, min_n, max_n)]


def word_ngram_buckets(
    hashes: npt.NDArray[np.uint32], line_of: IntArray, n: int, buckets: int
) -> tuple[IntArray, IntArray]:
    """fastText's `addWordNgrams` over many lines at once: for each token i and each length
    2..n that stays in its line, `h = h * 116049371 + hash[j]` (64-bit wrap-around; each 32-bit
    hash sign-extended, as fastText keeps them in int32) modulo `buckets`. Returns the buckets
    and the line of each."""
    signed = hashes.astype(np.uint32).view(np.int32).astype(np.int64).view(np.uint64)
    out_buckets: list[IntArray] = []
    out_lines: list[IntArray] = []
    h = signed.copy()
    multiplier = np.uint64(NGRAM_MULTIPLIER)
    with np.errstate(over="ignore"):
        for length in range(2, n + 1):
            shift = length - 1
            if shift >= len(signed):
                break
            h = h[:-1] * multiplier + signed[shift:]
            same = line_of[: len(h)] == line_of[shift:]
            out_buckets.append((h[same] % np.uint64(buckets)).astype(np.int64))
            out_lines.append(line_of[: len(h)][same])
    if not out_buckets:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_buckets), np.concatenate(out_lines)


def split_labels(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """A line's `__label__x` tokens (anywhere in it, several allowed) and its words."""
    labels = [t for t in tokens if t.startswith(LABEL_PREFIX)]
    words = [t for t in tokens if not t.startswith(LABEL_PREFIX)]
    return labels, words


@dataclass
class Vocabulary:
    """Words kept by `min_count`, most frequent first (ties in order of first appearance), with
    their counts."""

    words: list[str]
    counts: IntArray

    def __post_init__(self) -> None:
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, counter: Counter[str], min_count: int) -> Vocabulary:
        # Counter keeps first-appearance order; sorted() is stable.
        kept = [(w, c) for w, c in counter.items() if c >= min_count]
        kept.sort(key=lambda item: -item[1])
        return cls([w for w, _ in kept], np.asarray([c for _, c in kept], dtype=np.int64))

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """The ids of the tokens in the vocabulary (the others dropped)."""
        index = self.index
        return [i for i in (index.get(t) for t in tokens) if i is not None]


def keep_probabilities(counts: IntArray, threshold: float) -> npt.NDArray[np.float64]:
    """word2vec's (and fastText's) subsampling: a word of frequency f = count / total is kept
    with probability min(1, sqrt(t / f) + t / f); threshold 0 keeps every word."""
    if threshold <= 0:
        return np.ones(len(counts))
    f = counts / max(int(counts.sum()), 1)
    ratio = threshold / np.maximum(f, 1e-300)
    return np.minimum(1.0, np.sqrt(ratio) + ratio)


def unigram_table(counts: IntArray, power: float = 0.75) -> npt.NDArray[np.float64]:
    """The negative-sampling distribution: counts^0.75, normalised (word2vec's table, as a
    cumulative distribution to sample with `searchsorted`)."""
    weights = np.power(counts.astype(np.float64), power)
    cumulative = np.cumsum(weights)
    return np.asarray(cumulative / cumulative[-1], dtype=np.float64)


# --- reading channels ---------------------------------------------------------------------------


def channel_lines(reader: ChannelReader) -> Iterator[str]:
    """The text lines of a channel: `text/plain` lines as they are, or the `source` of each
    augmented-manifest JSON Lines record with its labels written as `__label__x` tokens."""
    manifest = reader.content_type == JSONLINES
    for source, lines in _raw_lines(reader):
        for number, line in enumerate(lines, 1):
            if not manifest:
                yield line
            elif line.strip():
                yield _manifest_line(line, f"{source} line {number}", reader.name)


def _raw_lines(reader: ChannelReader) -> Iterator[tuple[str, Iterable[str]]]:
    if reader.pipe:
        fifo = reader._wait_for_fifo(0)
        with fifo.open("rb") as stream:
            yield f"{reader.name}_0", _decoded(stream, reader.name)
        return
    files = data_files(reader.folder) if reader.folder.is_dir() else []
    for path in files:
        with path.open("rb") as stream:
            yield str(path.relative_to(reader.folder)), _decoded(stream, reader.name, path)


def _decoded(stream: Any, channel: str, path: Path | None = None) -> Iterator[str]:
    for number, raw in enumerate(stream, 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            where = f"file '{path.name}' " if path is not None else ""
            raise UserError(
                f"Channel '{channel}': {where}line {number} is not UTF-8 text; BlazingText reads "
                "UTF-8 text, one sentence per line."
            ) from None


def _manifest_line(line: str, where: str, channel: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        raise UserError(
            f"Channel '{channel}': {where} is not JSON; augmented-manifest records look like "
            '{"source": "some text", "label": 1}.'
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("source"), str):
        raise UserError(
            f"Channel '{channel}': {where} has no \"source\" string; augmented-manifest records "
            'look like {"source": "some text", "label": 1} (or "label": [1, 3]).'
        )
    label = record.get("label")
    labels = label if isinstance(label, list) else [] if label is None else [label]
    prefix = " ".join(f"{LABEL_PREFIX}{_label_text(value)}" for value in labels)
    return f"{prefix} {record['source']}" if prefix else str(record["source"])


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
