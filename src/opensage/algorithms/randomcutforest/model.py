"""The Random Cut Forest core (Guha et al., ICML 2016): a streamed reservoir sample, trees of
random cuts, and the collusive displacement of a point inserted into them; free of the job
machinery so tests and benchmarks drive it with plain arrays.

Every tree of the forest lives in flat arrays indexed by node (all trees in one set of arrays):
children (`left`/`right`, -1 at a leaf), the cut (`dim`, `cut`: a point goes left when
`x[dim] <= cut`), how many sampled points lie under the node (`count`, duplicates included)
and the node's bounding box (`lower`/`upper`). Building and scoring both walk all trees level
by level with array indexing, so no Python code runs per point or per node.

The score of a point is what `rrcf` computes with `insert_point` then `codisp`, in expectation
over the random cut that insertion draws, averaged over the trees. Walking down from the root,
the inserted point is cut off from node N (the cut falls in the part of N's box widened to hold
the point) with probability `outside / (span + outside)`, `span` the sum of the box's side
lengths and `outside` how far the point lies outside the box (L1). Cut off at N, it becomes the
sibling of N, and its collusive displacement is the largest ratio, over the new leaf's
ancestors, of the sibling's count to the count of the side holding the point:
`max(count(N), max over the ancestors A above N of count(sibling on the path) /
(count(child on the path) + 1))`. A point equal to a sampled one reaches that leaf without
being cut off; rrcf then adds it to the leaf, and the first term goes. No tree is changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from opensage.algorithms.artifacts import load_model, save_model

Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int32]

SEED: Final = 0x5A3C0F7
"""Reservoir and cut draws: fixed, so the same data give the same forest (SageMaker's RCF has
no seed hyperparameter)."""
CHUNK_FLOATS: Final = 1 << 18
"""Box values gathered per level of a walk (pairs x 2 x feature_dim, float32): about a
megabyte, so a level's arrays stay in a core's cache; chunks four times larger measured two to
three times slower, smaller ones no faster."""
NEGLIGIBLE: Final = 1e-12
"""A walk stops once the chance of reaching further down is below this: what is left could
change a tree's displacement by at most this times the sample size."""
KEEP_SHARE: Final = 0.6
"""Finished pairs are dropped from the walk once fewer than this share of it is still going:
compacting six arrays every level costs more than walking a few finished pairs along."""
FORMAT: Final = "opensage-randomcutforest/1"


def dense_rows(features: Any) -> Floats32:
    """A block of rows (dense or CSR) as a C-contiguous float32 array."""
    if sp.issparse(features):
        return np.asarray(features.toarray(), dtype=np.float32)
    return np.ascontiguousarray(features, dtype=np.float32)


class Reservoir:
    """`slots` uniform draws with replacement from a stream of rows (Park et al. 2004): after
    n rows, every slot holds each row with probability 1/n, independently of the others.

    A block of b rows after n seen replaces each slot with probability b/(n+b), by a row of the
    block chosen uniformly (the last of the sequential replacements is uniform over the block);
    so a block costs O(b + replaced) draws, not one per row and slot."""

    def __init__(self, slots: int, width: int, seed: int = SEED) -> None:
        self.rng = np.random.default_rng(seed)
        self.points = np.zeros((slots, width), dtype=np.float32)
        self.seen = 0

    def add(self, block: Floats32) -> None:
        rows = int(block.shape[0])
        if rows == 0:
            return
        slots = len(self.points)
        total = self.seen + rows
        if self.seen == 0:
            self.points[:] = block[self.rng.integers(0, rows, size=slots)]
        else:
            replaced = int(self.rng.binomial(slots, rows / total))
            if replaced:
                where = self.rng.choice(slots, size=replaced, replace=False)
                self.points[where] = block[self.rng.integers(0, rows, size=replaced)]
        self.seen = total


