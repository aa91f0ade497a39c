"""The LDA core: the spectral method of moments (Anandkumar, Ge, Hsu, Kakade, Telgarsky,
"Tensor decompositions for learning latent variable models", JMLR 15, 2014, §3.5 and §4-5) and
the document mixtures of inference, free of the job machinery so tests and benchmarks drive it
with plain count matrices.

The model. A document draws topic weights h ~ Dirichlet(alpha) (alpha0 = sum alpha) and each
word from sum_i h_i beta_i. With x_1, x_2, x_3 three distinct words of one document (one-hot):

    M1 = E[x1]
    M2 = E[x1 x2^T] - alpha0/(alpha0+1) M1 M1^T                    = sum_i c2_i beta_i^(x2)
    M3 = E[x1 x2 x3] - alpha0/(alpha0+2) (E[x1 x2 M1] + 2 perms)
         + 2 alpha0^2/((alpha0+1)(alpha0+2)) M1^(x3)                = sum_i c3_i beta_i^(x3)

with c2_i = alpha_i/(alpha0 (alpha0+1)) and c3_i = 2 alpha_i/(alpha0 (alpha0+1)(alpha0+2)).

Estimators. A document of length l with counts c gives unbiased estimates of the word moments
whatever its length (ordered draws without replacement):
E[x1] ~ c/l, E[x1 x2^T] ~ (c c^T - diag c)/(l(l-1)) and
E[x1 x2 x3] ~ (c^(x3) - sum_ij c_i c_j (e_i e_i e_j + e_i e_j e_i + e_i e_j e_j)
               + 2 sum_i c_i e_i^(x3))/(l(l-1)(l-2)),
averaged over the documents long enough for each (l >= 1, 2, 3). The third moment is never
formed in V^3: pass 2 accumulates it whitened, from y = W^T c per document, as
sum s y^(x3) - sym(sum_i w_i w_i z_i) + 2 sum_i g_i w_i^(x3) with w_i the rows of W,
z_i = sum_d s_d c_di y_d and g_i = sum_d s_d c_di (s_d = 1/(l(l-1)(l-2))). Pass 1 holds the
V x V pair moment, which is fine for a vocabulary up to a few thousand words (32 MB at 2000).

Decomposition. W (V x k') whitens M2 (W^T M2 W = I, from its top k' eigenpairs), so
T = M3(W, W, W) = sum_i lambda_i v_i^(x3) with orthonormal v_i; the robust tensor power method
(restarts in parallel, deflation) finds (lambda_i, v_i). Then alpha_i = 4 alpha0 (alpha0+1) /
((alpha0+2)^2 lambda_i^2) and beta_i = (alpha0+2)/2 lambda_i (W^T)^+ v_i, clipped at zero and
renormalised. As SageMaker does, up to k' = num_topics + ceil(num_topics/4) topics are found
(at most the vocabulary size) and the num_topics with the largest alpha are kept: the extra
components soak up sampling noise in the whitened space, whose (large) tensor eigenvalues give
them small alphas. An extra direction is whitened only where M2's eigenvalue clears M2's own
sampling noise (`whitened_dimensions`): a pure-noise direction, divided by its tiny eigenvalue,
otherwise crowds out a true topic whose eigenvalue is small (on the 10-topic bars data one bar
in three runs came back at L1 0.3-1.0 without this rule, and all within 0.08 with it).

Inference. A document's topic mixture maximises its likelihood sum_w c_w log(theta . beta_w)
over the simplex, plus the Dirichlet log prior where alpha_i > 1 (the MAP; for alpha_i <= 1 the
prior's mode is on the boundary, and the likelihood alone decides): EM fixed-point iterations
from the prior mean, vectorised over the documents' non-zero counts, each document until no
topic weight moves by `INFERENCE_TOLERANCE` (at most `INFERENCE_ITERATIONS`). The stop is per
document, so a document's answer does not depend on its batch mates. EM creeps where the optimum
lies on the simplex's boundary: on bars documents the answers are within 5e-3 (mean 1e-6) of
5,000 iterations'.

`test:pwll` is the per-word log-likelihood of the test documents under these mixtures
(`per_word_log_likelihood`): a plug-in estimate, optimistic against the marginal likelihood
since each mixture is fitted to the document it scores, but equally so for any two models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from opensage.algorithms.artifacts import load_model, save_model

Features = Any
"""A block of documents: a 2-D numpy array of word counts or a `scipy.sparse.csr_matrix`."""
Floats = npt.NDArray[np.float64]

SEED: Final = 0x1DA
"""Seed of the power method's random starts: the same data give the same model."""
EXTRA_TOPICS: Final = 0.25
NOISE_MARGIN: Final = 2.0
"""Extra directions are whitened only where M2's eigenvalue exceeds this many times its
sampling noise (`whitened_dimensions`)."""
CHUNK_ELEMENTS: Final = 1 << 22
"""Temporaries (k^2 per document or word, nnz x k in inference) are built this many elements at
a time, 32 MB in float64, whatever the corpus or request size."""
INFERENCE_ITERATIONS: Final = 1000
INFERENCE_TOLERANCE: Final = 1e-7
PROBABILITY_FLOOR: Final = 1e-12
"""The smallest word probability a likelihood uses, so a word no topic holds (every beta entry
clipped to zero) costs log(1e-12) rather than minus infinity."""


