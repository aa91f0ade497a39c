"""BlazingText's parts: fastText's tokenisation, labels and hashes, subsampling, the negative
table, the vector formats, top-k ordering, determinism and quality on generated text; the
compiled CPU loop (`_fasttext.c`): built and chosen on the CPU, as good as the PyTorch path,
Hogwild threads, its argument checks."""

from __future__ import annotations

import json
import shutil
import sysconfig
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.algorithms.blazingtext.evaluation import case_insensitive, evaluate, read_pairs
from opensage.algorithms.blazingtext.synthetic import cluster_corpus, labelled_sentences
from opensage.algorithms.blazingtext.text import (
    NGRAM_MULTIPLIER,
    Vocabulary,
    char_ngram_buckets,
    char_ngrams,
    fnv1a,
    keep_probabilities,
    split_labels,
    unigram_table,
    word_ngram_buckets,
)
from opensage.algorithms.blazingtext.vectors import (
    read_binary,
    read_text,
    write_binary,
    write_text,
)

torch = pytest.importorskip("torch")

from opensage.algorithms.blazingtext import native  # noqa: E402
from opensage.algorithms.blazingtext.classifier import (  # noqa: E402
    ClassifierSettings,
    ClassifierTrainer,
    accuracy,
    parse_lines,
    top_k,
)
from opensage.algorithms.blazingtext.model import WordVectors  # noqa: E402
from opensage.algorithms.blazingtext.serve import ClassifierHandler  # noqa: E402
from opensage.algorithms.blazingtext.word2vec import (  # noqa: E402
    Settings,
    Word2Vec,
    _pairs,
    _windows,
    capped_add,
    encode_corpus,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread, as the training job picks for steps this small (see
    `word2vec.configure_threads`): a second one only adds synchronisation on busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tokens_are_whitespace_split_and_labels_are_prefixed_tokens_anywhere() -> None:
    labels, words = split_labels(["__label__a", "Hello", ",", "world", "__label__b", "x"])
    assert labels == ["__label__a", "__label__b"]
    assert words == ["Hello", ",", "world", "x"]  # no lower-casing, punctuation kept
    parsed_labels, parsed_words = parse_lines(["__label__1 the movie", "no label here"])
    assert parsed_labels == [["__label__1"], []]
    assert parsed_words == [["the", "movie"], ["no", "label", "here"]]


def test_fnv1a_is_fasttexts_hash() -> None:
    # FNV-1a's published 32-bit values for ASCII, and fastText's signed-char variant for UTF-8.
    assert fnv1a("") == 0x811C9DC5
    assert fnv1a("a") == 0xE40C292C
    assert fnv1a("foobar") == 0xBF9CF968
    assert fnv1a("é") == 0x3CFA68C1
    assert fnv1a("naïve") == 0xCD16EE2B


def test_character_ngrams_match_fasttext() -> None:
    # What fastText 0.9.3's get_subwords gives with minn=3, maxn=6, bucket=2000000.
    assert char_ngrams("where", 3, 6)[:4] == ["<wh", "<whe", "<wher", "<where"]
    assert char_ngram_buckets("where", 3, 6, 2_000_000) == [
        167652, 989715, 1526707, 1071586, 420941, 312621, 969176,
        121234, 1473420, 1540811, 114991, 1529033, 1568469, 867498,
    ]  # fmt: skip
    assert char_ngram_buckets("naïve", 3, 6, 2_000_000) == [
        1806890, 1907692, 878190, 933201, 1590546, 1719404, 832043,
        156687, 356832, 1223007, 1505331, 1711570, 1788548, 1088654,
    ]  # fmt: skip


def _fasttext_word_ngrams(hashes: list[int], n: int, buckets: int) -> list[int]:
    """fastText's Dictionary::addWordNgrams, transcribed: int32 hashes into uint64 math."""
    signed = [h - (1 << 32) if h >= 1 << 31 else h for h in hashes]
    found = []
    for i in range(len(signed)):
        h = signed[i] % (1 << 64)
        for j in range(i + 1, min(len(signed), i + n)):
            h = (h * NGRAM_MULTIPLIER + signed[j]) % (1 << 64)
            found.append(h % buckets)
    return found


def test_word_ngram_hashes_follow_fasttext() -> None:
    tokens = ["the", "movie", "was", "naïve", "fun"]
    hashes = [fnv1a(t) for t in tokens]
    expected = _fasttext_word_ngrams(hashes, 3, 2_000_000)
    got, lines = word_ngram_buckets(
        np.asarray(hashes, dtype=np.uint32), np.zeros(5, np.int64), 3, 2_000_000
    )
    assert sorted(got.tolist()) == sorted(expected)
    assert len(expected) == 7  # 4 bigrams + 3 trigrams
    # n-grams stop at a line's end
    _, lines = word_ngram_buckets(
        np.asarray(hashes, dtype=np.uint32), np.asarray([0, 0, 1, 1, 1]), 2, 100
    )
    assert lines.tolist() == [0, 1, 1]


def test_subsampling_keeps_rare_words_and_thins_frequent_ones() -> None:
    counts = np.asarray([1000, 100, 1], dtype=np.int64)
    t = 1e-3
    p = keep_probabilities(counts, t)
    f = counts / counts.sum()
    np.testing.assert_allclose(p, np.minimum(1.0, np.sqrt(t / f) + t / f))
    assert p[0] < p[1] <= p[2] == 1.0
    assert (keep_probabilities(counts, 0.0) == 1.0).all()


def test_negative_table_follows_unigram_to_the_three_quarters() -> None:
    counts = np.asarray([16, 1], dtype=np.int64)
    cdf = unigram_table(counts)
    assert cdf[-1] == pytest.approx(1.0)
    assert cdf[0] == pytest.approx(8 / 9)  # 16^0.75 = 8, 1^0.75 = 1


def test_vocabulary_orders_by_count_then_first_appearance() -> None:
    vocab = Vocabulary.build(Counter(["b", "a", "c", "a", "b", "d"]), min_count=2)
    assert vocab.words == ["b", "a"]
    assert vocab.ids(["a", "zzz", "b"]) == [1, 0]


_WORD = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1
).filter(lambda w: len(w.split()) == 1 and w == w.strip())


