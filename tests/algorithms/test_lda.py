"""The LDA built-in's maths and formats: the moment estimators against brute force, whitening,
the tensor power method on a planted decomposition, exact recovery from population moments,
topic recovery on the Griffiths bars data (issue 10's Done-when), and the job's refusals."""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment

from opensage.algorithms.lda import model as lda
from opensage.algorithms.lda.serve import LDAHandler
from opensage.algorithms.lda.spec import SPEC
from opensage.algorithms.lda.train import train
from opensage.algorithms.runner import run
from opensage.contract import MLPaths
from opensage.formats.csv import encode_csv
from opensage.formats.tensors import encode_dense
from opensage.serving.errors import InferenceError

Array = np.ndarray[Any, Any]

# --- the bars data (Griffiths & Steyvers 2004, as SageMaker's LDA notebook generates it) --------


def bars(
    documents: int, seed: int, topics: Array | None = None, alpha0: float = 1.0
) -> tuple[Array, Array, Array]:
    """Word counts of `documents` documents over a 5 x 5 grid of words, from 10 topics (the 5
    rows and 5 columns; each bar's 5 weights drawn from Dirichlet(100), nearly uniform, as the
    notebook's `generate_griffiths_data`), mixtures Dirichlet(alpha0/10), Poisson(150) lengths.
    Returns counts, topics (10 x 25) and alpha."""
    rng = np.random.default_rng(seed)
    if topics is None:
        topics = np.zeros((10, 25))
        for bar in range(5):
            topics[bar, bar * 5 : (bar + 1) * 5] = rng.dirichlet(np.full(5, 100.0))
            topics[5 + bar, bar::5] = rng.dirichlet(np.full(5, 100.0))
    alpha = np.full(10, alpha0 / 10)
    theta = rng.dirichlet(alpha, size=documents)
    lengths = rng.poisson(150, size=documents)
    counts = np.stack([rng.multinomial(n, t @ topics) for n, t in zip(lengths, theta, strict=True)])
    return counts.astype(np.float64), topics, alpha


def matched_l1(truth: Array, found: Array) -> Array:
    """L1 distance of each true topic (row) to its Hungarian-matched found topic."""
    cost = np.abs(truth[:, None, :] - found[None, :, :]).sum(axis=2)
    rows, columns = linear_sum_assignment(cost)
    return np.asarray(cost[rows, columns])


@pytest.fixture(scope="module")
def bars_fit() -> tuple[lda.LDAModel, Array, Array]:
    counts, topics, alpha = bars(5000, seed=0)
    model = lda.fit([counts], [counts], 25, lda.Settings(num_topics=10))
    return model, topics, alpha


def test_bars_topics_are_recovered(bars_fit: tuple[lda.LDAModel, Array, Array]) -> None:
    """Done-when: every one of the 10 bars within L1 0.1 of the truth (measured: at most 0.08
    at 5,000 documents for seeds 0-2), alpha within 30 %."""
    model, topics, alpha = bars_fit
    assert model.beta.shape == (10, 25)
    np.testing.assert_allclose(model.beta.sum(axis=1), 1.0)
    assert (model.beta >= 0).all()
    assert matched_l1(topics, model.beta).max() < 0.1
    np.testing.assert_allclose(np.sort(model.alpha), np.sort(alpha), rtol=0.3)


def test_bars_held_out_pwll_is_close_to_the_true_models(
    bars_fit: tuple[lda.LDAModel, Array, Array],
) -> None:
    model, topics, alpha = bars_fit
    held_out, _, _ = bars(300, seed=7, topics=topics)
    ours, words = model.pwll(held_out)
    truth, _ = lda.per_word_log_likelihood(alpha, topics, held_out)
    assert words == int(held_out.sum())
    assert truth - 0.02 < ours < truth + 0.02, (ours, truth)
    uniform = float(np.log(1 / 25))
    assert ours > uniform + 0.5


