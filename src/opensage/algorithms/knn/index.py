"""Exact nearest-neighbour search in numpy (FAISS's IndexFlat), and what the inverted files of
`ivf.py` share with it: the scorer, the candidates, the selection, the search threads.

Conventions: every index answers `search(queries, k)` with the k nearest stored rows per query
as (distances ascending, positions), ties broken by the lower position, as scikit-learn's
brute-force search breaks them. A "distance" is a dissimilarity: the squared Euclidean distance
for L2 (what FAISS reports), the negated inner product for INNER_PRODUCT (the model adds 1 for
COSINE, giving the cosine distance). Rows are float32; L2 indexes store their rows centred on
the training mean rounded to integers (distances do not change, float32 rounding does: smaller
norms, smaller error; integer data stay exact, so exact ties stay ties).

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
CANDIDATE_BUDGET: Final = 2_000_000
"""Candidates held per query block before they are cut back to the best k per query (many
equal distances, e.g. duplicated rows, could otherwise keep every row)."""
RESCORED: Final = 2
"""With a reduced bound (`bound.py`), each query's k-th distance is bounded by exact distances
of its RESCORED * k best-bounded candidates."""
EXACT_CHUNK: Final = 512
"""Candidates whose exact distances are computed together (measured on 50k x 50: 4x faster
than one whole block, 1.5x faster than chunks of 4096)."""
TOLERANCE: Final = 1e-5
"""Slack of the bound, relative to the norms: float32 rounding of the BLAS scores must never
drop a true neighbour."""

Floats = npt.NDArray[np.float32]
Doubles = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers(), "knn-search")


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


def workers() -> int:
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
    threads = workers()
    blocks = -(-max(1, -(-size // most)) // threads) * threads
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


def as_f32(x: Any) -> Floats:
    return np.ascontiguousarray(x, dtype=np.float32)


def row_norms(x: Floats) -> Floats:
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
            out[:, dim] = row_norms(as_f32(rows)) if norms is None else norms
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
        q_norm = np.sqrt(row_norms(q))
        bound = 2.0 * q_norm * row_max_norm + (row_max_norm**2 if self.l2 else 0.0)
        return as_f32(TOLERANCE * bound + 1e-30)

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


def scored(factor: Floats, operand: Floats) -> Floats:
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
        rows = as_f32(rows)
        self.scorer = Scorer(metric, offset=True)
        self.dim = int(rows.shape[1])
        self.max_norm = float(np.sqrt(row_norms(rows).max())) if len(rows) else 0.0
        self.bound = PrincipalBound.choose(rows, self.scorer.width) if reduce else None
        if self.bound is None:
            self.operand = self.scorer.operand(rows)
            self._rows = self.operand[:, : self.dim]
        else:
            self.operand = self.scorer.operand(self.bound.reduce(rows), row_norms(rows))
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
        queries = as_f32(queries)
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
        bound = kth_bound(scored(factor, sample), k) + slack
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
                sieve.products[:, : len(stored)] = scored(factor, stored)
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
            scores -= row_norms(q)[rows]
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
