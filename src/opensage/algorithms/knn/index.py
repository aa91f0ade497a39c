"""The nearest-neighbour indexes, in numpy (FAISS's IndexFlat, IndexIVFFlat and IndexIVFPQ):
exact search by BLAS, and inverted files over a k-means coarse quantiser with flat or
product-quantised lists.

Conventions: every index answers `search(queries, k)` with the k nearest stored rows per query
as (distances ascending, positions), ties broken by the lower position, as scikit-learn's
brute-force search breaks them. A "distance" is a dissimilarity: the squared Euclidean distance
for L2 (what FAISS reports), the negated inner product for INNER_PRODUCT (the model adds 1 for
COSINE, giving the cosine distance). Rows are float32; L2 indexes store their rows centred on
the training mean (distances do not change, float32 rounding does: smaller norms, smaller error).

The flat search never sorts all n distances per query: a strided sample of the stored rows gives
each query an upper bound on its k-th distance (tightened once a quarter of the rows is
scanned), the BLAS product itself subtracts it, one pass of `products <= 0` over L2-sized tiles
keeps the few rows that can qualify, and those are ranked by distances recomputed directly
(float64, no cancellation), so the answer is exact. Where the rows' variance lies in a few
directions, the product runs over those principal coordinates and a residual norm instead
(`bound.py`): a lower bound of every distance, a third as wide, whose hits are rescored exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from opensage.algorithms.knn.bound import PrincipalBound

L2: Final = "L2"
INNER_PRODUCT: Final = "INNER_PRODUCT"
QUERY_BLOCK: Final = 512
"""At most this many queries per block: the BLAS product's height, and the unit memory is
bounded by (the flat search evens the blocks out over the threads)."""
TILE: Final = 512
"""Stored rows per tile: a 512 x 512 float32 score tile (1 MiB) stays in the core's L2 cache
between the product and the comparison that reads it (measured on 200k x 52: ~20 % faster
products and ~2x faster comparisons than an 8 MiB tile, which spills to L3)."""
PROBE_FACTOR: Final = 32
"""The strided sample that bounds each query's k-th distance has sqrt(PROBE_FACTOR * k * n)
rows: about k * n / size candidates per query survive the bound, and this size balances the
sample's cost (a product per row) against the candidates' (a gather and an exact distance
each)."""
PROBE_GROUPS: Final = 8
"""The sample is cut into PROBE_GROUPS * k groups, and the bound is the k-th smallest group
minimum (see `kth_bound`)."""
_EIGHT: Final = np.arange(8)
IVF_BLOCK: Final = 16384
"""At most this many queries per block of an IVF search (their lists are scanned together)."""
CANDIDATE_BUDGET: Final = 2_000_000
"""Candidates held per query block before they are cut back to the best k per query (many
equal distances, e.g. duplicated rows, could otherwise keep every row)."""
RESCORED: Final = 2
"""With a reduced bound (`bound.py`), each query's k-th distance is bounded by exact distances
of its RESCORED * k best-bounded candidates."""
NEAREST_SCORES: Final = 1 << 24
"""At most this many scores (64 MiB) in the matrix of each query's nearest list: an IVF block
holds fewer queries when the longest list is long."""
LIST_BUFFER: Final = 1 << 19
"""Scores of this many (query, row) pairs are compared at once in an IVF search (2 MiB)."""
EXACT_CHUNK: Final = 512
"""Candidates whose exact distances are computed together (measured on 50k x 50: 4x faster
than one whole block, 1.5x faster than chunks of 4096)."""
TOLERANCE: Final = 1e-5
"""Slack of the bound, relative to the norms: float32 rounding of the BLAS scores must never
drop a true neighbour."""
KMEANS_POINTS_PER_CENTROID: Final = 64
KMEANS_ITERATIONS: Final = 12
PQ_CENTROIDS: Final = 256
"""Codes per sub-quantiser: one byte per sub-vector, FAISS's default `nbits=8`."""

Floats = npt.NDArray[np.float32]
Doubles = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_workers(), "knn-search")


