"""Dimension reduction before indexing (spec algorithms §5(f)): a random sign projection
(O(n·d·t)) or a fast Johnson-Lindenstrauss transform (O(n·d·log d)).

Both are data-independent: drawn from a fixed seed, so the same hyperparameters give the same
projection, and applied batch by batch to training rows, test rows and requests alike. Both
preserve squared norms in expectation, so L2 distances keep their scale.

The FJLT is the subsampled randomized Hadamard transform (Ailon-Chazelle's variant with a
coordinate sample in place of the sparse Gaussian): random signs, a Walsh-Hadamard transform
of the zero-padded row, then `target` of the coordinates, scaled by 1/sqrt(target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

SEED: Final = 3
"""The projection's seed (SageMaker's model JSON shows `"seed": 3`); recorded in the model."""
SIGN: Final = "sign"
FJLT: Final = "fjlt"

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Projection:
    """A fitted reduction from `input_dim` to `target_dim` columns."""

    kind: str
    input_dim: int
    target_dim: int
    seed: int
    matrix: Floats | None = None
    """sign: the (input_dim, target_dim) matrix of ±1/sqrt(target_dim)."""
    signs: Floats | None = None
    """fjlt: the random ±1 per (padded) input column."""
    picks: npt.NDArray[np.int64] | None = None
    """fjlt: the Hadamard coordinates kept."""

    @classmethod
    def draw(cls, kind: str, input_dim: int, target_dim: int, seed: int = SEED) -> Projection:
        rng = np.random.default_rng(seed)
        if kind == SIGN:
            signs = rng.integers(0, 2, size=(input_dim, target_dim)).astype(np.float32) * 2 - 1
            matrix = (signs / np.float32(np.sqrt(target_dim))).astype(np.float32)
            return cls(kind, input_dim, target_dim, seed, matrix=matrix)
        if kind == FJLT:
            padded = 1 << max(0, (input_dim - 1).bit_length())
            column_signs = rng.integers(0, 2, size=padded).astype(np.float32) * 2 - 1
            picks = np.sort(rng.choice(padded, size=target_dim, replace=False)).astype(np.int64)
            return cls(kind, input_dim, target_dim, seed, signs=column_signs, picks=picks)
        raise ValueError(f"unknown dimension reduction type {kind!r}")

    def apply(self, x: Floats) -> Floats:
        """Rows of `x` (n, input_dim) as (n, target_dim) float32."""
        if self.matrix is not None:
            return np.asarray(x @ self.matrix, dtype=np.float32)
        assert self.signs is not None
        assert self.picks is not None
        padded = np.zeros((x.shape[0], self.signs.shape[0]), np.float32)
        padded[:, : x.shape[1]] = x
        padded *= self.signs
        transformed = walsh_hadamard(padded)[:, self.picks]
        return np.asarray(transformed / np.float32(np.sqrt(self.target_dim)), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        """The model JSON's `dimension_reduction` object, as SageMaker writes it."""
        return {
            "type": self.kind,
            "seed": self.seed,
            "target_dim": self.target_dim,
            "input_dim": self.input_dim,
        }

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        if self.matrix is not None:
            return {"projection_matrix": self.matrix}
        assert self.signs is not None
        assert self.picks is not None
        return {"projection_signs": self.signs, "projection_picks": self.picks}

    @classmethod
    def from_arrays(cls, described: dict[str, Any], arrays: dict[str, Any]) -> Projection:
        kind = str(described["type"])
        fields = (kind, int(described["input_dim"]), int(described["target_dim"]))
        seed = int(described.get("seed", SEED))
        if kind == SIGN and "projection_matrix" in arrays:
            return cls(*fields, seed, matrix=arrays["projection_matrix"])
        if kind == FJLT and "projection_signs" in arrays:
            return cls(
                *fields, seed, signs=arrays["projection_signs"], picks=arrays["projection_picks"]
            )
        raise ValueError(
            f"dimension_reduction type {kind!r} of model_algo-1.json does not match the index "
            "model_algo-1 was trained with"
        )


def walsh_hadamard(x: Floats) -> Floats:
    """The unnormalised Walsh-Hadamard transform of each row (width a power of two), in
    log2(width) vectorised butterfly passes."""
    n, width = x.shape
    out = x
    half = 1
    while half < width:
        pairs = out.reshape(n, width // (2 * half), 2, half)
        left, right = pairs[:, :, 0, :], pairs[:, :, 1, :]
        out = np.stack((left + right, left - right), axis=2).reshape(n, width)
        half *= 2
    return out