@settings(max_examples=25, deadline=None)
@given(
    words=st.lists(_WORD, min_size=1, max_size=6, unique=True),
    dim=st.integers(1, 5),
    data=st.data(),
)
def test_vectors_txt_and_bin_round_trip(words: list[str], dim: int, data: st.DataObject) -> None:
    values = data.draw(
        st.lists(
            st.floats(-1e6, 1e6, allow_nan=False, width=32),
            min_size=len(words) * dim,
            max_size=len(words) * dim,
        )
    )
    vectors = np.asarray(values, dtype=np.float32).reshape(len(words), dim)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        write_text(Path(folder) / "v.txt", words, vectors)
        write_binary(Path(folder) / "v.bin", words, vectors)
        for read, name in ((read_text, "v.txt"), (read_binary, "v.bin")):
            got_words, got = read(Path(folder) / name)
            assert got_words == words
            np.testing.assert_array_equal(got, vectors)


def test_top_k_is_sorted_by_probability_and_capped() -> None:
    p = np.asarray([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]], dtype=np.float32)
    order, probs = top_k(p, 2)
    assert order.tolist() == [[1, 2], [0, 2]]
    np.testing.assert_allclose(probs, [[0.6, 0.3], [0.5, 0.3]])
    assert top_k(p, 10)[0].shape == (2, 3)


def _w2v(mode: str, lines: list[list[str]], compiled: bool = True, **extra: object) -> Word2Vec:
    """A model trained on the CPU, by the compiled loop where it is built (unless `compiled`
    is False: the PyTorch path, as on a GPU or without the module)."""
    vocab = Vocabulary.build(Counter(t for line in lines for t in line), 1)
    values: dict[str, object] = {
        "mode": mode, "dim": 16, "window": 3, "negatives": 5, "threshold": 0.0,
        "learning_rate": 0.05, "epochs": 3, "batch": 256, **extra,
    }  # fmt: skip
    model = Word2Vec(Settings(**values), vocab, CPU)  # type: ignore[arg-type]
    model.native = model.native and compiled
    model.train(encode_corpus(lines, vocab))
    return model


def _planted_rho(model: Word2Vec, pairs: list[str], tmp_path: Path) -> float:
    """Spearman's rho of the vectors on the planted clusters' word pairs."""
    (tmp_path / "pairs.tsv").write_text("\n".join(pairs) + "\n")
    index = case_insensitive(model.vocab.words)
    vectors = model.word_vectors()
    report = evaluate(
        read_pairs(tmp_path / "pairs.tsv"),
        lambda w: vectors[index[w.lower()]] if w.lower() in index else None,
    )
    assert report["not_found"] == 0
    return float(report["spearmans_rho"])