@cache
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # scikit-learn's dependency; without it BLAS keeps its own threads
        return None
    return ThreadpoolController()


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """OpenBLAS threads on these thin products (k = d columns) spin against each other, worse
    on a busy machine (measured 3-4x slower on 2 shared cores); query blocks run in parallel
    threads instead, each with one BLAS thread."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def _workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def in_parallel(size: int, block: int, work: Callable[[int, int], Any]) -> list[Any]:
    """`work(start, stop)` over `block`-row slices of `size` rows, on one thread per CPU with
    one BLAS thread each; results in order."""
    starts = range(0, size, block)
    with _single_threaded_blas():
        if len(starts) <= 1:
            return [work(0, size)]
        return list(_pool().map(lambda s: work(s, min(size, s + block)), starts))


def even_blocks(size: int, most: int = QUERY_BLOCK) -> int:
    """A block size of at most `most` that gives every thread the same number of blocks (5,000
    queries on 2 threads: 10 blocks of 500, not 10 of 512 and a short one)."""
    workers = _workers()
    blocks = -(-max(1, -(-size // most)) // workers) * workers
    return max(1, -(-size // blocks))


def search_blocks(
    queries: npt.NDArray[Any], block: Callable[[Any], Neighbours], size: int = QUERY_BLOCK
) -> Neighbours:
    """`block` over `size`-row blocks of `queries`, in parallel, results in order."""
    parts: list[Neighbours] = in_parallel(
        len(queries), size, lambda start, stop: block(queries[start:stop])
    )
    return Neighbours(
        np.concatenate([p.distances for p in parts]),
        np.concatenate([p.positions for p in parts]),
    )


class Neighbours(NamedTuple):
    """The k nearest per query: distances (float64, ascending) and positions (-1 where a query
    has fewer than k candidates)."""

    distances: Doubles
    positions: Ints


def _f32(x: Any) -> Floats:
    return np.ascontiguousarray(x, dtype=np.float32)


def _row_norms(x: Floats) -> Floats:
    norms: Floats = np.einsum("ij,ij->i", x, x, dtype=np.float32)
    return norms


@dataclass(frozen=True)
class Scorer:
    """One BLAS product per tile scores rows in the order of the metric's distances.

    L2: the stored operand is `[y, |y|^2, 0...]` and the query factor `[-2q, 1, 0...]`, so the
    product is `|y|^2 - 2 q.y` (the distance minus `|q|^2`) without a second pass over the
    tile; the inner product: operand `y`, factor `-q`, and the product is the distance itself.
    """

    metric: str
    offset: bool = False
    """With a column of ones in the operand (`offset_column`): a query factor with -t_i there
    gives scores minus t_i, so the flat search compares its tiles against the scalar 0, ~4x
    faster in numpy than against a per-row bound broadcast."""

    @property
    def l2(self) -> bool:
        return self.metric == L2

    def offset_column(self, dim: int) -> int:
        return dim + int(self.l2)

    def width(self, dim: int) -> int:
        """Zero columns round the product's inner size up to a multiple of 4: OpenBLAS's float32
        kernels run ~25 % slower on an odd one (measured: 51 against 52 columns)."""
        return -(-(dim + int(self.l2) + int(self.offset)) // 4) * 4

    def operand(self, rows: Floats, norms: Floats | None = None) -> Floats:
        """`norms`: the rows' squared norms when `rows` are their reduced form (`bound.py`)."""
        dim = rows.shape[1]
        out = np.zeros((rows.shape[0], self.width(dim)), np.float32)
        out[:, :dim] = rows
        if self.l2:
            out[:, dim] = _row_norms(_f32(rows)) if norms is None else norms
        if self.offset:
            out[:, self.offset_column(dim)] = 1.0
        return out

    def queries(self, q: Floats) -> Floats:
        dim = q.shape[1]
        out = np.zeros((q.shape[0], self.width(dim)), np.float32)
        out[:, :dim] = q * (-2.0 if self.l2 else -1.0)
        if self.l2:
            out[:, dim] = 1.0
        return out

    def slack(self, q: Floats, row_max_norm: float) -> Floats:
        """Per query: a generous bound of the float32 rounding of a score."""
        q_norm = np.sqrt(_row_norms(q))
        bound = 2.0 * q_norm * row_max_norm + (row_max_norm**2 if self.l2 else 0.0)
        return _f32(TOLERANCE * bound + 1e-30)

    def exact(self, q: Floats, rows: Floats) -> Doubles:
        """Distances of q[i] to rows[i] in float64 from the difference (L2) or product, in
        chunks that stay in cache (whole float64 copies of 50k x 50 rows spent more on page
        faults than on the arithmetic: 2x slower)."""
        out = np.empty(len(q))
        for start in range(0, len(q), EXACT_CHUNK):
            q64 = q[start : start + EXACT_CHUNK].astype(np.float64)
            r64 = rows[start : start + EXACT_CHUNK].astype(np.float64)
            if self.l2:
                r64 -= q64
                out[start : start + EXACT_CHUNK] = np.einsum("ij,ij->i", r64, r64)
            else:
                out[start : start + EXACT_CHUNK] = -np.einsum("ij,ij->i", q64, r64)
        return out


def _scores(factor: Floats, operand: Floats) -> Floats:
    out: Floats = factor @ operand.T
    return out


def kth_bound(scores: Floats, k: int) -> Floats:
    """Per row, a value no smaller than its k-th smallest score: the k-th smallest of the
    minima of PROBE_GROUPS * k disjoint groups of columns (those k minima are k distinct
    scores at most it). The minima take one vectorised pass, and partitioning them is cheap,
    where partitioning every score cost as much as the sample's product; the bound is barely
    looser (it is exact unless two of a row's k best share a group)."""
    groups = PROBE_GROUPS * k
    depth = scores.shape[1] // groups
    if depth < 2:
        exact: Floats = np.partition(scores, k - 1, axis=1)[:, k - 1]
        return exact
    # Group g holds columns g, g + groups, ...: the reduction runs over whole rows of minima.
    used = np.ascontiguousarray(scores[:, : groups * depth])
    minima = np.minimum.reduce(used.reshape(len(scores), depth, groups), axis=1)
    bound: Floats = np.partition(minima, k - 1, axis=1)[:, k - 1]
    return bound