def test_sklearn_recovers_the_bars_less_closely(
    bars_fit: tuple[lda.LDAModel, Array, Array],
) -> None:
    """Informative: scikit-learn's online variational LDA on 2,000 of the same documents (5
    passes; measured: its worst bar at L1 1.8 and mean 0.43, ours 0.07 and 0.04). Spectral
    recovery needs no passes to converge; the variational fit's worst bars are merged pairs."""
    from sklearn.decomposition import LatentDirichletAllocation

    model, topics, _ = bars_fit
    counts = bars(5000, seed=0)[0][:2000]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = LatentDirichletAllocation(
            10, learning_method="online", max_iter=5, random_state=0, batch_size=512
        ).fit(counts)
    found = reference.components_ / reference.components_.sum(axis=1, keepdims=True)
    theirs = matched_l1(topics, found)
    ours = matched_l1(topics, model.beta)
    print(f"bars L1: ours max {ours.max():.3f} mean {ours.mean():.3f}; "
          f"sklearn max {theirs.max():.3f} mean {theirs.mean():.3f}")  # fmt: skip
    assert ours.mean() < max(theirs.mean(), 0.1)


# --- the moment estimators against brute force ---------------------------------------------------


def _words(counts: Array) -> list[int]:
    return [w for w, c in enumerate(counts.astype(int)) for _ in range(c)]


def brute_force(corpus: Array) -> tuple[Array, Array, Array]:
    """E[x1], E[x1 x2^T], E[x1 x2 x3] averaged over ordered tuples of distinct positions in each
    document, then over the documents long enough."""
    v = corpus.shape[1]
    first, pairs, triples = np.zeros(v), np.zeros((v, v)), np.zeros((v, v, v))
    counted = [0, 0, 0]
    for doc in corpus:
        words = _words(doc)
        for order, target in ((1, first), (2, pairs), (3, triples)):
            tuples = list(itertools.permutations(range(len(words)), order))
            if not tuples:
                continue
            counted[order - 1] += 1
            part = np.zeros_like(target)
            for positions in tuples:
                part[tuple(words[p] for p in positions)] += 1
            target += part / len(tuples)
    return first / counted[0], pairs / counted[1], triples / counted[2]


@settings(max_examples=25, deadline=None)
@given(
    arrays(np.int64, st.tuples(st.integers(1, 4), st.integers(1, 4)), elements=st.integers(0, 3))
)
def test_moment_estimators_match_brute_force(corpus: Array) -> None:
    corpus = corpus.astype(np.float64)
    lengths = corpus.sum(axis=1)
    if not (lengths >= 3).any():
        corpus[0, 0] += 3
        lengths = corpus.sum(axis=1)
    v = corpus.shape[1]
    expected_first, expected_pairs, expected_triples = brute_force(corpus)
    pairs = lda.fit_pairs([corpus[:2], sp.csr_matrix(corpus[2:])], v)
    np.testing.assert_allclose(pairs.m1(), expected_first, atol=1e-12)
    np.testing.assert_allclose(pairs.e2(), expected_pairs, atol=1e-12)
    triples = lda.fit_triples([corpus], np.eye(v))  # W = I: the raw third moment
    np.testing.assert_allclose(triples.e3(), expected_triples, atol=1e-12)


def test_whitened_third_moment_is_the_raw_one_transformed() -> None:
    counts, _, _ = bars(50, seed=3)
    w = np.random.default_rng(0).normal(size=(25, 4))
    raw = lda.fit_triples([counts], np.eye(25)).e3()
    whitened = lda.fit_triples([counts], w).e3()
    np.testing.assert_allclose(whitened, np.einsum("ijk,ia,jb,kc->abc", raw, w, w, w), rtol=1e-9)


def test_whitening_makes_m2_the_identity() -> None:
    rng = np.random.default_rng(1)
    factors = rng.random((20, 5))
    m2 = factors @ np.diag(rng.random(5) + 0.1) @ factors.T
    white = lda.whiten(m2, 5)
    np.testing.assert_allclose(white.w.T @ m2 @ white.w, np.eye(5), atol=1e-8)
    np.testing.assert_allclose(white.w.T @ white.b, np.eye(5), atol=1e-10)
    # Directions beyond the rank are noise: whitened only up to the rank, down to num_topics.
    assert lda.whiten(m2 + 1e-9 * np.diag(rng.normal(size=20)), 7, 3).w.shape[1] == 5
    assert lda.whiten(m2, 2, 2).w.shape[1] == 2
    with pytest.raises(ValueError, match="no topic signal"):
        lda.whiten(-m2, 3)