def _reference_windows(
    tokens: list[int], lines: list[int], shrunk: list[int], window: int
) -> list[tuple[int, list[int]]]:
    """word2vec's loop: each position's context words within its shrunk window and its line,
    nearest first (the earlier one first at equal distance)."""
    found = []
    for i, centre in enumerate(tokens):
        context = []
        for d in range(1, window + 1):
            for j in (i - d, i + d):
                if 0 <= j < len(tokens) and d <= shrunk[i] and lines[j] == lines[i]:
                    context.append(tokens[j])
        found.append((centre, context))
    return found


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda window: st.tuples(
            st.just(window),
            st.lists(
                st.tuples(st.integers(0, 9), st.integers(0, 2), st.integers(1, window)),
                max_size=30,
            ),
            st.integers(1, 2 * window),
        )
    )
)
def test_examples_are_word2vecs_windows(case: tuple[int, list[tuple[int, int, int]], int]) -> None:
    """The vectorised example makers (they run on the training device) give what word2vec's
    per-position loop gives: skip-gram pairs, and CBOW / batch_skipgram windows cut to
    `limit` nearest words."""
    window, rows, limit = case
    rows.sort(key=lambda row: row[1])  # a line's positions are contiguous
    tokens, lines, shrunk = ([row[k] for row in rows] for k in range(3))
    expected = _reference_windows(tokens, lines, shrunk, window)
    as_tensors = [torch.tensor(column, dtype=torch.int64) for column in (tokens, lines, shrunk)]
    centre, context = _pairs(*as_tensors, window)
    want = Counter((c, w) for c, words in expected for w in words)
    assert Counter(zip(centre.tolist(), context.tolist(), strict=True)) == want
    centres, contexts = _windows(*as_tensors, window, limit)
    rows = zip(centres.tolist(), contexts.tolist(), strict=True)
    got = [(c, [w for w in row if w >= 0]) for c, row in rows]
    assert got == [(c, words[:limit]) for c, words in expected if words]


def test_word2vec_is_deterministic_on_the_cpu() -> None:
    corpus, _ = cluster_corpus(40, clusters=3, size=4, seed=3)
    lines = [line.split() for line in corpus]
    for mode in ("skipgram", "cbow", "batch_skipgram"):
        first = _w2v(mode, lines).word_vectors()
        np.testing.assert_array_equal(first, _w2v(mode, lines).word_vectors())


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "pytorch"])
@pytest.mark.parametrize("mode", ["skipgram", "cbow", "batch_skipgram"])
def test_word2vec_puts_planted_clusters_together(mode: str, compiled: bool, tmp_path: Path) -> None:
    """Both CPU paths (the compiled loop, where built, and PyTorch) learn the clusters."""
    corpus, pairs = cluster_corpus(300, clusters=4, size=6, seed=4)
    lines = [line.split() for line in corpus]
    model = _w2v(mode, lines, compiled, epochs=5, subwords=mode == "skipgram", buckets=5000)
    assert _planted_rho(model, pairs, tmp_path) > 0.6


@pytest.mark.parametrize("mode", ["skipgram", "cbow", "batch_skipgram"])
def test_a_gpu_sized_batch_stays_bounded_and_learns(mode: str, tmp_path: Path) -> None:
    """The PyTorch path asked for a GPU's batch (32k examples per step; the floor of 100 steps
    an epoch makes them about 1.5k on this corpus), here on the CPU: each of this small
    vocabulary's words gets hundreds of updates per step, which summed as they are (no cap)
    turn the vectors to NaN; capped (`capped_add`) they stay small and learn."""
    corpus, pairs = cluster_corpus(3000, clusters=4, size=6, seed=4)
    lines = [line.split() for line in corpus]
    model = _w2v(mode, lines, compiled=False, batch=1 << 15)
    assert np.abs(model.word_vectors()).max() < 10
    assert _planted_rho(model, pairs, tmp_path) > 0.6


def test_capped_add_sums_up_to_the_cap_then_takes_the_mean() -> None:
    weight = torch.zeros(3, 2)
    rows = torch.tensor([0, 1, 1, 2, 2, 2])
    updates = torch.tensor([[1.0, 0], [1, 0], [3, 0], [0, 1], [0, 2], [0, 9]])
    present = torch.tensor([True, True, True, True, True, False])  # the last one is padding
    capped_add(weight, rows, updates, 1.0, present)
    # row 0: one update, as it is; rows 1 and 2: two updates each, so their mean
    np.testing.assert_allclose(weight.numpy(), [[1, 0], [2, 0], [0, 1.5]])
    capped_add(weight, rows, updates, 64.0)  # well under the cap: the plain sum
    np.testing.assert_allclose(weight.numpy(), [[2, 0], [6, 0], [0, 13.5]])