@dataclass(frozen=True)
class Forest:
    """Trees of random cuts in flat arrays (see the module docstring); `roots[t]` is tree t's
    root, `rows` how many training rows the sample was drawn from."""

    left: Ints
    right: Ints
    dim: Ints
    cut: Floats
    count: Ints
    lower: Floats32
    upper: Floats32
    roots: Ints
    num_samples_per_tree: int
    rows: int
    span: Floats = field(init=False, repr=False)
    """Per node, the sum of its box's side lengths."""
    box: Floats32 = field(init=False, repr=False)
    """Per node, `-lower` then `upper`: one gather fetches both, and one subtraction from
    `[-x, x]` gives how far x lies below and above the box on every side."""
    leaf: npt.NDArray[np.bool_] = field(init=False, repr=False)
    steps: npt.NDArray[np.intp] = field(init=False, repr=False)
    """At `2 * node + side` (side 0 left, 1 right): the child a point goes to."""
    ratios: Floats = field(init=False, repr=False)
    """At `2 * node + side`: the sibling's count over the child's count plus the new point."""

    def __post_init__(self) -> None:
        extent = self.upper.astype(np.float64) - self.lower.astype(np.float64)
        object.__setattr__(self, "span", extent.sum(axis=1))
        object.__setattr__(self, "box", np.concatenate([-self.lower, self.upper], axis=1))
        leaf = self.left < 0
        left = np.where(leaf, 0, self.left).astype(np.intp)
        right = np.where(leaf, 0, self.right).astype(np.intp)
        count = self.count.astype(np.float64)
        steps = np.stack([left, right], axis=1).reshape(-1)
        ratios = np.stack([count[right] / (count[left] + 1), count[left] / (count[right] + 1)], 1)
        object.__setattr__(self, "leaf", leaf)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "ratios", ratios.reshape(-1))

    @property
    def num_trees(self) -> int:
        return len(self.roots)

    @property
    def feature_dim(self) -> int:
        return int(self.lower.shape[1])

    @property
    def num_nodes(self) -> int:
        return len(self.left)

    def score(self, features: Any) -> Floats:
        """Each row's collusive displacement, in expectation over the insertion's random cut,
        averaged over the trees (rrcf's `codisp` of the row inserted into each tree)."""
        x = dense_rows(features)
        out = np.empty(len(x), dtype=np.float64)
        step = max(1, CHUNK_FLOATS // (2 * self.feature_dim * max(self.num_trees, 1)))
        for start in range(0, len(x), step):
            part = x[start : start + step]
            out[start : start + len(part)] = self.tree_scores(part).mean(axis=1)
        return out

    def tree_scores(self, x: Floats32) -> Floats:
        """(rows x trees) expected displacements: all rows walk down all trees a level at a
        time; a pair leaves the walk at a leaf, or once it has surely been cut off.

        Written for numpy's fast paths: `take` rather than fancy indexing, one gather of both
        box corners (`box`), the L1 distance to the box as a matrix-vector product, and per node the
        child and displacement ratio of either side ready in one array (`steps`, `ratios`)."""
        trees = self.num_trees
        width = self.feature_dim
        pairs = len(x) * trees
        total = np.zeros(pairs, dtype=np.float64)
        ids = np.arange(pairs)
        point = np.repeat(np.arange(len(x)), trees)
        node = np.tile(self.roots.astype(np.intp), len(x))
        alive = np.ones(pairs, dtype=np.float64)  # chance the point was not cut off above
        best = np.zeros(pairs, dtype=np.float64)  # max displacement ratio of the path so far
        done = np.zeros(pairs, dtype=np.float64)  # expected displacement gathered so far
        ones = np.ones(2 * width, dtype=np.float32)
        mirrored = np.concatenate([-x, x], axis=1)
        flat_x = x.reshape(-1)
        while ids.size:
            # [-x, x] - [-lower, upper] = [lower - x, x - upper]: the distance outside the box
            # per side, in whole contiguous rows (strided half-rows are several times slower).
            outside = np.take(self.box, node, axis=0)
            np.subtract(np.take(mirrored, point, axis=0), outside, out=outside)
            np.maximum(outside, 0.0, out=outside)
            gap = (outside @ ones).astype(np.float64)
            # Both are 0 only for a point equal to a leaf's: never cut off there.
            whole = np.maximum(np.take(self.span, node) + gap, np.finfo(np.float64).tiny)
            cut_off = np.multiply(alive, gap / whole, out=gap)
            done += cut_off * np.maximum(best, np.take(self.count, node))
            alive -= cut_off
            leaf = np.take(self.leaf, node)
            # A point equal to a leaf's joins it: only the ancestors' ratios are left. Past a
            # leaf a pair walks on (from node 0) with nothing left to add until it is dropped.
            done += alive * best * leaf
            alive *= ~leaf
            value = np.take(flat_x, point * width + np.take(self.dim, node))
            step = 2 * node + (value > np.take(self.cut, node))
            np.maximum(best, np.take(self.ratios, step), out=best)
            node = np.take(self.steps, step)
            going = alive > NEGLIGIBLE
            kept = int(np.count_nonzero(going))
            if kept < len(going) * KEEP_SHARE:  # drop finished pairs a batch at a time
                total[ids[~going]] = done[~going]
                ids, point, node = ids[going], point[going], node[going]
                alive, best, done = alive[going], best[going], done[going]
        return total.reshape(len(x), trees)

    def save(self, model_dir: Path) -> Path:
        arrays: dict[str, npt.NDArray[Any]] = {
            "left": self.left,
            "right": self.right,
            "dim": self.dim,
            "cut": self.cut,
            "count": self.count,
            "lower": self.lower,
            "upper": self.upper,
            "roots": self.roots,
        }
        meta = {
            "format": FORMAT,
            "num_samples_per_tree": self.num_samples_per_tree,
            "num_trees": self.num_trees,
            "feature_dim": self.feature_dim,
            "rows": self.rows,
        }
        return save_model(model_dir, arrays, meta)

    @classmethod
    def load(cls, model_dir: Path) -> Forest:
        arrays, meta = load_model(model_dir)
        names = ("left", "right", "dim", "cut", "count", "lower", "upper", "roots")
        if meta.get("format") != FORMAT or any(name not in arrays for name in names):
            raise ValueError("model_algo-1 is not a Random Cut Forest model")
        forest = cls(
            np.asarray(arrays["left"], np.int32),
            np.asarray(arrays["right"], np.int32),
            np.asarray(arrays["dim"], np.int32),
            np.asarray(arrays["cut"], np.float64),
            np.asarray(arrays["count"], np.int32),
            np.asarray(arrays["lower"], np.float32),
            np.asarray(arrays["upper"], np.float32),
            np.asarray(arrays["roots"], np.int32),
            int(meta["num_samples_per_tree"]),
            int(meta.get("rows", 0)),
        )
        nodes = forest.num_nodes
        shapes = {len(forest.right), len(forest.dim), len(forest.cut), len(forest.count)}
        if shapes != {nodes} or forest.lower.shape != forest.upper.shape:
            raise ValueError("Random Cut Forest model arrays disagree in length")
        return forest


def grow(points: Floats32, num_trees: int, rows: int = 0, seed: int = SEED) -> Forest:
    """A forest of `num_trees` trees over consecutive equal shares of `points` (the reservoir).

    Each node's points form a contiguous segment of one permutation; a level computes every
    open segment's box with `reduceat`, picks each cut (a dimension with probability
    proportional to its side, then a uniform value on that side) and partitions the segments
    stably in place. A segment whose points are all equal becomes a leaf (duplicates stay
    together, counted), so a tree is complete after at most `num_samples_per_tree` levels.
    Node ids follow creation order: the roots, then each level's nodes in segment order."""
    total = int(points.shape[0])
    size = total // max(num_trees, 1)
    if num_trees < 1 or size < 1 or size * num_trees != total:
        raise ValueError(f"{total} points do not split into {num_trees} equal non-empty trees")
    points = np.ascontiguousarray(points, dtype=np.float32)
    rng = np.random.default_rng(seed)
    order = np.arange(total)
    starts = np.arange(num_trees) * size
    lengths = np.full(num_trees, size)
    levels: list[_Level] = []
    created = num_trees
    while starts.size:
        level = _level(points, order, starts, lengths, created, rng)
        levels.append(level)
        created += len(level.child_starts)
        starts, lengths = level.child_starts, level.child_lengths

    def joined(name: str) -> Any:
        return np.concatenate([getattr(level, name) for level in levels])

    return Forest(
        joined("left").astype(np.int32),
        joined("right").astype(np.int32),
        joined("dim").astype(np.int32),
        joined("cut").astype(np.float64),
        joined("count").astype(np.int32),
        joined("lower"),
        joined("upper"),
        np.arange(num_trees, dtype=np.int32),
        size,
        rows,
    )


@dataclass(frozen=True)
class _Level:
    """One level's nodes (in id order) and the segments of their children (left, right)."""

    lower: Floats32
    upper: Floats32
    count: npt.NDArray[np.intp]
    left: npt.NDArray[np.intp]
    right: npt.NDArray[np.intp]
    dim: npt.NDArray[np.intp]
    cut: Floats
    child_starts: npt.NDArray[np.intp]
    child_lengths: npt.NDArray[np.intp]


def _level(
    points: Floats32,
    order: npt.NDArray[np.intp],
    starts: npt.NDArray[np.intp],
    lengths: npt.NDArray[np.intp],
    first_child: int,
    rng: np.random.Generator,
) -> _Level:
    """Boxes and cuts of the nodes whose points are `order[start:start+length]`, and `order`
    partitioned in place so each node's left points precede its right ones."""
    nodes = len(starts)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    segment = np.repeat(np.arange(nodes), lengths)
    local = np.arange(len(segment)) - offsets[segment]
    members = order[starts[segment] + local]
    x = points[members]
    lower = np.minimum.reduceat(x, offsets, axis=0)
    upper = np.maximum.reduceat(x, offsets, axis=0)
    extent = upper.astype(np.float64) - lower.astype(np.float64)
    spans = extent.sum(axis=1)
    split = np.flatnonzero(spans > 0)
    left = np.full(nodes, -1, dtype=np.intp)
    right = np.full(nodes, -1, dtype=np.intp)
    dim = np.zeros(nodes, dtype=np.intp)
    cut = np.zeros(nodes, dtype=np.float64)
    if split.size:
        chosen = _dimensions(extent[split], spans[split], rng)
        low = lower[split, chosen].astype(np.float64)
        high = upper[split, chosen].astype(np.float64)
        value = low + rng.random(len(split)) * (high - low)
        # Keep the cut below the top so the points at the top go right: both sides non-empty.
        dim[split] = chosen
        cut[split] = np.minimum(value, np.nextafter(high, -np.inf))
        left[split] = first_child + 2 * np.arange(len(split))
        right[split] = left[split] + 1
    goes_right = x[np.arange(len(x)), dim[segment]] > cut[segment]
    goes_right &= left[segment] >= 0
    is_left = (~goes_right).astype(np.intp)
    before = np.cumsum(is_left) - is_left
    left_rank = before - before[offsets][segment]
    left_count = np.add.reduceat(is_left, offsets)
    rank = np.where(goes_right, left_count[segment] + local - left_rank, left_rank)
    order[starts[segment] + rank] = members
    child_starts = np.stack([starts[split], starts[split] + left_count[split]], axis=1)
    child_lengths = np.stack([left_count[split], lengths[split] - left_count[split]], axis=1)
    return _Level(
        lower,
        upper,
        np.asarray(lengths, dtype=np.intp),
        left,
        right,
        dim,
        cut,
        child_starts.reshape(-1),
        child_lengths.reshape(-1),
    )


def _dimensions(extent: Floats, spans: Floats, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    """Per node, a dimension drawn with probability proportional to its side length."""
    draw = rng.random(len(spans)) * spans
    cumulative = np.cumsum(extent, axis=1)
    chosen = np.minimum((cumulative <= draw[:, None]).sum(axis=1), extent.shape[1] - 1)
    rows = np.arange(len(chosen))
    flat = extent[rows, chosen] <= 0  # rounding at the very top: take the longest side instead
    chosen[flat] = np.argmax(extent[flat], axis=1)
    return np.asarray(chosen, dtype=np.intp)
