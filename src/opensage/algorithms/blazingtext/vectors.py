"""Word vectors on disk (spec algorithms 1.8): word2vec's text format (`vectors.txt`, what gensim's
`KeyedVectors.load_word2vec_format` reads) and word2vec's binary format (`vectors.bin`, the same
with `binary=True`). numpy only.

Text: a header line `V D`, then one line per word: the word and D numbers (9 significant digits,
enough to give back every float32 exactly). Binary: the same header, then per word the UTF-8
word, a space, D little-endian float32 values and a newline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


def write_text(path: Path, words: list[str], vectors: Matrix) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors.tolist(), strict=True):
            out.write(word + " " + " ".join(f"{value:.9g}" for value in row) + "\n")


def read_text(path: Path) -> tuple[list[str], Matrix]:
    with path.open(encoding="utf-8") as stream:
        count, dim = (int(x) for x in stream.readline().split())
        words: list[str] = []
        vectors = np.empty((count, dim), dtype=np.float32)
        for i in range(count):
            parts = stream.readline().rstrip("\n").split(" ")
            words.append(parts[0])
            vectors[i] = np.asarray(parts[1 : dim + 1], dtype=np.float32)
    return words, vectors


def write_binary(path: Path, words: list[str], vectors: Matrix) -> None:
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    with path.open("wb") as out:
        out.write(f"{len(words)} {rows.shape[1]}\n".encode())
        for word, row in zip(words, rows, strict=True):
            out.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")


def read_binary(path: Path) -> tuple[list[str], Matrix]:
    """The words and vectors of a word2vec binary file; ValueError if it is not one."""
    data = path.read_bytes()
    newline = data.find(b"\n")
    try:
        count, dim = (int(x) for x in data[:newline].split())
    except ValueError:
        raise ValueError(f"{path.name} is not a word2vec binary file (bad header)") from None
    words: list[str] = []
    vectors = np.empty((count, dim), dtype=np.float32)
    at = newline + 1
    width = 4 * dim
    for i in range(count):
        while at < len(data) and data[at : at + 1] == b"\n":
            at += 1
        space = data.find(b" ", at)
        if space < 0 or space + 1 + width > len(data):
            raise ValueError(f"{path.name} is truncated at word {i}")
        words.append(data[at:space].decode("utf-8"))
        vectors[i] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        at = space + 1 + width
    return words, vectors