needs_kernels = pytest.mark.skipif(
    native.KERNELS is None, reason="the compiled loop is not built (no C compiler)"
)


def test_the_compiled_loop_is_built_where_a_compiler_is_and_chosen_on_the_cpu() -> None:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler):
        assert native.KERNELS is not None, "pip install -e . should have built _fasttext"
    built = native.KERNELS is not None
    corpus, _ = cluster_corpus(20, clusters=2, size=3, seed=1)
    vocab = Vocabulary.build(Counter(corpus[0].split()), 1)
    assert Word2Vec(Settings("cbow", 4, 2, 2, 0.0, 0.05, 1), vocab, CPU).native == built
    labels, tokens = parse_lines(labelled_sentences(20, labels=2, seed=1))
    trainer = ClassifierTrainer(
        ClassifierSettings(4, 0.1, 1, 2, 100, 1), tokens, labels, torch.device("cpu")
    )
    assert trainer.native == built


@needs_kernels
@pytest.mark.parametrize("mode", ["skipgram", "cbow", "batch_skipgram"])
def test_compiled_loop_matches_the_pytorch_path_on_planted_clusters(
    mode: str, tmp_path: Path
) -> None:
    """The two paths train the same model: over three seeds their vectors rank the planted
    pairs alike (mean Spearman within 0.1; a wrong gradient, window or negative draw would put
    the compiled one far off)."""
    corpus, pairs = cluster_corpus(200, clusters=4, size=6, seed=8)
    lines = [line.split() for line in corpus]
    ours, torch_path = (
        float(
            np.mean(
                [_planted_rho(_w2v(mode, lines, compiled, epochs=4, seed=s), pairs, tmp_path)
                 for s in range(3)]
            )
        )
        for compiled in (True, False)
    )  # fmt: skip
    assert ours > 0.65
    assert abs(ours - torch_path) < 0.1, (ours, torch_path)


@needs_kernels
def test_compiled_loop_learns_with_hogwild_threads_and_logs_each_epoch(tmp_path: Path) -> None:
    corpus, pairs = cluster_corpus(300, clusters=4, size=6, seed=4)
    lines = [line.split() for line in corpus]
    vocab = Vocabulary.build(Counter(t for line in lines for t in line), 1)
    settings = Settings("skipgram", 16, 3, 5, 0.0, 0.05, 5, threads=3)
    model = Word2Vec(settings, vocab, CPU)
    logged: list[str] = []
    model.train(encode_corpus(lines, vocab), logged.append)
    assert [line.split(":")[0] for line in logged] == [f"Epoch {e}/5" for e in range(1, 6)]
    assert _planted_rho(model, pairs, tmp_path) > 0.6


@needs_kernels
def test_compiled_loop_refuses_an_out_of_range_id_instead_of_writing_past_a_table() -> None:
    vocab = 3
    counter = np.zeros(1, np.int64)
    output = np.zeros((vocab, 4), np.float32)
    arguments: dict[str, Any] = {
        "input": np.full((vocab, 4), 0.1, np.float32),
        "output": output,
        "subword_rows": np.arange(vocab, dtype=np.int32),
        "subword_offsets": np.arange(vocab + 1, dtype=np.int64),
        "corpus": np.asarray([0, 1, 2, 1], np.int32),
        "line_starts": np.asarray([0, 4], np.int64),
        "keep": np.ones(vocab, np.float32),
        "table": np.asarray([0, 1, 2], np.int32),
        "counter": counter,
        "mode": 1, "dim": 4, "window": 2, "negatives": 2, "batch_size": 4,
        "learning_rate": 0.05, "min_lr_fraction": 1e-4, "epochs": 2, "threads": 1, "seed": 0,
    }  # fmt: skip
    train = native.KERNELS.word2vec
    train(**arguments)
    assert counter[0] == 8  # two epochs of four words
    assert np.abs(output).sum() > 0
    with pytest.raises(ValueError, match="corpus"):
        train(**{**arguments, "corpus": np.asarray([0, 1, 3, 1], np.int32)})
    with pytest.raises(ValueError, match="table"):
        train(**{**arguments, "table": np.asarray([-1], np.int32)})
    with pytest.raises(TypeError, match="corpus"):
        train(**{**arguments, "corpus": np.zeros(4, np.int64)})