def test_power_method_recovers_a_planted_orthogonal_decomposition() -> None:
    rng = np.random.default_rng(2)
    k = 6
    vectors = np.linalg.qr(rng.normal(size=(k, k)))[0]
    values = rng.uniform(1.0, 5.0, size=k)
    tensor = np.einsum("i,ai,bi,ci->abc", values, vectors, vectors, vectors)
    found_values, found_vectors = lda.power_method(tensor, k, 10, 1000, 1e-12)
    overlap = np.abs(found_vectors.T @ vectors)
    rows, columns = linear_sum_assignment(-overlap)
    np.testing.assert_allclose(overlap[rows, columns], 1.0, atol=1e-8)
    np.testing.assert_allclose(found_values[rows], values[columns], rtol=1e-8)


def test_population_moments_give_the_exact_topics() -> None:
    """Exact E[x1], E[x1 x2^T], E[x1 x2 x3] of an LDA model: alpha and beta come back exactly."""
    rng = np.random.default_rng(4)
    k, v = 4, 9
    beta = rng.dirichlet(np.full(v, 0.5), size=k)
    alpha = np.array([0.2, 0.5, 0.3, 1.0])
    a0 = float(alpha.sum())
    hh = (np.outer(alpha, alpha) + np.diag(alpha)) / (a0 * (a0 + 1))
    eye = np.eye(k)
    hhh = (
        np.einsum("i,j,k->ijk", alpha, alpha, alpha)
        + np.einsum("ij,i,k->ijk", eye, alpha, alpha)
        + np.einsum("ik,i,j->ijk", eye, alpha, alpha)
        + np.einsum("jk,i,j->ijk", eye, alpha, alpha)
        + 2 * np.einsum("ij,jk,i->ijk", eye, eye, alpha)
    ) / (a0 * (a0 + 1) * (a0 + 2))
    pairs = lda.PairMoments(alpha @ beta / a0, beta.T @ hh @ beta, 1, 1, 1)
    settings_ = lda.Settings(num_topics=k, alpha0=a0, tol=1e-14)
    white = lda.whiten(pairs.m2(a0), k)
    w = white.w
    cube = np.einsum("ijk,ia,jb,kc->abc", hhh, beta @ w, beta @ w, beta @ w)
    triples = lda.TripleMoments(w, cube, np.zeros((v, k)), np.zeros(v), 1)
    values, vectors = lda.power_method(lda.whitened_m3(triples, pairs, a0), k, 10, 1000, 1e-14)
    model = lda.recover(values, vectors, white, settings_)
    np.testing.assert_allclose(np.sort(model.alpha), np.sort(alpha), rtol=1e-6)
    assert matched_l1(beta, model.beta).max() < 1e-6


# --- inference ---------------------------------------------------------------------------------