def extra_topics(num_topics: int, feature_dim: int) -> int:
    """How many topics the decomposition finds: 25 % more than asked, at most one per word."""
    return min(num_topics + math.ceil(EXTRA_TOPICS * num_topics), feature_dim)


@dataclass(frozen=True)
class LDAModel:
    """`alpha` (num_topics) the Dirichlet prior, `beta` (num_topics x feature_dim) the
    topic-word distributions (rows sum to 1), topics by decreasing alpha."""

    alpha: Floats
    beta: Floats
    documents: int = 0

    @property
    def num_topics(self) -> int:
        return int(self.beta.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.beta.shape[1])

    def mixtures(self, counts: Features) -> Floats:
        """Each document's topic mixture (rows sum to 1); see the module docstring."""
        return infer_mixtures(self.alpha, self.beta, counts)

    def pwll(self, counts: Features) -> tuple[float, int]:
        """Per-word log-likelihood of the documents and their word count (module docstring)."""
        return per_word_log_likelihood(self.alpha, self.beta, counts)

    def save(self, model_dir: Path) -> Path:
        """`model_algo-1` holding `alpha` and `beta` (SageMaker's `[alpha, beta]`)."""
        arrays = {"alpha": self.alpha.astype(np.float64), "beta": self.beta.astype(np.float64)}
        meta = {"documents": self.documents, "format": "opensage-lda/1"}
        return save_model(model_dir, arrays, meta)

    @classmethod
    def load(cls, model_dir: Path) -> LDAModel:
        arrays, meta = load_model(model_dir)
        if "alpha" not in arrays or "beta" not in arrays:
            raise ValueError("model_algo-1 is not an LDA model: it has no 'alpha' and 'beta'")
        alpha = np.asarray(arrays["alpha"], dtype=np.float64).reshape(-1)
        beta = np.asarray(arrays["beta"], dtype=np.float64)
        if beta.ndim != 2 or beta.shape[0] != alpha.shape[0]:
            raise ValueError(f"LDA model arrays disagree: alpha {alpha.shape}, beta {beta.shape}")
        return cls(alpha, beta, int(meta.get("documents", 0)))


# --- moments --------------------------------------------------------------------------------------


def _csr(counts: Features) -> sp.csr_matrix:
    matrix = sp.csr_matrix(counts, dtype=np.float64)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


@dataclass
class PairMoments:
    """Pass 1: sums of the per-document estimates of E[x1] and E[x1 x2^T]."""

    first: Floats
    pairs: Floats
    documents: int = 0
    with_one: int = 0
    with_two: int = 0

    @classmethod
    def empty(cls, feature_dim: int) -> PairMoments:
        return cls(np.zeros(feature_dim), np.zeros((feature_dim, feature_dim)))

    def add(self, counts: Features) -> None:
        c = _csr(counts)
        lengths = np.asarray(c.sum(axis=1)).reshape(-1)
        self.documents += int(c.shape[0])
        ones = lengths >= 1
        self.with_one += int(ones.sum())
        self.first += np.asarray(c.T @ _inverse(lengths, ones)).reshape(-1)
        twos = lengths >= 2
        self.with_two += int(twos.sum())
        scale = _inverse(lengths * (lengths - 1), twos)
        scaled = sp.diags(scale) @ c
        self.pairs += np.asarray((c.T @ scaled).toarray())
        self.pairs[np.diag_indices_from(self.pairs)] -= np.asarray(scaled.sum(axis=0)).reshape(-1)

    def m1(self) -> Floats:
        return self.first / max(self.with_one, 1)

    def e2(self) -> Floats:
        return self.pairs / max(self.with_two, 1)

    def m2(self, alpha0: float) -> Floats:
        m1 = self.m1()
        m2 = self.e2() - alpha0 / (alpha0 + 1) * np.outer(m1, m1)
        return (m2 + m2.T) / 2