def _sgd_reference(
    mode: int, lines: list[list[int]], vectors: tuple[Any, Any], epochs: int, lr0: float
) -> tuple[Any, Any]:
    """Per-example SGD as fastText does it, transcribed in NumPy for the case with no random
    draw (window 1, no negatives, no subsampling): cbow (mode 0) and skip-gram (mode 1)."""
    inp, out = (v.astype(np.float64) for v in vectors)
    total, done = epochs * sum(map(len, lines)), 0
    for _ in range(epochs):
        for line in lines:
            lr = lr0 * max(1e-4, 1 - done / total)
            for w in range(len(line)):
                near = [line[c] for c in (w - 1, w + 1) if 0 <= c < len(line)]
                pairs = [(near, line[w])] if mode == 0 else [([line[w]], c) for c in near]
                for inputs, target in pairs:
                    if not inputs:
                        continue
                    hidden = inp[inputs].mean(axis=0)
                    alpha = lr * (1 - 1 / (1 + np.exp(-out[target] @ hidden)))
                    grad = alpha * out[target]
                    out[target] += alpha * hidden
                    for row in inputs:
                        inp[row] += grad
            done += len(line)
    return inp, out


@needs_kernels
@pytest.mark.parametrize(("mode", "name"), [(0, "cbow"), (1, "skipgram")])
def test_compiled_loop_follows_a_numpy_transcription_of_sgd(mode: int, name: str) -> None:
    """Where nothing is drawn at random the compiled loop's tables equal a NumPy per-example
    SGD, up to fastText's sigmoid table (steps of 1/32: a few thousandths here, against
    updates of about 0.25; a wrong sign, learning rate or missed update is far off)."""
    rng = np.random.default_rng(0)
    vocab, dim = 7, 8
    lines = [rng.integers(0, vocab, size=n).tolist() for n in (5, 9, 3)]
    start = (
        rng.uniform(-0.1, 0.1, (vocab, dim)).astype(np.float32),
        rng.uniform(-0.1, 0.1, (vocab, dim)).astype(np.float32),
    )
    inp, out = start[0].copy(), start[1].copy()
    native.KERNELS.word2vec(
        input=inp,
        output=out,
        subword_rows=np.arange(vocab, dtype=np.int32),
        subword_offsets=np.arange(vocab + 1, dtype=np.int64),
        corpus=np.asarray([w for line in lines for w in line], np.int32),
        line_starts=np.asarray([0, 5, 14, 17], np.int64),
        keep=np.ones(vocab, np.float32),
        table=np.zeros(1, np.int32),
        counter=np.zeros(1, np.int64),
        mode=mode, dim=dim, window=1, negatives=0, batch_size=2, learning_rate=0.5,
        min_lr_fraction=1e-4, epochs=3, threads=1, seed=0,
    )  # fmt: skip
    want_in, want_out = _sgd_reference(mode, lines, start, 3, 0.5)
    assert np.abs(inp - start[0]).max() > 0.2, name
    np.testing.assert_allclose(inp, want_in, atol=0.01)
    np.testing.assert_allclose(out, want_out, atol=0.01)


@needs_kernels
def test_compiled_classifier_follows_a_numpy_transcription_of_softmax_sgd() -> None:
    """One label per line, one thread, a given order: nothing is random, so the compiled
    epoch equals fastText's supervised update written out in NumPy (mean of the line's rows,
    softmax, each output row moved, each input row given the gradient over the line's length)."""
    rng = np.random.default_rng(1)
    rows_n, labels_n, dim = 9, 3, 6
    lines = [rng.integers(0, rows_n, size=n).tolist() for n in (4, 2, 5, 3)]
    targets = [0, 2, 1, 2]
    order = [2, 0, 3, 1]
    inp = rng.uniform(-0.3, 0.3, (rows_n, dim)).astype(np.float32)
    out = rng.uniform(-0.3, 0.3, (labels_n, dim)).astype(np.float32)
    want_in, want_out = inp.astype(np.float64), out.astype(np.float64)
    total, done = 2 * sum(map(len, lines)), 0
    for line in order:  # the first of two epochs
        rows, lr = lines[line], 0.4 * (1 - done / total)
        hidden = want_in[rows].mean(axis=0)
        scores = want_out @ hidden
        p = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        alpha = lr * (np.eye(labels_n)[targets[line]] - p)
        grad = alpha @ want_out
        want_out += np.outer(alpha, hidden)
        np.add.at(want_in, rows, grad / len(rows))
        done += len(rows)
    counter = np.zeros(1, np.int64)
    native.KERNELS.supervised(
        input=inp,
        output=out,
        rows=np.asarray([r for line in lines for r in line], np.int32),
        offsets=np.asarray([0, 4, 6, 11, 14], np.int64),
        labels=np.asarray(targets, np.int32),
        label_offsets=np.arange(5, dtype=np.int64),
        order=np.asarray(order, np.int64),
        counter=counter,
        total=total,
        dim=dim,
        learning_rate=0.4,
        min_lr_fraction=1e-4,
        threads=1,
        seed=0,
    )
    assert counter[0] == total // 2
    np.testing.assert_allclose(out, want_out, atol=1e-5)
    np.testing.assert_allclose(inp, want_in, atol=1e-5)


