"""Generated text for tests and benchmarks (nothing is downloaded): labelled sentences from
topic vocabularies that share words and carry noise, so a classifier cannot be perfect, and a
planted-cluster corpus with its word-similarity file for word2vec. numpy only."""

from __future__ import annotations

import numpy as np


def labelled_sentences(
    lines: int,
    labels: int = 6,
    seed: int = 0,
    topic_words: int = 40,
    common_words: int = 300,
    topical: float = 0.22,
    confusing: float = 0.08,
) -> list[str]:
    """`__label__k w1 w2 ...` lines: each word is from the line's topic with probability
    `topical`, from another topic with `confusing`, else from a shared Zipf-like vocabulary."""
    rng = np.random.default_rng(seed)
    topics = [[f"t{k}w{i}" for i in range(topic_words)] for k in range(labels)]
    common = [f"c{i}" for i in range(common_words)]
    weights = 1.0 / np.arange(1, common_words + 1)
    weights /= weights.sum()
    out = []
    for _ in range(lines):
        label = int(rng.integers(labels))
        length = int(rng.integers(6, 18))
        words = []
        for _ in range(length):
            r = rng.random()
            if r < topical:
                words.append(topics[label][int(rng.integers(topic_words))])
            elif r < topical + confusing:
                other = int(rng.integers(labels))
                words.append(topics[other][int(rng.integers(topic_words))])
            else:
                words.append(common[int(rng.choice(common_words, p=weights))])
        out.append(f"__label__{label} " + " ".join(words))
    return out


def cluster_corpus(
    lines: int, clusters: int = 6, size: int = 8, seed: int = 0, length: int = 12
) -> tuple[list[str], list[str]]:
    """Sentences each drawn from one cluster of words (plus a few shared filler words), and a
    word-similarity file (tab-separated, WS-353's layout) scoring same-cluster pairs 8-10 and
    other pairs 0-2."""
    rng = np.random.default_rng(seed)
    groups = [[f"g{c}x{i}" for i in range(size)] for c in range(clusters)]
    filler = [f"f{i}" for i in range(5)]
    corpus = []
    for _ in range(lines):
        group = groups[int(rng.integers(clusters))]
        words = [
            group[int(rng.integers(size))] if rng.random() < 0.8 else filler[int(rng.integers(5))]
            for _ in range(length)
        ]
        corpus.append(" ".join(words))
    pairs = ["# word1\tword2\tscore"]
    for _ in range(60):
        a, b = rng.integers(clusters, size=2)
        same = rng.random() < 0.5
        if same:
            b = a
        i, j = rng.choice(size, size=2, replace=False)
        score = 8 + 2 * rng.random() if a == b else 2 * rng.random()
        pairs.append(f"{groups[a][i]}\t{groups[b][j]}\t{score:.2f}")
    return corpus, pairs
