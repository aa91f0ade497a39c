"""`train:mean_rho` (spec algorithms §10(c)): Spearman's rho between human similarity scores and
the cosine similarity of the trained vectors, over word pairs from the `evaluation` channel.

SageMaker scores WS-353, which it bundles; opensage does not redistribute WS-353, so the pairs
come from an optional `evaluation` channel: lines `word1<TAB or comma>word2<TAB or comma>score`,
`#` comments and blank lines skipped (WS-353's tsv as gensim ships it reads as it is). Words are
matched case-insensitively, as gensim's `evaluate_word_pairs` does (the most frequent vocabulary
word of that spelling); a pair counts when both words have a vector (in the vocabulary, or with
subwords any word with a known n-gram). `mean_rho` is the mean over the channel's files, as
SageMaker's eval.json averages its WS-353 files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from opensage.algorithms.base import UserError

Lookup = Callable[[str], npt.NDArray[np.float32] | None]
_SEPARATOR = re.compile(r"\t|,")


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    score: float


def read_pairs(path: Path, channel: str = "evaluation") -> list[Pair]:
    pairs: list[Pair] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"Channel '{channel}': file '{path.name}' is not UTF-8 text.") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [part.strip() for part in _SEPARATOR.split(line.strip())]
        try:
            first, second, score = parts[0], parts[1], float(parts[2])
        except (IndexError, ValueError):
            raise UserError(
                f"Channel '{channel}': file '{path.name}' line {number} is not "
                "'word1<TAB>word2<TAB>score' (a tab or a comma between the three)."
            ) from None
        pairs.append(Pair(first, second, score))
    return pairs


def spearman(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def case_insensitive(words: list[str]) -> dict[str, int]:
    """lower-cased word -> the id of its most frequent spelling (ids are in frequency order)."""
    found: dict[str, int] = {}
    for i, word in enumerate(words):
        found.setdefault(word.lower(), i)
    return found


def evaluate(pairs: list[Pair], lookup: Lookup) -> dict[str, Any]:
    """SageMaker's eval.json entry for one file: spearmans_rho, not_found, total_pairs."""
    model: list[float] = []
    human: list[float] = []
    for pair in pairs:
        u, v = lookup(pair.first), lookup(pair.second)
        if u is None or v is None:
            continue
        norms = float(np.linalg.norm(u) * np.linalg.norm(v))
        if norms == 0.0:
            continue
        model.append(float(np.dot(u, v)) / norms)
        human.append(pair.score)
    rho = spearman(model, human) if len(model) >= 2 else math.nan
    return {
        "spearmans_rho": None if math.isnan(rho) else rho,
        "not_found": len(pairs) - len(model),
        "total_pairs": len(pairs),
    }
