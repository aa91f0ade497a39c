"""BlazingText's model directory (spec algorithms §10(e)) and what serving loads from it.

word2vec: `vectors.txt` (word2vec text format), `vectors.bin` (word2vec's binary format, not
fastText's .bin), `eval.json` (with `evaluation=True`) and, with subwords, `subwords.npz`
(the character n-gram rows and their buckets, to give out-of-vocabulary words a vector).
supervised: `model.bin`, opensage's own format (a numpy `.npz` archive of the input and output
matrices and a JSON document of words, labels and settings; read without pickle). fastText's
own `.bin` format is not written, and a fastText `.bin` given to serving is refused with a
clear error (not supported yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.artifacts import load_model, save_model
from opensage.algorithms.blazingtext.classifier import Classifier
from opensage.algorithms.blazingtext.text import IntArray, char_ngram_buckets
from opensage.algorithms.blazingtext.vectors import read_binary, write_binary, write_text

VECTORS_TXT: Final = "vectors.txt"
VECTORS_BIN: Final = "vectors.bin"
SUBWORDS: Final = "subwords.npz"
CLASSIFIER: Final = "model.bin"
EVAL_JSON: Final = "eval.json"
FASTTEXT_MAGIC: Final = (793712314).to_bytes(4, "little")


@dataclass
class WordVectors:
    """Trained word vectors, and the n-gram rows when trained with subwords."""

    words: list[str]
    vectors: npt.NDArray[np.float32]
    ngram_rows: npt.NDArray[np.float32] | None = None
    bucket_ids: IntArray | None = None
    min_char: int = 3
    max_char: int = 6
    buckets: int = 2_000_000

    def __post_init__(self) -> None:
        self.index = {word: i for i, word in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def vector(self, word: str) -> npt.NDArray[np.float32] | None:
        """The word's vector; an unknown word's is the mean of its known n-gram rows (with
        subwords; fastText's rule, without the word's own row), else None."""
        i = self.index.get(word)
        if i is not None:
            return np.asarray(self.vectors[i], dtype=np.float32)
        if self.ngram_rows is None or self.bucket_ids is None or not len(self.bucket_ids):
            return None
        grams = np.asarray(
            char_ngram_buckets(word, self.min_char, self.max_char, self.buckets), dtype=np.int64
        )
        at = np.minimum(np.searchsorted(self.bucket_ids, grams), len(self.bucket_ids) - 1)
        found = at[self.bucket_ids[at] == grams]
        if not len(grams):
            return None
        total = self.ngram_rows[found].sum(axis=0) if len(found) else np.zeros(self.dim)
        return np.asarray(total / len(grams), dtype=np.float32)

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        write_text(model_dir / VECTORS_TXT, self.words, self.vectors)
        write_binary(model_dir / VECTORS_BIN, self.words, self.vectors)
        if self.ngram_rows is not None and self.bucket_ids is not None:
            save_model(
                model_dir,
                {"rows": self.ngram_rows, "bucket_ids": self.bucket_ids},
                {"min_char": self.min_char, "max_char": self.max_char, "buckets": self.buckets},
                name=SUBWORDS,
            )

    @classmethod
    def load(cls, model_dir: Path) -> WordVectors:
        words, vectors = read_binary(model_dir / VECTORS_BIN)
        if not (model_dir / SUBWORDS).is_file():
            return cls(words, vectors)
        arrays, meta = load_model(model_dir, SUBWORDS)
        return cls(
            words,
            vectors,
            np.asarray(arrays["rows"], dtype=np.float32),
            np.asarray(arrays["bucket_ids"], dtype=np.int64),
            int(meta["min_char"]),
            int(meta["max_char"]),
            int(meta["buckets"]),
        )


def save_classifier(model_dir: Path, model: Classifier) -> Path:
    arrays: dict[str, Any] = {
        "input": model.input,
        "output": model.output,
        "bucket_ids": model.bucket_ids,
    }
    return save_model(model_dir, arrays, {"algorithm": "blazingtext", **model.meta()}, CLASSIFIER)


def load_classifier(model_dir: Path) -> Classifier:
    path = model_dir / CLASSIFIER
    with path.open("rb") as stream:
        head = stream.read(4)
    if head == FASTTEXT_MAGIC:
        raise ValueError(
            f"{CLASSIFIER} is a fastText binary model: hosting fastText .bin files is not "
            "supported yet; host a model trained by opensage's BlazingText."
        )
    arrays, meta = load_model(model_dir, CLASSIFIER)
    return Classifier(
        words=[str(w) for w in meta["words"]],
        labels=[str(label) for label in meta["labels"]],
        input=np.asarray(arrays["input"], dtype=np.float32),
        output=np.asarray(arrays["output"], dtype=np.float32),
        bucket_ids=np.asarray(arrays["bucket_ids"], dtype=np.int64),
        word_ngrams=int(meta["word_ngrams"]),
        buckets=int(meta["buckets"]),
    )