def _inverse(values: Floats, where: npt.NDArray[np.bool_]) -> Floats:
    out = np.zeros_like(values, dtype=np.float64)
    out[where] = 1.0 / values[where]
    return out


def whitened_dimensions(eigenvalues: Floats, num_topics: int, most: int) -> int:
    """How many of M2's top eigen-directions (`eigenvalues`: all of M2's, decreasing) to whiten:
    `most` (num_topics plus the 25 % extra), less those beyond num_topics whose eigenvalue lies
    within the sampling noise. M2's noise is symmetric about zero, so its most negative
    eigenvalue measures it; whitening a pure-noise direction divides it by a tiny eigenvalue
    and lets that noise crowd out a true topic whose own eigenvalue is small (nearly dependent
    topics, as the bars data have)."""
    noise = NOISE_MARGIN * max(-float(eigenvalues[-1]), 0.0)
    above = int(np.sum(eigenvalues[:most] > noise))
    return max(num_topics, min(most, above))


@dataclass
class Whitening:
    """W (V x k) with W^T M2 W = I, and B (V x k) with W^T B = I (un-whitening)."""

    w: Floats
    b: Floats
    eigenvalues: Floats


def whiten(m2: Floats, k: int, num_topics: int | None = None) -> Whitening:
    """From the top k eigenpairs of M2 (with `num_topics`: k at most, `whitened_dimensions`).
    Eigenvalues below 1e-6 of the largest (M2 has rank num_topics in theory; sampling noise or
    a misjudged alpha0 may leave extra directions at or below zero) are floored there, so the
    whitening stays finite. ValueError when M2 has no positive eigenvalue at all."""
    values, vectors = np.linalg.eigh(m2)
    values, vectors = values[::-1], vectors[:, ::-1]
    if num_topics is not None:
        k = whitened_dimensions(values, num_topics, k)
    scale = float(np.max(np.abs(values))) if len(values) else 0.0
    values, vectors = values[:k], vectors[:, :k]
    top = float(values[0])
    if not top > 1e-12 * scale:  # zero up to rounding
        raise ValueError(
            "the word co-occurrences hold no topic signal (the second moment M2 has no positive "
            "eigenvalue); check the documents and alpha0"
        )
    values = np.maximum(values, 1e-6 * top)
    root = np.sqrt(values)
    return Whitening(vectors / root, vectors * root, values)