def test_cpu_threads_are_every_core_unless_omp_num_threads_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert native.cpu_threads() == (__import__("os").cpu_count() or 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert native.cpu_threads() == 1


def test_subword_model_gives_unknown_words_a_vector() -> None:
    corpus, _ = cluster_corpus(60, clusters=2, size=4, seed=5)
    lines = [line.split() for line in corpus]
    model = _w2v("skipgram", lines, subwords=True, buckets=1000)
    assert model.subwords is not None
    vectors = WordVectors(
        model.vocab.words,
        model.word_vectors(),
        model.ngram_rows(),
        model.subwords.bucket_ids,
        buckets=1000,
    )
    unknown = vectors.vector("g0x1z")
    assert unknown is not None
    assert np.abs(unknown).sum() > 0
    plain = WordVectors(model.vocab.words, model.word_vectors())
    assert plain.vector("g0x1z") is None


def _classifier(
    lines: list[str], epochs: int = 5, compiled: bool = True, threads: int = 1
) -> ClassifierTrainer:
    labels, tokens = parse_lines(lines)
    trainer = ClassifierTrainer(
        ClassifierSettings(
            dim=20,
            learning_rate=0.1,
            epochs=epochs,
            word_ngrams=2,
            buckets=100_000,
            min_count=1,
            threads=threads,
        ),
        tokens,
        labels,
        CPU,
    )
    trainer.native = trainer.native and compiled
    for epoch in range(epochs):
        trainer.epoch(epoch)
    return trainer


@pytest.mark.parametrize(
    ("compiled", "threads"),
    [(True, 1), (True, 2), (False, 1)],
    ids=["compiled", "hogwild", "pytorch"],
)
def test_supervised_learns_generated_topics(compiled: bool, threads: int) -> None:
    """Every CPU path (the compiled loop, where built, on one and two threads; PyTorch)."""
    lines = labelled_sentences(3000, labels=4, seed=6, topical=0.35)
    trainer = _classifier(lines[:2500], compiled=compiled, threads=threads)
    labels, tokens = parse_lines(lines[2500:])
    assert accuracy(trainer.model(), tokens, labels) > 0.85


@needs_kernels
def test_compiled_classifier_is_as_accurate_as_the_pytorch_path() -> None:
    lines = labelled_sentences(2000, labels=4, seed=12, topical=0.35)
    labels, tokens = parse_lines(lines[1500:])
    ours = accuracy(_classifier(lines[:1500], 4).model(), tokens, labels)
    torch_path = accuracy(_classifier(lines[:1500], 4, compiled=False).model(), tokens, labels)
    assert ours > 0.7
    assert abs(ours - torch_path) < 0.05, (ours, torch_path)


def test_supervised_is_deterministic_and_answers_sorted_top_k() -> None:
    lines = labelled_sentences(300, labels=3, seed=7, topical=0.4)
    first, second = _classifier(lines, 2).model(), _classifier(lines, 2).model()
    np.testing.assert_array_equal(first.input, second.input)
    np.testing.assert_array_equal(first.output, second.output)
    handler = ClassifierHandler(first)
    body = json.dumps({"instances": ["t0w1 t0w2 c1", "c0"], "configuration": {"k": 3}})
    result = handler.invoke(body.encode(), "application/json", "application/json", None)
    answer = json.loads(result.body)
    assert isinstance(answer, list)
    assert len(answer) == 2
    for row in answer:
        assert row["prob"] == sorted(row["prob"], reverse=True)
        assert len(row["label"]) == 3
        assert all(x.startswith("__label__") for x in row["label"])
    assert answer[0]["label"][0] == "__label__0"
