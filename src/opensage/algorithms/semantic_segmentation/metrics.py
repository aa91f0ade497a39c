"""Segmentation quality: a confusion matrix over labelled pixels (255 is ignored), mIOU and
pixel accuracy (spec algorithms §18(c)).

mIOU averages intersection over union over the classes present in the labels or the
predictions (a class in neither has no defined IoU, so it neither helps nor hurts, as
torchmetrics' JaccardIndex does with absent classes); pixel accuracy is the share of labelled
pixels predicted right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from opensage.algorithms.semantic_segmentation.spec import IGNORE


@dataclass
class Confusion:
    num_classes: int
    counts: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def add(self, truth: npt.NDArray[Any], predicted: npt.NDArray[Any]) -> None:
        """Count the labelled pixels of `truth` (class ids, 255 ignored) against `predicted`."""
        truth = np.asarray(truth).ravel().astype(np.int64)
        predicted = np.asarray(predicted).ravel().astype(np.int64)
        keep = truth != IGNORE
        k = self.num_classes
        index = truth[keep] * k + predicted[keep]
        self.counts += np.bincount(index, minlength=k * k).reshape(k, k)

    @property
    def pixel_accuracy(self) -> float:
        total = int(self.counts.sum())
        return float(np.trace(self.counts)) / total if total else 0.0

    @property
    def miou(self) -> float:
        tp = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(axis=0) + self.counts.sum(axis=1) - tp
        present = union > 0
        return float((tp[present] / union[present]).mean()) if present.any() else 0.0