@dataclass
class TripleMoments:
    """Pass 2: the whitened third word moment, accumulated per document (module docstring)."""

    w: Floats
    cube: Floats
    z: Floats
    g: Floats
    with_three: int = 0

    @classmethod
    def empty(cls, w: Floats) -> TripleMoments:
        v, k = w.shape
        return cls(w, np.zeros((k, k, k)), np.zeros((v, k)), np.zeros(v))

    def add(self, counts: Features) -> None:
        c = _csr(counts)
        k = self.w.shape[1]
        step = max(1, CHUNK_ELEMENTS // (k * k))  # rows of y (x) y held at once
        for start in range(0, c.shape[0], step):
            self._add(c[start : start + step])

    def _add(self, c: sp.csr_matrix) -> None:
        lengths = np.asarray(c.sum(axis=1)).reshape(-1)
        threes = lengths >= 3
        self.with_three += int(threes.sum())
        scale = _inverse(lengths * (lengths - 1) * (lengths - 2), threes)
        y = np.asarray(c @ self.w)
        k = y.shape[1]
        scaled = y * scale[:, None]
        pairs = (y[:, :, None] * y[:, None, :]).reshape(len(y), k * k)
        self.cube += (scaled.T @ pairs).reshape(k, k, k)
        self.z += np.asarray(c.T @ scaled)
        self.g += np.asarray(c.T @ scale).reshape(-1)

    def e3(self) -> Floats:
        """E[x1 x2 x3](W, W, W)."""
        w = self.w
        k = w.shape[1]
        pair_z = np.zeros((k * k, k))  # sum_i w_ia w_ib z_ic
        cubes = np.zeros((k * k, k))  # sum_i g_i w_ia w_ib w_ic
        step = max(1, CHUNK_ELEMENTS // (k * k))  # words of w_i (x) w_i held at once
        for start in range(0, len(w), step):
            part = w[start : start + step]
            squares = (part[:, :, None] * part[:, None, :]).reshape(len(part), k * k)
            pair_z += squares.T @ self.z[start : start + step]
            cubes += (squares * self.g[start : start + step, None]).T @ part
        pair_z3 = pair_z.reshape(k, k, k)
        corrections = pair_z3 + pair_z3.transpose(0, 2, 1) + pair_z3.transpose(2, 0, 1)
        total = self.cube - corrections + 2 * cubes.reshape(k, k, k)
        return np.asarray(total / max(self.with_three, 1), dtype=np.float64)


def whitened_m3(triples: TripleMoments, pairs: PairMoments, alpha0: float) -> Floats:
    """M3(W, W, W) from the two passes' sums."""
    w = triples.w
    m = w.T @ pairs.m1()
    e2 = w.T @ pairs.e2() @ w
    e2m = e2[:, :, None] * m[None, None, :]
    sym = e2m + e2m.transpose(0, 2, 1) + e2m.transpose(2, 0, 1)
    mmm = m[:, None, None] * m[None, :, None] * m[None, None, :]
    return (
        triples.e3()
        - alpha0 / (alpha0 + 2) * sym
        + 2 * alpha0**2 / ((alpha0 + 1) * (alpha0 + 2)) * mmm
    )


# --- tensor decomposition -------------------------------------------------------------------------


def _contract(tensor: Floats, thetas: Floats) -> Floats:
    """T(I, theta, theta) for each column theta."""
    k = tensor.shape[0]
    outer = (thetas[:, None, :] * thetas[None, :, :]).reshape(k * k, thetas.shape[1])
    return np.asarray(tensor.reshape(k, k * k) @ outer)


def _iterate(tensor: Floats, thetas: Floats, iterations: int, tol: float) -> Floats:
    for _ in range(iterations):
        image = _contract(tensor, thetas)
        norms = np.linalg.norm(image, axis=0)
        norms[norms == 0] = 1.0
        image /= norms
        change = float(np.max(np.abs(image - thetas)))
        thetas = image
        if change < tol:
            break
    return thetas


def power_method(
    tensor: Floats, components: int, restarts: int, iterations: int, tol: float, seed: int = SEED
) -> tuple[Floats, Floats]:
    """The robust tensor power method (Anandkumar et al. 2014, Algorithm 1) on a symmetric
    k x k x k tensor: per component, `restarts` random unit starts iterated together
    (theta <- T(I, theta, theta) / norm, until the largest change is below `tol` or after
    `iterations`), the start with the largest T(theta, theta, theta) refined as long again,
    then deflation. Returns the eigenvalues (components) and vectors (k x components)."""
    rng = np.random.default_rng(seed)
    residual = np.array(tensor, dtype=np.float64)
    k = residual.shape[0]
    values = np.zeros(components)
    vectors = np.zeros((k, components))
    for index in range(components):
        starts = rng.normal(size=(k, restarts))
        starts /= np.linalg.norm(starts, axis=0)
        thetas = _iterate(residual, starts, iterations, tol)
        scores = np.sum(thetas * _contract(residual, thetas), axis=0)
        best = thetas[:, [int(np.argmax(scores))]]
        theta = _iterate(residual, best, iterations, tol)[:, 0]
        value = float(theta @ _contract(residual, theta[:, None])[:, 0])
        if value < 0:  # T(-t,-t,-t) = -T(t,t,t): report the positive orientation
            theta, value = -theta, -value
        values[index], vectors[:, index] = value, theta
        residual -= value * theta[:, None, None] * theta[None, :, None] * theta[None, None, :]
    return values, vectors


# --- fitting --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    num_topics: int
    alpha0: float = 1.0
    max_restarts: int = 10
    max_iterations: int = 1000
    tol: float = 1e-8


def recover(values: Floats, vectors: Floats, whitening: Whitening, settings: Settings) -> LDAModel:
    """alpha and beta from the tensor's eigenpairs; the num_topics with the largest alpha."""
    a0 = settings.alpha0
    positive = values > 0
    alpha = np.zeros_like(values)
    alpha[positive] = 4 * a0 * (a0 + 1) / ((a0 + 2) ** 2 * values[positive] ** 2)
    beta = (whitening.b @ vectors) * (values * (a0 + 2) / 2)
    beta = np.clip(beta, 0.0, None)
    sums = beta.sum(axis=0)
    empty = sums <= 0
    beta[:, empty] = 1.0
    beta /= beta.sum(axis=0)
    order = np.argsort(-alpha, kind="stable")[: settings.num_topics]
    kept_alpha = np.maximum(alpha[order], 1e-8)
    return LDAModel(kept_alpha, np.ascontiguousarray(beta[:, order].T))


def fit_pairs(blocks: Iterable[Features], feature_dim: int) -> PairMoments:
    pairs = PairMoments.empty(feature_dim)
    for block in blocks:
        pairs.add(block)
    return pairs


def fit_triples(blocks: Iterable[Features], w: Floats) -> TripleMoments:
    triples = TripleMoments.empty(w)
    for block in blocks:
        triples.add(block)
    return triples


def fit(
    first: Iterable[Features],
    second: Iterable[Features],
    feature_dim: int,
    settings: Settings,
) -> LDAModel:
    """Two passes over the same documents (`first`, then `second`), then the decomposition.
    ValueError when the documents cannot support the moments (fewer than three words each)."""
    pairs = fit_pairs(first, feature_dim)
    if pairs.with_two == 0:
        raise ValueError("no document has two or more words")
    most = extra_topics(settings.num_topics, feature_dim)
    whitening = whiten(pairs.m2(settings.alpha0), most, settings.num_topics)
    k = whitening.w.shape[1]
    triples = fit_triples(second, whitening.w)
    if triples.with_three == 0:
        raise ValueError("no document has three or more words")
    tensor = whitened_m3(triples, pairs, settings.alpha0)
    values, vectors = power_method(
        tensor, k, settings.max_restarts, settings.max_iterations, settings.tol
    )
    model = recover(values, vectors, whitening, settings)
    if not (np.isfinite(model.alpha).all() and np.isfinite(model.beta).all()):
        raise ValueError("the tensor decomposition gave non-finite topics")
    return LDAModel(model.alpha, model.beta, pairs.documents)


# --- inference ------------------------------------------------------------------------------------


def infer_mixtures(
    alpha: Floats, beta: Floats, counts: Features, iterations: int = INFERENCE_ITERATIONS
) -> Floats:
    """Per-document topic mixtures by EM (module docstring); an empty document gets the prior
    mean alpha / alpha0. Documents are independent, so they are done in chunks of about
    `CHUNK_ELEMENTS` (non-zero count x topic) values with the same results."""
    c = _csr(counts)
    k = len(alpha)
    theta = np.empty((c.shape[0], k))
    start = 0
    while start < c.shape[0]:
        stop = start + 1
        limit = c.indptr[start] + max(1, CHUNK_ELEMENTS // k)
        stop = max(stop, int(np.searchsorted(c.indptr, limit, side="right")) - 1)
        stop = min(stop, c.shape[0])
        theta[start:stop] = _mixtures(alpha, beta, c[start:stop], iterations)
        start = stop
    return theta


def _mixtures(alpha: Floats, beta: Floats, c: sp.csr_matrix, iterations: int) -> Floats:
    """EM on the rows still moving: a row whose mixture changed by less than
    `INFERENCE_TOLERANCE` (in every topic) in an iteration is final, so each row's answer
    depends on that row alone."""
    prior_mean = alpha / alpha.sum()
    theta = np.tile(prior_mean, (c.shape[0], 1))
    prior = np.maximum(alpha - 1.0, 0.0)
    active = np.flatnonzero(np.diff(c.indptr) > 0)  # empty documents keep the prior mean
    topics = np.ascontiguousarray(beta.T)
    for _ in range(iterations):
        if not active.size:
            break
        part = c[active]
        rows = np.repeat(np.arange(len(active)), np.diff(part.indptr))
        current = theta[active]
        p = np.einsum("ij,ij->i", current[rows], topics[part.indices])
        p = np.maximum(p, PROBABILITY_FLOOR)
        weights = sp.csr_matrix((part.data / p, part.indices, part.indptr), shape=part.shape)
        expected = current * np.asarray(weights @ topics) + prior
        totals = expected.sum(axis=1, keepdims=True)
        totals[totals <= 0] = 1.0
        updated = expected / totals
        theta[active] = updated
        moving = np.abs(updated - current).max(axis=1) >= INFERENCE_TOLERANCE
        active = active[moving]
    return theta


def per_word_log_likelihood(alpha: Floats, beta: Floats, counts: Features) -> tuple[float, int]:
    """`sum_d sum_w c_dw log(theta_d . beta_w) / sum_d l_d` with each theta_d the mixture
    inference returns (a plug-in estimate: theta_d is fitted to the document it scores, so it
    is optimistic compared with the marginal likelihood, equally for any two models it
    compares); and the number of words."""
    c = _csr(counts)
    words = round(float(c.sum()))
    if words == 0:
        return 0.0, 0
    theta = infer_mixtures(alpha, beta, c)
    rows = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
    p = np.einsum("ij,ij->i", theta[rows], beta.T[c.indices])
    total = float(c.data @ np.log(np.maximum(p, PROBABILITY_FLOOR)))
    return total / words, words