def select(distances: Doubles, rows: Ints, positions: Ints, n_queries: int, k: int) -> Neighbours:
    """The k smallest (distance, position) per query from ragged candidates; a query with
    fewer gets -1 positions and infinite distances."""
    if len(rows) == 0:
        return Neighbours(np.full((n_queries, k), np.inf), np.full((n_queries, k), -1, np.int64))
    order = np.lexsort((positions, distances, rows))
    rows, distances, positions = rows[order], distances[order], positions[order]
    starts = np.searchsorted(rows, np.arange(n_queries))
    ends = np.searchsorted(rows, np.arange(n_queries), side="right")
    take = starts[:, None] + np.arange(k)
    missing = take >= ends[:, None]
    take = np.minimum(take, len(rows) - 1)
    chosen = np.where(missing, np.inf, distances[take])
    where = np.where(missing, -1, positions[take])
    return Neighbours(chosen, where.astype(np.int64))


@dataclass(frozen=True)
class Candidates:
    """Rows that may be among a query block's k nearest: query row, position, float32 score."""

    rows: Ints
    positions: Ints
    scores: Floats

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))

    @classmethod
    def joined(cls, parts: list[Candidates]) -> Candidates:
        return cls(
            np.concatenate([p.rows for p in parts]),
            np.concatenate([p.positions for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )

    def padded(self, n_queries: int, width: int) -> tuple[Floats, Ints]:
        """One row per query: its candidates' scores (inf past them) and their indices here
        (-1 past them), at least `width` columns."""
        counts = np.bincount(self.rows, minlength=n_queries)
        order = np.argsort(self.rows.astype(np.uint16), kind="stable")  # a radix sort
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slots = np.arange(len(order)) - starts[self.rows[order]]
        shape = (n_queries, max(width, int(counts.max(initial=0))))
        scores = np.full(shape, np.inf, np.float32)
        scores[self.rows[order], slots] = self.scores[order]
        which = np.full(shape, -1, np.int64)
        which[self.rows[order], slots] = order
        return scores, which

    def where(self, keep: npt.NDArray[np.bool_]) -> Candidates:
        return Candidates(self.rows[keep], self.positions[keep], self.scores[keep])

    def of(self, low: int, high: int) -> Candidates:
        """Those of queries low to high - 1, numbered from 0."""
        keep = (self.rows >= low) & (self.rows < high)
        return Candidates(self.rows[keep] - low, self.positions[keep], self.scores[keep])

    def kept(self, limit: Floats) -> Candidates:
        """Those whose score is at most their query's `limit`."""
        keep = self.scores <= limit[self.rows]
        return Candidates(self.rows[keep], self.positions[keep], self.scores[keep])

    def shortlist(self, n_queries: int, k: int, slack: Floats) -> tuple[Candidates, Floats]:
        """Only those within `slack` of their query's k-th best score (which exact distances
        can still reorder), and that k-th score per query."""
        padded, _ = self.padded(n_queries, k)
        kth = np.partition(padded, k - 1, axis=1)[:, k - 1]
        return self.kept(kth + slack), kth


class Sieve:
    """The hits (products <= 0) of a query block's tiles, found in a reused product buffer.

    Hits are rare (~k * n / sample size per query), so the comparison's mask is read as 8-byte
    words and only the non-zero words are kept, with their 8 products; they are decoded into
    candidates in one pass when asked. Expanding them per tile cost as much as finding them
    (a dozen small numpy calls for ~300 hits), and `words != 0` before `flatnonzero` because
    numpy's `nonzero` is fast on booleans only (~5x slower on the integers themselves).
    """

    def __init__(self, n_queries: int, tile: int) -> None:
        self.products = np.empty((n_queries, tile), np.float32)
        self.mask = np.empty((n_queries, tile), np.bool_)
        self.words = self.mask.reshape(-1).view(np.uint64)
        self.octets = self.products.reshape(-1, 8)
        self.per_row = tile // 8
        self.held = 0
        self._found: list[Ints] = []
        self._starts: list[int] = []
        self._bits: list[npt.NDArray[np.uint64]] = []
        self._values: list[Floats] = []

    def scan(self, start: int) -> None:
        """Keep the hits now in `products`, whose columns are stored rows from `start`."""
        np.less_equal(self.products, np.float32(0.0), out=self.mask)
        found = np.flatnonzero(self.words != 0)
        if len(found):
            self._found.append(found)
            self._starts.append(start)
            self._bits.append(self.words[found])
            self._values.append(self.octets[found])
            self.held += len(found)

    def candidates(self, offsets: Floats) -> Candidates:
        """The hits kept so far, with scores `product + offsets[query]`, and forget them."""
        if not self._found:
            return Candidates.empty()
        words = np.concatenate(self._found)
        starts = np.repeat(np.asarray(self._starts, np.int64), [len(f) for f in self._found])
        lanes = np.concatenate(self._bits).view(np.uint8) != 0
        values = np.concatenate(self._values).reshape(-1)
        self._found, self._starts, self._bits, self._values = [], [], [], []
        self.held = 0
        spots = np.flatnonzero(lanes)  # 2-D nonzero is several times slower
        which, lane = spots >> 3, spots & 7
        rows, column = np.divmod(words[which], self.per_row)
        positions = starts[which] + column * 8 + lane
        return Candidates(rows, positions, values[spots] + offsets[rows])


class FlatIndex:
    """Exact search over all stored rows (FAISS IndexFlatL2 / IndexFlatIP)."""

    kind: Final = "faiss.Flat"

    def __init__(self, rows: Floats, metric: str, reduce: bool = True) -> None:
        """`reduce`: bound distances from a few principal coordinates first where that pays
        (`bound.py`); the answers are the same either way."""
        rows = _f32(rows)
        self.scorer = Scorer(metric, offset=True)
        self.dim = int(rows.shape[1])
        self.max_norm = float(np.sqrt(_row_norms(rows).max())) if len(rows) else 0.0
        self.bound = PrincipalBound.choose(rows, self.scorer.width) if reduce else None
        if self.bound is None:
            self.operand = self.scorer.operand(rows)
            self._rows = self.operand[:, : self.dim]
        else:
            self.operand = self.scorer.operand(self.bound.reduce(rows), _row_norms(rows))
            self._rows = rows

    @property
    def rows(self) -> Floats:
        return self._rows

    @property
    def size(self) -> int:
        return int(self.operand.shape[0])

    def search(
        self, queries: Floats, k: int, block: int = QUERY_BLOCK, tile: int = TILE
    ) -> Neighbours:
        """The k nearest rows per query; `block` (queries) and `tile` (stored rows, rounded up
        to a multiple of 8) only change the speed."""
        queries = _f32(queries)
        k = min(k, self.size)
        tile = max(8, -(-tile // 8) * 8)
        size = even_blocks(len(queries), block)
        probe = self._probe(k)
        sample = (
            self.operand[probe] if self.bound is None else self.scorer.operand(self.rows[probe])
        )
        return search_blocks(queries, lambda q: self._block(q, k, tile, sample), size)

    def _block(self, q: Floats, k: int, tile: int, sample: Floats) -> Neighbours:
        factor = self.scorer.queries(q)
        slack = 2 * self.scorer.slack(q, self.max_norm)
        bound = kth_bound(_scores(factor, sample), k) + slack
        if self.bound is not None:
            factor = self.scorer.queries(self.bound.reduce(q))
        # From here on the products are scores minus the bound: a hit is a product <= 0.
        offset = self.scorer.offset_column(self.dim if self.bound is None else self.bound.width)
        factor[:, offset] = -bound
        sieve = Sieve(len(q), tile)
        parts: list[Candidates] = []
        # Past a quarter of the rows, their k-th best score is a much tighter bound than the
        # sample's: the remaining tiles then yield ~6x fewer hits to decode and shortlist.
        refine = self.size // 4
        for start in range(0, self.size, tile):
            stored = self.operand[start : start + tile]
            if len(stored) == tile:
                np.matmul(factor, stored.T, out=sieve.products)
            else:  # the last, short tile: no hits in the columns past it
                sieve.products[:, : len(stored)] = _scores(factor, stored)
                sieve.products[:, len(stored) :] = np.inf
            sieve.scan(start)
            # (each word held has 1 to 8 hits)
            if sieve.held > CANDIDATE_BUDGET // 8 or start < refine <= start + tile:
                parts.append(sieve.candidates(bound))
                kept, kth = self._shortlist(q, Candidates.joined(parts), k, slack)
                bound = np.minimum(bound, kth + slack)
                factor[:, offset] = -bound
                parts = [kept]
        parts.append(sieve.candidates(bound))
        found, _ = self._shortlist(q, Candidates.joined(parts), k, slack)
        distances = self.scorer.exact(q[found.rows], self.rows[found.positions])
        return select(distances, found.rows, found.positions, len(q), k)

    def _shortlist(
        self, q: Floats, found: Candidates, k: int, slack: Floats
    ) -> tuple[Candidates, Floats]:
        """The candidates that can still be among the k nearest, and an upper bound of each
        query's k-th score. Reduced bounds are no scores: the k-th is taken from exact scores
        of the RESCORED * k best-bounded candidates of each query, and only candidates whose
        bound beats it stay."""
        if self.bound is None:
            return found.shortlist(len(q), k, slack)
        width = RESCORED * k
        padded, which = found.padded(len(q), width)
        best = np.argpartition(padded, width - 1, axis=1)[:, :width]
        chosen = np.take_along_axis(which, best, axis=1)
        exact = np.full(chosen.shape, np.inf)
        queries, slots = np.nonzero(chosen >= 0)
        picked = chosen[queries, slots]
        exact[queries, slots] = self._exact_scores(q, queries, found.positions[picked])
        kth = np.partition(exact, k - 1, axis=1)[:, k - 1].astype(np.float32)
        return found.kept(kth + slack), kth

    def _exact_scores(self, q: Floats, rows: Ints, positions: Ints) -> Doubles:
        """In the products' units: the distance, less |q|^2 for L2."""
        scores = self.scorer.exact(q[rows], self.rows[positions])
        if self.scorer.l2:
            scores -= _row_norms(q)[rows]
        return scores

    def _probe(self, k: int) -> Ints:
        """Evenly spread positions (a sorted training file still gives a fair sample), a
        multiple of the bound's groups when there are enough rows."""
        size = min(self.size, max(k, int(math.sqrt(PROBE_FACTOR * k * self.size))))
        groups = PROBE_GROUPS * k
        if size >= 2 * groups:
            size -= size % groups
        return np.linspace(0, self.size - 1, size).astype(np.int64)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {"rows": np.ascontiguousarray(self.rows)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any], meta: dict[str, Any]) -> FlatIndex:
        return cls(arrays["rows"], str(meta["metric"]))


def nearest(x: Floats, centroids: Floats, scorer: Scorer) -> Ints:
    """The centroid each row belongs to under the metric, in blocks of rows."""
    operand = scorer.operand(centroids)

    def block(start: int, stop: int) -> Ints:
        closest: Ints = np.argmin(_scores(scorer.queries(x[start:stop]), operand), axis=1)
        return closest

    return np.concatenate(in_parallel(len(x), 4096, block)).astype(np.int64)


def kmeans(x: Floats, k: int, seed: int, iterations: int = KMEANS_ITERATIONS) -> Floats:
    """Lloyd's k-means from k distinct random rows (an empty cell keeps its centroid)."""
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centroids = _f32(x[np.sort(rng.choice(len(x), size=k, replace=False))])
    scorer = Scorer(L2)
    for _ in range(iterations):
        assign = nearest(x, centroids, scorer)
        order = np.argsort(assign, kind="stable")
        cells, starts, counts = np.unique(assign[order], return_index=True, return_counts=True)
        sums = np.add.reduceat(x[order].astype(np.float64), starts, axis=0)
        centroids[cells] = (sums / counts[:, None]).astype(np.float32)
    return centroids


def training_subset(n: int, size: int, seed: int) -> Ints:
    """Sorted random positions of at most `size` rows (all of them when n is smaller)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


class IVFIndex:
    """An inverted file (FAISS IndexIVFFlat, or IndexIVFPQ with `codebooks`): stored rows are
    grouped by their nearest coarse centroid, contiguous per list (`offsets`), and a query
    scans only the `nprobe` lists whose centroids are nearest to it.

    With flat lists the candidates found are re-ranked by exact distances; with product
    quantisation each row is stored as `m` one-byte codes of its residual from the centroid,
    and distances are the asymmetric (query exact, row quantised) squared L2 estimates, as
    FAISS reports them.
    """

    def __init__(
        self,
        centroids: Floats,
        offsets: Ints,
        metric: str,
        nprobe: int,
        rows: Floats | None = None,
        codebooks: Floats | None = None,
        codes: npt.NDArray[np.uint8] | None = None,
    ) -> None:
        self.centroids = _f32(centroids)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.scorer = Scorer(metric, offset=rows is not None)
        self.nprobe = nprobe
        self.dim = int(self.centroids.shape[1])
        self.operand = None if rows is None else self.scorer.operand(_f32(rows))
        self.centroid_operand = self.scorer.operand(self.centroids)
        self.max_norm = float(np.sqrt(_row_norms(rows).max())) if rows is not None else 0.0
        self.codebooks = None if codebooks is None else _f32(codebooks)
        self.codes = codes
        self.codebook_norms = (
            None if self.codebooks is None else np.einsum("mcd,mcd->mc", *[self.codebooks] * 2)
        )

    @property
    def rows(self) -> Floats | None:
        """The stored rows of flat lists (None with product quantisation)."""
        return None if self.operand is None else self.operand[:, : self.dim]

    @property
    def kind(self) -> str:
        return "faiss.IVFPQ" if self.codebooks is not None else "faiss.IVFFlat"

    @property
    def nlists(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def build(
        cls,
        rows: Floats,
        metric: str,
        nlists: int,
        seed: int,
        pq_m: int | None = None,
        holdout: Ints | None = None,
    ) -> tuple[IVFIndex, Ints]:
        """The index over `rows`, and the order it stores them in (`rows[order]`). The k-means
        never sees the `holdout` rows, so they can stand for unseen queries."""
        rows = _f32(rows)
        pool = (
            np.arange(len(rows)) if holdout is None else np.setdiff1d(np.arange(len(rows)), holdout)
        )
        if len(pool) < nlists:
            pool = np.arange(len(rows))
        size = KMEANS_POINTS_PER_CENTROID * nlists
        centroids = kmeans(rows[pool[training_subset(len(pool), size, seed)]], nlists, seed)
        assign = nearest(rows, centroids, Scorer(metric))
        order = np.argsort(assign, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=len(centroids)))])
        stored = rows[order]
        if pq_m is None:
            return cls(centroids, offsets, metric, 1, rows=stored), order
        residuals = _pad(stored - centroids[assign[order]], pq_m)
        codebooks = train_codebooks(residuals, pq_m, seed)
        codes = encode(residuals, codebooks)
        return cls(centroids, offsets, metric, 1, codebooks=codebooks, codes=codes), order

    def search(self, queries: Floats, k: int, nprobe: int | None = None) -> Neighbours:
        queries = _f32(queries)
        k = min(k, self.size)
        probes = min(self.nlists, nprobe or self.nprobe)
        longest = int(np.diff(self.offsets).max(initial=1))
        size = max(1, min(IVF_BLOCK, NEAREST_SCORES // max(1, longest)))
        parts = [
            self._block(queries[start : start + size], k, probes)
            for start in range(0, len(queries), size)
        ]
        if not parts:
            return Neighbours(np.zeros((0, k)), np.zeros((0, k), np.int64))
        return Neighbours(
            np.concatenate([p.distances for p in parts]),
            np.concatenate([p.positions for p in parts]),
        )

    def _block(self, q: Floats, k: int, nprobe: int) -> Neighbours:
        found = self._scan(q, k, nprobe)
        short = np.flatnonzero((found.positions < 0).any(axis=1))
        if len(short) and nprobe < self.nlists:  # lists too small: look further for these
            again = self._block(q[short], k, min(self.nlists, 2 * nprobe))
            found.distances[short], found.positions[short] = again.distances, again.positions
        return found

    def _scan(self, q: Floats, k: int, nprobe: int) -> Neighbours:
        """The k best per query among its `nprobe` nearest lists.

        Lists are scanned one at a time, each scored for all the block's queries that probe
        it in one product, and the threads share out the lists (not the queries: the loop's
        per-list cost holds the interpreter lock, so it is paid once per block, not once per
        thread). Each query's nearest list comes first and gives it a bound on its k-th
        score; the other lists then only keep the rows within that bound, which their
        products subtract (a comparison with 0, not a partition per list).
        """
        if not len(q):
            return Neighbours(np.zeros((0, k)), np.zeros((0, k), np.int64))
        factor = self.scorer.queries(q)
        chunk = even_blocks(len(q), max(1, -(-len(q) // _workers())))
        probed = in_parallel(len(q), chunk, lambda a, b: self._probes(factor[a:b], nprobe))
        first = np.concatenate([p[0] for p in probed])
        lists = np.concatenate([p[1] for p in probed])
        flat = self.operand is not None
        slack = 2 * self.scorer.slack(q, self.max_norm) if flat else None
        margin = slack if slack is not None else np.zeros(len(q), np.float32)
        bound, nearest = self._nearest_lists(q, factor, first, k, slack)
        if flat:  # from here on flat products are scores minus the bound
            factor[:, self.scorer.offset_column(self.dim)] = -_finite(bound)
        others = lists != first[:, None]
        who, cells = np.nonzero(others)[0], lists[others]
        order = np.argsort(cells, kind="stable")
        groups = ListGroups.of(cells[order], who[order], self.offsets)
        cut = CANDIDATE_BUDGET // _workers()
        parts = [nearest]
        for found in in_parallel(
            len(groups), max(1, -(-len(groups) // _workers())),
            lambda start, stop: self._other_lists(q, factor, groups.part(start, stop), bound, k,
                                                  margin, cut),
        ):  # fmt: skip
            parts += found
        candidates = Candidates.joined(parts)
        return search_blocks(
            np.arange(len(q)),
            lambda who: self._ranked(q, candidates.of(who[0], who[-1] + 1), who, k, margin),
            chunk,
        )

    def _nearest_lists(
        self, q: Floats, factor: Floats, first: Ints, k: int, slack: Floats | None
    ) -> tuple[Floats, Candidates]:
        """Each query's bound and candidates from its nearest list, for all queries at once:
        the lists' scores fill one padded matrix (a row per query, queries ordered by list),
        whose k-th per row is the bound and whose entries within it are the candidates.
        Per-list numpy calls hold the interpreter lock; whole-matrix ones let threads run."""
        order = np.argsort(first, kind="stable")
        groups = ListGroups.of(first[order], order, self.offsets)
        width = max(k, int(groups.sizes.max(initial=0)))
        scores = np.full((len(q), width), np.inf, np.float32)

        def fill(start: int, stop: int) -> None:
            for g in range(start, stop):
                low, high = groups.starts[g], groups.stops[g]
                part, _ = self._list_scores(q, factor, groups.who[low:high], int(groups.cells[g]))
                scores[low:high, : part.shape[1]] = part

        in_parallel(len(groups), max(1, -(-len(groups) // _workers())), fill)
        block = max(1, -(-len(q) // _workers()))
        lengths = np.diff(self.offsets)[first]

        def within(start: int, stop: int) -> tuple[Floats, Candidates]:
            rows = scores[start:stop]
            kth = np.partition(rows, k - 1, axis=1)[:, k - 1]
            if slack is not None:
                kth += slack[order[start:stop]]
            r, c = np.nonzero(rows <= kth[:, None])
            who = order[start + r]
            real = c < lengths[who]  # not the padding (an open bound keeps it)
            r, c, who = r[real], c[real], who[real]
            found = Candidates(who, self.offsets[first[who]] + c, rows[r, c])
            return kth, found

        done = in_parallel(len(q), block, within)
        bound = np.empty(len(q), np.float32)
        bound[order] = np.concatenate([kth for kth, _ in done])
        return bound, Candidates.joined([found for _, found in done])

    def _other_lists(
        self,
        q: Floats,
        factor: Floats,
        groups: ListGroups,
        bound: Floats,
        k: int,
        margin: Floats,
        cut: int,
    ) -> list[Candidates]:
        """Candidates from the lists past each query's nearest: scores less the bound fill a
        buffer list after list, and one comparison with 0 per buffer finds the hits. Queries
        whose bound is still open (a nearest list shorter than k) keep every row."""
        finite = _finite(bound)
        open_ = ~np.isfinite(bound)
        flat = self.operand is not None
        buffer = np.empty(LIST_BUFFER, np.float32)
        parts: list[Candidates] = []
        held, used = 0, 0
        pending: list[tuple[int, int]] = []
        for g in range(len(groups)):
            low, high = groups.starts[g], groups.stops[g]
            who, cell = groups.who[low:high], int(groups.cells[g])
            size = (high - low) * int(groups.sizes[g])
            if size == 0:  # an empty list
                continue
            if used + size > len(buffer):
                parts.append(self._hits(buffer[:used], groups, pending, finite, open_))
                held, used, pending = held + len(parts[-1].rows), 0, []
                if size > len(buffer):
                    buffer = np.empty(size, np.float32)
            out = buffer[used : used + size].reshape(high - low, -1)
            if flat:
                assert self.operand is not None
                rows = self.operand[self.offsets[cell] : self.offsets[cell + 1]]
                np.matmul(factor[who], rows.T, out=out)
            else:
                out[:] = self._list_scores(q, factor, who, cell)[0] - finite[who][:, None]
            pending.append((g, used))
            used += size
            if held > cut:
                parts = [Candidates.joined(parts).shortlist(len(q), k, margin)[0]]
                held = len(parts[0].rows)
        parts.append(self._hits(buffer[:used], groups, pending, finite, open_))
        return parts

    def _hits(
        self,
        products: Floats,
        groups: ListGroups,
        pending: list[tuple[int, int]],
        finite: Floats,
        open_: npt.NDArray[np.bool_],
    ) -> Candidates:
        """The candidates in a filled buffer: (group, offset) per list scored into it."""
        if not pending:
            return Candidates.empty()
        which = np.asarray([g for g, _ in pending], np.int64)
        at = np.asarray([offset for _, offset in pending], np.int64)
        hits = np.flatnonzero(products <= np.float32(0.0))
        slot = np.searchsorted(at, hits, side="right") - 1
        g = which[slot]
        r, c = np.divmod(hits - at[slot], groups.sizes[g])
        who = groups.who[groups.starts[g] + r]
        found = Candidates(who, self.offsets[groups.cells[g]] + c, products[hits] + finite[who])
        if not open_.any():
            return found
        parts = [found.where(~open_[found.rows])]
        for group, offset in pending:  # every row of the lists of queries with open bounds
            low, high = groups.starts[group], groups.stops[group]
            size = int(groups.sizes[group])
            rows = np.flatnonzero(open_[groups.who[low:high]])
            if len(rows) and size:
                block = products[offset : offset + (high - low) * size].reshape(-1, size)[rows]
                columns = np.tile(np.arange(size), len(rows))
                parts.append(
                    Candidates(
                        np.repeat(groups.who[low:high][rows], size),
                        self.offsets[groups.cells[group]] + columns,
                        block.reshape(-1),
                    )
                )
        return Candidates.joined(parts)

    def _ranked(
        self, q: Floats, found: Candidates, who: Ints, k: int, margin: Floats
    ) -> Neighbours:
        """The k best of the candidates of queries `who` (a range), by exact distance."""
        found, _ = found.shortlist(len(who), k, margin[who])
        stored = self.rows
        if stored is not None:
            distances = self.scorer.exact(q[who][found.rows], stored[found.positions])
        else:
            distances = found.scores.astype(np.float64)
        return select(distances, found.rows, found.positions, len(who), k)

    def _probes(self, factor: Floats, nprobe: int) -> tuple[Ints, Ints]:
        """Per query: its nearest list, and its `nprobe` nearest (in no order)."""
        coarse = _scores(factor, self.centroid_operand)
        first: Ints = np.argmin(coarse, axis=1)
        if nprobe < self.nlists:
            lists: Ints = np.argpartition(coarse, nprobe - 1, axis=1)[:, :nprobe]
        else:
            lists = np.broadcast_to(np.arange(self.nlists), coarse.shape)
        return first, lists

    def _list_scores(self, q: Floats, factor: Floats, who: Ints, cell: int) -> tuple[Floats, int]:
        """The scores of list `cell`'s rows for queries `who`, and its first position."""
        low, high = int(self.offsets[cell]), int(self.offsets[cell + 1])
        if self.operand is not None:
            return _scores(factor[who], self.operand[low:high]), low
        q = q[who]
        assert self.codebooks is not None
        assert self.codes is not None
        assert self.codebook_norms is not None
        m, _, dsub = self.codebooks.shape
        residual = _pad(q - self.centroids[cell], m).reshape(len(q), m, dsub)
        # tables[j, i, c] = |residual_i,j - codebook_j,c|^2, summed over the sub-vectors' codes
        tables = (
            np.einsum("imd,imd->mi", residual, residual)[:, :, None]
            - 2.0 * np.matmul(residual.transpose(1, 0, 2), self.codebooks.transpose(0, 2, 1))
            + self.codebook_norms[:, None, :]
        )
        codes = self.codes[low:high]
        out = np.zeros((len(q), high - low), np.float32)
        for j in range(m):
            out += tables[j][:, codes[:, j]]
        return np.maximum(out, np.float32(0.0)), low

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        out: dict[str, npt.NDArray[Any]] = {"centroids": self.centroids, "offsets": self.offsets}
        if self.rows is not None:
            out["rows"] = np.ascontiguousarray(self.rows)
        if self.codebooks is not None and self.codes is not None:
            out["codebooks"] = self.codebooks
            out["codes"] = self.codes
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any], meta: dict[str, Any]) -> IVFIndex:
        return cls(
            arrays["centroids"],
            arrays["offsets"],
            str(meta["metric"]),
            int(meta.get("nprobe", 1)),
            rows=arrays.get("rows"),
            codebooks=arrays.get("codebooks"),
            codes=arrays.get("codes"),
        )


@dataclass(frozen=True)
class ListGroups:
    """(list, queries) pairs grouped by list: group g is list `cells[g]` (of `sizes[g]` rows)
    for the queries `who[starts[g]:stops[g]]`."""

    cells: Ints
    sizes: Ints
    starts: Ints
    stops: Ints
    who: Ints

    @classmethod
    def of(cls, cells: Ints, who: Ints, offsets: Ints) -> ListGroups:
        """From the lists and queries of pairs sorted by list."""
        edges = np.flatnonzero(np.diff(cells)) + 1
        starts = (
            np.concatenate([[0], edges]).astype(np.int64) if len(cells) else np.zeros(0, np.int64)
        )
        stops = np.concatenate([edges, [len(cells)]]).astype(np.int64) if len(cells) else starts
        lists = cells[starts]
        return cls(lists, offsets[lists + 1] - offsets[lists], starts, stops, who)

    def __len__(self) -> int:
        return len(self.cells)

    def part(self, start: int, stop: int) -> ListGroups:
        return ListGroups(
            self.cells[start:stop], self.sizes[start:stop], self.starts[start:stop],
            self.stops[start:stop], self.who,
        )  # fmt: skip


def _finite(bound: Floats) -> Floats:
    """The bound a product subtracts: none (0) where it is still open (infinite)."""
    out: Floats = np.where(np.isfinite(bound), bound, np.float32(0.0))
    return out


def _pad(x: Floats, multiple: int) -> Floats:
    """Zero columns up to a multiple of `multiple` (PQ splits the row into equal parts)."""
    width = math.ceil(x.shape[1] / multiple) * multiple
    if width == x.shape[1]:
        return _f32(x)
    out = np.zeros((x.shape[0], width), np.float32)
    out[:, : x.shape[1]] = x
    return out


def encode(residuals: Floats, codebooks: Floats) -> npt.NDArray[np.uint8]:
    """The one-byte code of each sub-vector: its nearest sub-centroid."""
    m, _, dsub = codebooks.shape
    codes = np.empty((len(residuals), m), np.uint8)
    for j in range(m):
        part = _f32(residuals[:, j * dsub : (j + 1) * dsub])
        codes[:, j] = nearest(part, codebooks[j], Scorer(L2))
    return codes


def train_codebooks(residuals: Floats, m: int, seed: int) -> Floats:
    """One k-means codebook (256 sub-centroids, fewer for small data) per sub-vector."""
    subset = residuals[
        training_subset(len(residuals), KMEANS_POINTS_PER_CENTROID * PQ_CENTROIDS, seed)
    ]
    dsub = residuals.shape[1] // m
    size = min(PQ_CENTROIDS, len(subset))
    books = np.zeros((m, size, dsub), np.float32)
    for j in range(m):
        books[j] = kmeans(_f32(subset[:, j * dsub : (j + 1) * dsub]), size, seed + j)
    return books


def default_pq_m(dim: int, options: tuple[int, ...]) -> int:
    """Without `faiss_index_pq_m`: about 4 dimensions per one-byte code (the largest option
    at most dim / 4), a common FAISS trade of size against accuracy."""
    fitting = [m for m in options if m <= max(1, dim // 4)]
    return max(fitting) if fitting else 1


Index = FlatIndex | IVFIndex
