"""Inverted-file indexes (FAISS IndexIVFFlat and IndexIVFPQ) over a k-means coarse quantiser:
stored rows grouped by nearest centroid, a query scanning only its `nprobe` nearest lists,
flat lists re-ranked by exact distances, product-quantised lists answered with the asymmetric
distance estimates FAISS reports. Conventions as in `index.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.knn.index import (
    CANDIDATE_BUDGET,
    L2,
    Candidates,
    Floats,
    Ints,
    Neighbours,
    Scorer,
    as_f32,
    even_blocks,
    in_parallel,
    row_norms,
    scored,
    search_blocks,
    select,
    workers,
)

IVF_BLOCK: Final = 16384
"""At most this many queries per block of an IVF search (their lists are scanned together)."""
NEAREST_SCORES: Final = 1 << 24
"""At most this many scores (64 MiB) in the matrix of each query's nearest list: an IVF block
holds fewer queries when the longest list is long."""
LIST_BUFFER: Final = 1 << 19
"""Scores of this many (query, row) pairs are compared at once in an IVF search (2 MiB)."""
KMEANS_POINTS_PER_CENTROID: Final = 64
KMEANS_ITERATIONS: Final = 12
PQ_CENTROIDS: Final = 256
"""Codes per sub-quantiser: one byte per sub-vector, FAISS's default `nbits=8`."""


def nearest(x: Floats, centroids: Floats, scorer: Scorer) -> Ints:
    """The centroid each row belongs to under the metric, in blocks of rows."""
    operand = scorer.operand(centroids)

    def block(start: int, stop: int) -> Ints:
        closest: Ints = np.argmin(scored(scorer.queries(x[start:stop]), operand), axis=1)
        return closest

    return np.concatenate(in_parallel(len(x), 4096, block)).astype(np.int64)


def kmeans(x: Floats, k: int, seed: int, iterations: int = KMEANS_ITERATIONS) -> Floats:
    """Lloyd's k-means from k distinct random rows (an empty cell keeps its centroid)."""
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centroids = as_f32(x[np.sort(rng.choice(len(x), size=k, replace=False))])
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
        self.centroids = as_f32(centroids)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.scorer = Scorer(metric, offset=rows is not None)
        self.nprobe = nprobe
        self.dim = int(self.centroids.shape[1])
        self.operand = None if rows is None else self.scorer.operand(as_f32(rows))
        self.centroid_operand = self.scorer.operand(self.centroids)
        self.max_norm = float(np.sqrt(row_norms(rows).max())) if rows is not None else 0.0
        self.codebooks = None if codebooks is None else as_f32(codebooks)
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
        rows = as_f32(rows)
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
        queries = as_f32(queries)
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
        chunk = even_blocks(len(q), max(1, -(-len(q) // workers())))
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
        cut = CANDIDATE_BUDGET // workers()
        parts = [nearest]
        for found in in_parallel(
            len(groups), max(1, -(-len(groups) // workers())),
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

        in_parallel(len(groups), max(1, -(-len(groups) // workers())), fill)
        block = max(1, -(-len(q) // workers()))
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
        coarse = scored(factor, self.centroid_operand)
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
            return scored(factor[who], self.operand[low:high]), low
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
        return as_f32(x)
    out = np.zeros((x.shape[0], width), np.float32)
    out[:, : x.shape[1]] = x
    return out


def encode(residuals: Floats, codebooks: Floats) -> npt.NDArray[np.uint8]:
    """The one-byte code of each sub-vector: its nearest sub-centroid."""
    m, _, dsub = codebooks.shape
    codes = np.empty((len(residuals), m), np.uint8)
    for j in range(m):
        part = as_f32(residuals[:, j * dsub : (j + 1) * dsub])
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
        books[j] = kmeans(as_f32(subset[:, j * dsub : (j + 1) * dsub]), size, seed + j)
    return books


def default_pq_m(dim: int, options: tuple[int, ...]) -> int:
    """Without `faiss_index_pq_m`: about 4 dimensions per one-byte code (the largest option
    at most dim / 4), a common FAISS trade of size against accuracy."""
    fitting = [m for m in options if m <= max(1, dim // 4)]
    return max(fitting) if fitting else 1