def test_mixtures_sum_to_one_and_favour_the_documents_topic() -> None:
    beta = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])
    alpha = np.array([0.5, 0.5])
    counts = np.array([[5, 3, 0, 0], [0, 0, 2, 2], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=float)
    theta = lda.infer_mixtures(alpha, beta, counts)
    np.testing.assert_allclose(theta.sum(axis=1), 1.0)
    assert theta[0, 0] > 0.99
    assert theta[1, 1] > 0.99
    np.testing.assert_allclose(theta[2], [0.5, 0.5])  # an empty document: the prior mean
    np.testing.assert_allclose(theta[3], [0.5, 0.5], atol=1e-6)
    sparse = lda.infer_mixtures(alpha, beta, sp.csr_matrix(counts))
    np.testing.assert_array_equal(sparse, theta)


def test_mixtures_do_not_depend_on_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    counts, topics, alpha = bars(40, seed=5)
    whole = lda.infer_mixtures(alpha, topics, counts)
    monkeypatch.setattr(lda, "CHUNK_ELEMENTS", 700)  # chunks of a few documents
    np.testing.assert_array_equal(lda.infer_mixtures(alpha, topics, counts), whole)
    np.testing.assert_array_equal(lda.infer_mixtures(alpha, topics, counts[7:9]), whole[7:9])
    triples = lda.fit_triples([counts], np.eye(25)[:, :6])
    monkeypatch.undo()
    np.testing.assert_allclose(
        triples.e3(), lda.fit_triples([counts], np.eye(25)[:, :6]).e3(), rtol=1e-12
    )


def test_handler_answers_topic_mixtures_and_refuses_negative_counts(tmp_path: Path) -> None:
    beta = np.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
    lda.LDAModel(np.array([0.3, 0.7]), beta, 10).save(tmp_path)
    model = lda.LDAModel.load(tmp_path)
    np.testing.assert_array_equal(model.beta, beta)
    handler = LDAHandler(model, {})
    result = handler.invoke(b"1,2,0\n0,0,4\n", "text/csv", "application/json", None)
    rows = json.loads(result.body)["predictions"]
    assert [list(row) for row in rows] == [["topic_mixture"], ["topic_mixture"]]
    np.testing.assert_allclose([sum(row["topic_mixture"]) for row in rows], 1.0, rtol=1e-6)
    with pytest.raises(InferenceError, match="non-negative") as caught:
        handler.invoke(b"1,-2,0\n", "text/csv", "application/json", None)
    assert caught.value.status_code == 400


def test_spec_declares_the_documented_table() -> None:
    table = SPEC.hyperparameters
    assert {hp.name for hp in table if hp.required} == {
        "num_topics",
        "feature_dim",
        "mini_batch_size",
    }
    resolved = table.resolved({"num_topics": "3", "feature_dim": "10", "mini_batch_size": "5"})
    assert (resolved["alpha0"], resolved["max_restarts"], resolved["max_iterations"]) == (
        1.0,
        10,
        1000,
    )
    assert resolved["tol"] == 1e-8
    assert SPEC.tunable_objectives() == {"test:pwll": "Maximize"}
    assert table["alpha0"].tunable_range is not None
    assert table["num_topics"].tunable_range is not None
    with pytest.raises(ValueError, match="Hyperparameter 'num_topics'"):
        table.validate({"num_topics": "11", "feature_dim": "10", "mini_batch_size": "5"})


# --- the training job's refusals -----------------------------------------------------------------


def _job(tmp_path: Path, body: bytes, content_type: str, mode: str = "File") -> MLPaths:
    paths = MLPaths(tmp_path)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    hyperparameters = {"num_topics": "2", "feature_dim": "4", "mini_batch_size": "3"}
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1"}))
    paths.channel("train").mkdir(parents=True, exist_ok=True)
    (paths.channel("train") / "part-0").write_bytes(body)
    config = {"train": {"ContentType": content_type, "TrainingInputMode": mode}}
    paths.input_data_config_file.write_text(json.dumps(config))
    return paths


@pytest.mark.parametrize(
    ("rows", "content_type", "mode", "problem"),
    [
        ([[1, -2, 0, 3]], "text/csv;label_size=0", "File", "non-negative integer word counts"),
        ([[1, 2.5, 0, 3]], "application/x-recordio-protobuf", "File", "2.5"),
        ([[1, 2, 0, 3, 1]], "text/csv;label_size=0", "File", "feature_dim is 4"),
        ([[1, 2, 0, 3]], "text/csv;label_size=0", "Pipe", "CSV in File mode only"),
    ],
)
def test_bad_training_data_fails_the_job_clearly(
    tmp_path: Path, rows: list[list[float]], content_type: str, mode: str, problem: str
) -> None:
    x = np.asarray(rows * 3, dtype=np.float32)
    body = encode_csv(x) if content_type.startswith("text/csv") else encode_dense(x)
    paths = _job(tmp_path, body, content_type, mode)
    assert run(SPEC, train, paths) == 1
    failure = paths.failure_file.read_text()
    assert failure.startswith("ClientError: "), failure
    assert problem in failure, failure
